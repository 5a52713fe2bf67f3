"""Tiny RL data sets in verl's parquet layout: arithmetic (text) and images drawn with PIL (vision).

Each set is a folder with ``train.parquet`` and ``val.parquet``. Columns (see ``text_schema``/``vl_schema``):

- ``data_source`` (string), ``ability`` (string)
- ``prompt``: list<struct<role, content>>, one user message whose content is
  ``"<image>" * k + question + "\\n\\n" + ANSWER_CLOSER``
- ``reward_model``: struct<style="rule", ground_truth>
- ``extra_info``: struct<index int64, split, question_id (stable, unique), question (no closer, with the
  ``<image>`` placeholders), answer, reward_type ("numeric" | "string_match"), teacher_responses list<string>,
  teacher_correct list<bool>>
- ``images`` (vision set only): list<struct<bytes: binary>>, PNG bytes, the form verl's RLHFDataset opens.

Rows are generated from ``random.Random(seed)``; the parquet files are written by pyarrow with fixed settings, so
the same parameters give the same bytes. ``teacher_responses=N`` fills each row with N synthetic teacher
responses in the answer format (a fraction of them wrong), for tests of the offline-teacher path; the default 0
leaves the lists empty (the column type stays list<string>).
"""

from __future__ import annotations

import hashlib
import io
import random
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.row_schema import extra_info_type, row_schema

ARITH_SOURCE = "tiny_arith"
VL_SOURCE = "tiny_shapes"

ARITH_TEMPLATES = ["What is {a} {op} {b}?"]
VL_TEMPLATES = {
    "count": "How many circles are in the image?",
    "count2": "How many circles are in the two images in total?",
    "digit": "What digit is drawn in the image?",
    "shape": "What shape is drawn in the image? Answer with one word: circle, square or triangle.",
}

_PALETTE = [(220, 40, 40), (40, 160, 60), (40, 80, 220), (230, 160, 20), (150, 50, 180), (20, 20, 20)]

_EXTRA_T = extra_info_type(
    ("teacher_responses", pa.list_(pa.string())),
    ("teacher_correct", pa.list_(pa.bool_())),
)


def text_schema() -> pa.Schema:
    return row_schema(_EXTRA_T, images=False)


def vl_schema() -> pa.Schema:
    return row_schema(_EXTRA_T, images=True)

REQUIRED_COLUMNS = tuple(text_schema().names)
EXTRA_INFO_KEYS = tuple(f.name for f in _EXTRA_T)


def user_content(question: str) -> str:
    """The user message: question (with its ``<image>`` placeholders), blank line, the answer closer (Fig. 8)."""
    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    return question + "\n\n" + ANSWER_CLOSER


def _write_parquet(rows: list[dict], schema: pa.Schema, path: Path) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    pq.write_table(
        table,
        str(path),
        compression="snappy",
        use_dictionary=False,
        write_statistics=False,
        version="2.6",
        data_page_version="1.0",
        row_group_size=1 << 20,
        store_schema=True,
    )


def _row(source, ability, question, answer, reward_type, split, index, qid, teachers, images=None):
    from recipe.zppo.algo.answer_format import extract_final_answer

    row = {
        "data_source": source,
        "prompt": [{"role": "user", "content": user_content(question)}],
        "ability": ability,
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {
            "index": index,
            "split": split,
            "question_id": qid,
            "question": question,
            "answer": answer,
            "reward_type": reward_type,
            "teacher_responses": teachers,
            "teacher_correct": [extract_final_answer(t) == answer for t in teachers],
        },
    }
    if images is not None:
        row["images"] = [{"bytes": b} for b in images]
    return row


def _qid(source: str, *parts: bytes | str) -> str:
    h = hashlib.sha1()
    for p in parts:
        h.update(p if isinstance(p, bytes) else p.encode("utf-8"))
        h.update(b"\x00")
    return f"{source}-{h.hexdigest()[:12]}"


# ---------------------------------------------------------------------------------------------------- text set


def _arith_item(rng: random.Random):
    """(question, value, reasoning(value) -> str)."""
    op = rng.choice(["+", "-", "*"])
    if op == "*":
        a, b = rng.randint(2, 12), rng.randint(2, 12)
    else:
        a, b = rng.randint(0, 50), rng.randint(0, 50)
        if op == "-" and b > a:
            a, b = b, a
    val = {"+": a + b, "-": a - b, "*": a * b}[op]
    return rng.choice(ARITH_TEMPLATES).format(a=a, b=b, op=op), val, lambda v: f"{a}{op}{b}={v}"


def _teachers(rng: random.Random, n: int, wrong_prob: float, answer, reasoning, wrong) -> list[str]:
    """``n`` synthetic teacher responses in the answer format; each is wrong (reasoning and box consistently
    wrong, ``wrong(rng)``) with probability ``wrong_prob``."""
    out = []
    for _ in range(n):
        value = wrong(rng) if rng.random() < wrong_prob else answer
        out.append(f"<think>{reasoning(value)}</think> \\boxed{{{value}}}")
    return out


def build_text_rows(
    n_train: int = 320, n_val: int = 32, seed: int = 0, teacher_responses: int = 0, teacher_wrong_prob: float = 0.25
) -> dict[str, list[dict]]:
    """Arithmetic rows for both splits (unique questions, val disjoint from train)."""
    rng = random.Random(f"tiny-arith-{seed}")
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    for split, n in (("train", n_train), ("val", n_val)):
        rows = []
        while len(rows) < n:
            question, val, reasoning = _arith_item(rng)
            if question in seen:
                continue
            seen.add(question)
            wrong = lambda r, v=val: v + r.choice([-2, -1, 1, 2, 10])  # noqa: E731
            teachers = _teachers(rng, teacher_responses, teacher_wrong_prob, val, reasoning, wrong)
            rows.append(
                _row(ARITH_SOURCE, "math", question, str(val), "numeric", split, len(rows),
                     _qid(ARITH_SOURCE, question, str(val)), teachers)
            )
        out[split] = rows
    return out


# -------------------------------------------------------------------------------------------------- vision set


def _png(img) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=False, compress_level=6)
    return buf.getvalue()


def _draw_circles(rng: random.Random, n: int, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    placed: list[tuple[int, int, int]] = []
    while len(placed) < n:
        r = rng.randint(max(4, size // 14), max(5, size // 9))
        x, y = rng.randint(r + 1, size - r - 2), rng.randint(r + 1, size - r - 2)
        if all((x - px) ** 2 + (y - py) ** 2 > (r + pr + 3) ** 2 for px, py, pr in placed):
            placed.append((x, y, r))
            d.ellipse([x - r, y - r, x + r, y + r], fill=rng.choice(_PALETTE))
    return img


# Seven-segment layout: a (top), b (top right), c (bottom right), d (bottom), e (bottom left), f (top left), g.
_SEGMENTS = {
    0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc",
    5: "afgcd", 6: "afgedc", 7: "abc", 8: "abcdefg", 9: "abcdfg",
}


def _draw_digit(rng: random.Random, digit: int, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    w, h = rng.randint(size * 3 // 10, size * 4 // 10), rng.randint(size * 5 // 10, size * 7 // 10)
    t = max(3, size // 16)
    x0, y0 = rng.randint(4, size - w - 4), rng.randint(4, size - h - 4)
    x1, y1, ym = x0 + w, y0 + h, y0 + h // 2
    boxes = {
        "a": (x0, y0, x1, y0 + t), "d": (x0, y1 - t, x1, y1), "g": (x0, ym - t // 2, x1, ym + (t - t // 2)),
        "f": (x0, y0, x0 + t, ym), "e": (x0, ym, x0 + t, y1), "b": (x1 - t, y0, x1, ym), "c": (x1 - t, ym, x1, y1),
    }
    color = rng.choice(_PALETTE)
    for s in _SEGMENTS[digit]:
        d.rectangle(boxes[s], fill=color)
    return img


def _draw_shape(rng: random.Random, shape: str, size: int):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    d = ImageDraw.Draw(img)
    s = rng.randint(size // 3, size * 2 // 3)
    x, y = rng.randint(2, size - s - 2), rng.randint(2, size - s - 2)
    color = rng.choice(_PALETTE)
    if shape == "circle":
        d.ellipse([x, y, x + s, y + s], fill=color)
    elif shape == "square":
        d.rectangle([x, y, x + s, y + s], fill=color)
    else:
        d.polygon([(x + s // 2, y), (x, y + s), (x + s, y + s)], fill=color)
    return img


_SHAPES = ["circle", "square", "triangle"]


def _vl_item(rng: random.Random, kind: str, size: int):
    """(question with <image> placeholders, answer, reward_type, reasoning(value) -> str, wrong(rng) -> value,
    images)."""
    if kind == "count":
        n = rng.randint(1, 5)
        imgs = [_draw_circles(rng, n, size)]
        return ("<image>" + VL_TEMPLATES["count"], str(n), "numeric", lambda v: f"I count {v} circles.",
                lambda r: n + r.choice([-1, 1, 2]) if n > 1 else n + r.choice([1, 2]), imgs)
    if kind == "count2":
        n1, n2 = rng.randint(1, 3), rng.randint(1, 3)
        imgs = [_draw_circles(rng, n1, size), _draw_circles(rng, n2, size)]
        return ("<image><image>" + VL_TEMPLATES["count2"], str(n1 + n2), "numeric",
                lambda v: f"The first image has {n1} circles, the second {n2}: {v} in total.",
                lambda r: n1 + n2 + r.choice([-1, 1]), imgs)
    if kind == "digit":
        k = rng.randint(0, 9)
        return ("<image>" + VL_TEMPLATES["digit"], str(k), "numeric", lambda v: f"The segments form the digit {v}.",
                lambda r: (k + r.randint(1, 9)) % 10, [_draw_digit(rng, k, size)])
    shape = rng.choice(_SHAPES)
    return ("<image>" + VL_TEMPLATES["shape"], shape, "string_match", lambda v: f"The shape is a {v}.",
            lambda r: r.choice([s for s in _SHAPES if s != shape]), [_draw_shape(rng, shape, size)])


def build_vl_rows(
    n_train: int = 200,
    n_val: int = 32,
    seed: int = 0,
    image_size: int = 96,
    two_image_every: int = 8,
    teacher_responses: int = 0,
    teacher_wrong_prob: float = 0.25,
) -> dict[str, list[dict]]:
    """Image rows for both splits: count circles, read a seven-segment digit, name a shape; every
    ``two_image_every``-th row (0: none) asks for the circles in two images."""
    rng = random.Random(f"tiny-shapes-{seed}")
    kinds = ["count", "digit", "shape"]
    seen: set[str] = set()
    out: dict[str, list[dict]] = {}
    counter = 0
    for split, n in (("train", n_train), ("val", n_val)):
        rows = []
        while len(rows) < n:
            counter += 1
            kind = "count2" if two_image_every and counter % two_image_every == 0 else kinds[counter % 3]
            question, answer, rtype, reasoning, wrong, imgs = _vl_item(rng, kind, image_size)
            pngs = [_png(im) for im in imgs]
            qid = _qid(VL_SOURCE, question, answer, *pngs)
            if qid in seen:
                continue
            seen.add(qid)
            teachers = _teachers(rng, teacher_responses, teacher_wrong_prob, answer, reasoning, wrong)
            rows.append(_row(VL_SOURCE, "vision", question, answer, rtype, split, len(rows), qid, teachers, pngs))
        out[split] = rows
    return out


def write_splits(rows: dict[str, list[dict]], schema: pa.Schema, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for split, split_rows in rows.items():
        _write_parquet(split_rows, schema, out_dir / f"{split}.parquet")
