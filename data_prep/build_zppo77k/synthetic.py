"""Small stand-ins for the two published data sets, in their schemas, for tests and the benchmark.

``vero_row(...)`` / ``mmfinereason_row(...)`` make one row as published; ``write_vero`` / ``write_mmfinereason``
write rows as parquet with the published column types (images as the ``datasets`` Image feature: a struct of
``bytes`` and ``path``). ``png`` / ``jpeg`` draw real images (shapes, text-like strokes, some noise) of a given
size. ``synthetic_inputs(root, n_rows)`` writes a mixed pair of data sets for the benchmark: several
sub-datasets per source, realistic image sizes, a few duplicates and bad rows.
"""

from __future__ import annotations

import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

IMAGE_T = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
VERO_SCHEMA = pa.schema([
    ("id", pa.string()),
    ("image", IMAGE_T),
    ("prompt", pa.list_(pa.struct([("content", pa.string()), ("role", pa.string())]))),
    ("data_source", pa.string()),
    ("ability", pa.string()),
    ("reward_model", pa.struct([("ground_truth", pa.string()), ("style", pa.string())])),
    ("extra_info", pa.struct([("answer", pa.string()), ("domain", pa.string()), ("id", pa.string()),
                              ("index", pa.int64()), ("question", pa.string()), ("reward_type", pa.string()),
                              ("tolerance", pa.float64())])),
])
# A derived copy of Vero (what Vero's own formatting script writes): no top-level id, the id in extra_info.
VERO_NO_ID_SCHEMA = pa.schema([f for f in VERO_SCHEMA if f.name != "id"])


def mmfinereason_schema(pass_rate_column: str = "pass_rate", id_type: pa.DataType | None = None) -> pa.Schema:
    """MMFineReason's columns; the pass rate as the rows name it (``pass_rate``) or as the authors' card does
    (``qwen3vl_4b_pass_rate``); ids as strings or ints."""
    return pa.schema([
        ("source", pa.string()),
        ("id", id_type or pa.string()),
        ("original_question", pa.string()),
        ("original_answer", pa.string()),
        ("image", IMAGE_T),
        ("question", pa.string()),
        ("answer", pa.string()),
        ("qwen3vl_235b_instruct_caption", pa.string()),
        ("qwen3vl_235b_thinking_response", pa.string()),
        (pass_rate_column, pa.float64()),
        ("is_consistent", pa.bool_()),
        ("consistency_analysis", pa.string()),
    ])


MMFINEREASON_SCHEMA = mmfinereason_schema()
VERO_SYSTEM_PROMPT = ("You are a helpful assistant. Think step by step, then give the final answer in "
                      "<answer>\\boxed{}</answer>.")


def _draw(width: int, height: int, seed: int, noise: int):
    from PIL import Image, ImageDraw

    rng = random.Random(seed)
    img = Image.new("RGB", (width, height), tuple(rng.randint(200, 255) for _ in range(3)))
    draw = ImageDraw.Draw(img)
    for _ in range(12):
        x0, x1 = sorted(rng.randint(0, width - 1) for _ in range(2))
        y0, y1 = sorted(rng.randint(0, height - 1) for _ in range(2))
        color = tuple(rng.randint(0, 200) for _ in range(3))
        if rng.random() < 0.5:
            draw.rectangle([x0, y0, x1, y1], outline=color, width=max(1, min(width, height) // 100))
        else:
            draw.line([x0, y0, x1, y1], fill=color, width=max(1, min(width, height) // 150))
    for _ in range(max(1, height // 60)):  # rows of short strokes, like text
        y = rng.randint(0, max(0, height - 12))
        x = rng.randint(0, max(0, width // 4))
        while x < width - 20 and rng.random() < 0.95:
            w = rng.randint(4, 14)
            draw.rectangle([x, y, x + w, y + 8], fill=(30, 30, 30))
            x += w + rng.randint(3, 8)
    if noise:
        speckle = Image.effect_noise((width, height), noise).convert("RGB")
        img = Image.blend(img, speckle, 0.08)
    return img


def png(width: int, height: int, seed: int = 0, noise: int = 0) -> bytes:
    """A real PNG image of ``width`` x ``height`` (deterministic for a seed)."""
    buf = io.BytesIO()
    _draw(width, height, seed, noise).save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def jpeg(width: int, height: int, seed: int = 0, quality: int = 90) -> bytes:
    """A real JPEG image of ``width`` x ``height`` (photo-like noise, deterministic for a seed)."""
    buf = io.BytesIO()
    _draw(width, height, seed, noise=40).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def image_cell(data: bytes | None = None, path: str | None = None) -> dict:
    return {"bytes": data, "path": path}


def vero_row(id, data_source: str, question: str, answer, image: dict | None, reward_type: str = "numeric",
             tolerance: float | None = None, ability: str = "stem", system: bool = True,
             extra_question: bool = True) -> dict:
    """One Vero-600k row as published (system prompt, ``<image>`` in the user turn, answer in two places, the id
    at the top and in ``extra_info``); ``id`` may be None (then only ``extra_info.id`` is meaningful)."""
    user = "<image>\n" + question
    prompt = ([{"role": "system", "content": VERO_SYSTEM_PROMPT}] if system else []) + [
        {"role": "user", "content": user}]
    return {
        "id": id, "image": image, "prompt": prompt, "data_source": data_source, "ability": ability,
        "reward_model": {"ground_truth": answer, "style": "rule"},
        "extra_info": {"answer": answer, "domain": ability, "id": None if id is None else str(id), "index": 0,
                       "question": user if extra_question else None,
                       "reward_type": reward_type, "tolerance": tolerance},
    }


def mmfinereason_row(id, source: str, question: str, answer, image: dict | None,
                     pass_rate: float | None = 0.25, pass_rate_column: str = "pass_rate") -> dict:
    """One MMFineReason-SFT-586K row as published (``answer`` may be None: the published rows hold nulls)."""
    return {
        "source": source, "id": id, "original_question": question, "original_answer": answer, "image": image,
        "question": question, "answer": answer, "qwen3vl_235b_instruct_caption": "A figure.",
        "qwen3vl_235b_thinking_response": "<think>...</think> \\boxed{" + str(answer) + "}",
        pass_rate_column: pass_rate, "is_consistent": True, "consistency_analysis": "consistent",
    }


def write_parquet(rows: list[dict], schema: pa.Schema, path: Path, row_group_rows: int = 100) -> Path:
    """Rows as parquet with the given schema, in row groups of ``row_group_rows`` (as ``datasets`` writes)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path), row_group_size=row_group_rows)
    return path


def write_vero(rows: list[dict], path: Path, row_group_rows: int = 100) -> Path:
    return write_parquet(rows, VERO_SCHEMA, path, row_group_rows)


def write_mmfinereason(rows: list[dict], path: Path, row_group_rows: int = 100) -> Path:
    return write_parquet(rows, MMFINEREASON_SCHEMA, path, row_group_rows)


# ------------------------------------------------------------------------------------------------ benchmark set

VERO_BENCH_SUBSETS = [("ai2d_merged", "multiple_choice"), ("chartqa_difficulty", "numeric"), ("geo170k", "numeric"),
                      ("tallyqa", "counting"), ("gqa", "string_match"), ("refcocog", "grounding"),
                      ("vizwiz", "string_match")]
MMFR_BENCH_SOURCES = ["MMR1", "FineVision-geometry3k(mathv360k)", "FineVision-ai2d_merged", "FineVision-scienceqa",
                      "VisualSphinx", "mmopenr1-8k", "SomeNewSource"]


def synthetic_inputs(root: Path, n_rows: int, seed: int = 0, image_pool: int = 64, small_images: bool = False,
                     rows_per_file: int = 2000) -> tuple[Path, Path]:
    """Write ``n_rows`` rows (55% Vero, 45% MMFineReason) under ``root``; returns (vero dir, mmfinereason dir).

    Images come from a pool of ``image_pool`` distinct PNG/JPEG images per source (real bytes of realistic
    sizes, 300 to 2000 pixels a side, some too small or too large); each row's question is unique, so rows
    are distinct for de-duplication except for a planted 1% of cross-source duplicates and 1% bad rows.
    """
    rng = random.Random(seed)
    root = Path(root)
    sizes = ([(160, 120), (220, 180), (300, 260), (400, 300)] if small_images else
             [(640, 480), (800, 600), (1024, 768), (1280, 960), (1920, 1080), (500, 500), (2200, 1700), (350, 300),
              (90, 200)])
    pool = []
    for k in range(image_pool):
        w, h = sizes[k % len(sizes)]
        pool.append(jpeg(w, h, seed=k) if k % 2 else png(w, h, seed=k))
    n_vero = n_rows * 55 // 100
    vero_rows, mmfr_rows, shared = [], [], []
    for i in range(n_vero):
        subset, rtype = VERO_BENCH_SUBSETS[i % len(VERO_BENCH_SUBSETS)]
        q = f"Question {i} about the figure: what is the value of item {rng.randint(0, 10**6)}?"
        if rtype == "multiple_choice":
            q += "\nA. 1\nB. 2\nC. 3\nD. 4\nAnswer with the option's letter from the given choices directly."
            answer = "ABCD"[i % 4]
        elif rtype == "grounding":
            answer = "[10, 20, 30, 40]"
        else:
            answer = str(rng.randint(0, 999))
        img = pool[i % image_pool]
        if i % 100 == 7:
            shared.append((q, answer, img))
        if i % 100 == 13:
            answer = "x" * 600  # over-long answer
        vero_rows.append(vero_row(f"v{i}", subset, q, answer, image_cell(img), reward_type=rtype))
    for i in range(n_rows - n_vero):
        source = MMFR_BENCH_SOURCES[i % len(MMFR_BENCH_SOURCES)]
        if shared and i % 100 == 3:
            q, answer, img = shared.pop()
        else:
            q = f"Problem {i}: find the length of segment {rng.randint(0, 10**6)} in the diagram."
            answer = str(rng.randint(0, 99))
            img = pool[(i * 7) % image_pool]
        pass_rate = [0.0, 0.25, 0.5, 0.75][i % 4]
        if i % 100 == 29:
            img = b"not an image"
        mmfr_rows.append(mmfinereason_row(f"m{i}", source, q, answer, image_cell(img), pass_rate=pass_rate))
    vero_dir, mmfr_dir = root / "vero", root / "mmfinereason"
    for k in range(0, len(vero_rows), rows_per_file):
        write_vero(vero_rows[k:k + rows_per_file], vero_dir / "data" / f"train-{k // rows_per_file:05d}.parquet")
    for k in range(0, len(mmfr_rows), rows_per_file):
        write_mmfinereason(mmfr_rows[k:k + rows_per_file],
                           mmfr_dir / "data" / f"train-{k // rows_per_file:05d}.parquet")
    return vero_dir, mmfr_dir
