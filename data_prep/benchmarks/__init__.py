"""Evaluation benchmarks in the trainer's parquet layout: one converter per benchmark, one registry line each.

    python -m data_prep.benchmarks --suite llm,vlm,video --src ROOT --out DIR [--frames 8] [--limit N]
    python -m data_prep.benchmarks --suite mathvista,mmstar --src ROOT --out DIR

``--suite`` takes family names (``llm``, ``vlm``, ``video``: the default suite of each) and/or benchmark names.
Each benchmark is read from ``ROOT/<name>/`` (a local copy in its published layout, see docs/evaluation.md;
``--path NAME=DIR`` points one elsewhere) and written to ``DIR/<name>.parquet``; ``DIR/manifest.json`` records
rows, family, split, source and options of each. A missing or malformed copy, or an unknown name, is one line
and the other benchmarks still convert.

Adding a benchmark: a converter ``fn(source) -> Iterable[Item]`` (llm.py / vlm.py / video.py, a few lines with the
helpers of common.py) and one ``Benchmark(...)`` line in ``BENCHMARKS`` below.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import llm, video, vlm
from .common import ConvertOptions, Item, Source, SourceError, rows_of, write_rows

FAMILIES = ("llm", "vlm", "video")


@dataclass(frozen=True)
class Benchmark:
    name: str  # data_source of its rows and file name
    family: str  # llm | vlm | video
    convert: Callable[[Source], Iterable[Item]]
    title: str  # display name in reports
    origin: str  # the published copy the converter reads
    split: str
    licence: str
    in_suite: bool = True  # part of its family's default suite


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("aime24", "llm", llm.aime, "AIME24", "HuggingFaceH4/aime_2024", "train (30)",
                  "MAA problems; see card"),
        Benchmark("aime25", "llm", llm.aime, "AIME25", "math-ai/aime25 or opencompass/AIME2025", "test (30)",
                  "MAA problems; see card"),
        Benchmark("math500", "llm", llm.math500, "MATH500", "HuggingFaceH4/MATH-500", "test (500)", "MIT (MATH)"),
        Benchmark("gpqa_diamond", "llm", llm.gpqa_diamond, "GPQA-Diamond", "Idavidrein/gpqa", "diamond (198)",
                  "CC BY 4.0 (gated)"),
        Benchmark("mmlu_pro", "llm", llm.mmlu_pro, "MMLU-Pro", "TIGER-Lab/MMLU-Pro", "test (12,032)", "MIT"),
        Benchmark("mathvista", "vlm", vlm.mathvista, "MathVista", "AI4Math/MathVista", "testmini (1,000)",
                  "CC BY-SA 4.0"),
        Benchmark("mathverse", "vlm", vlm.mathverse, "MathVerse", "AI4Math/MathVerse", "testmini (3,940)", "see card"),
        Benchmark("mathvision", "vlm", vlm.mathvision, "MathVision", "MathLLMs/MathVision", "test (3,040)", "MIT"),
        Benchmark("mmmu", "vlm", vlm.mmmu, "MMMU", "MMMU/MMMU", "validation (900)", "Apache-2.0"),
        Benchmark("mmmu_pro", "vlm", vlm.mmmu_pro, "MMMU-Pro", "MMMU/MMMU_Pro", "standard (10 options) (1,730)",
                  "Apache-2.0"),
        Benchmark("mmmu_pro_vision", "vlm", vlm.mmmu_pro_vision, "MMMU-Pro (vision)", "MMMU/MMMU_Pro",
                  "vision (1,730)", "Apache-2.0", in_suite=False),
        Benchmark("mmstar", "vlm", vlm.mmstar, "MMStar", "Lin-Chen/MMStar", "val (1,500)", "see card"),
        Benchmark("ai2d", "vlm", vlm.ai2d, "AI2D", "lmms-lab/ai2d", "test (3,088)", "see card"),
        Benchmark("chartqa", "vlm", vlm.chartqa, "ChartQA", "lmms-lab/ChartQA", "test (2,500)", "GPL-3.0"),
        Benchmark("charxiv", "vlm", vlm.charxiv, "CharXiv (RQ)", "princeton-nlp/CharXiv",
                  "validation reasoning (1,000)", "CC BY-SA 4.0"),
        Benchmark("ocrbench", "vlm", vlm.ocrbench, "OCRBench", "echo840/OCRBench", "test (1,000)", "see card"),
        Benchmark("realworldqa", "vlm", vlm.realworldqa, "RealWorldQA", "xai-org/RealworldQA", "test (765)",
                  "CC BY-ND 4.0"),
        Benchmark("hallusionbench", "vlm", vlm.hallusionbench, "HallusionBench", "lmms-lab/HallusionBench",
                  "image (951)", "see card"),
        Benchmark("blink", "vlm", vlm.blink, "BLINK", "BLINK-Benchmark/BLINK", "val (1,901)", "Apache-2.0"),
        Benchmark("wemath", "vlm", vlm.wemath, "WeMath", "We-Math/We-Math", "testmini (1,740)", "see card"),
        Benchmark("logicvista", "vlm", vlm.logicvista, "LogicVista", "Yijia-Xiao/LogicVista (GitHub)", "all (448)",
                  "see repository"),
        Benchmark("dynamath", "vlm", vlm.dynamath, "DynaMath", "DynaMath/DynaMath_Sample", "10 variants (5,010)",
                  "Apache-2.0"),
        Benchmark("videomme", "video", video.videomme, "Video-MME", "lmms-lab/Video-MME", "test (2,700)",
                  "research use; see card"),
        Benchmark("mvbench", "video", video.mvbench, "MVBench", "OpenGVLab/MVBench", "20 tasks (4,000)",
                  "MIT (videos: their sources' terms)"),
        Benchmark("longvideobench", "video", video.longvideobench, "LongVideoBench", "longvideobench/LongVideoBench",
                  "validation (1,337)", "CC BY-NC-SA 4.0"),
        Benchmark("mlvu", "video", video.mlvu, "MLVU", "MLVU/MVLU", "dev, multiple choice (2,174)", "CC BY-NC-SA 4.0"),
        Benchmark("videommmu", "video", video.videommmu, "VideoMMMU", "lmms-lab/VideoMMMU", "test (900)",
                  "research use; see card"),
    ]
}


def suite(family: str) -> list[str]:
    """The default benchmarks of a family."""
    return [b.name for b in BENCHMARKS.values() if b.family == family and b.in_suite]


def resolve(tokens: Iterable[str]) -> tuple[list[str], list[str]]:
    """(benchmark names, unknown tokens) for a list of family and/or benchmark names, in order, without repeats."""
    names, unknown = [], []
    for token in tokens:
        token = token.strip().lower().replace("-", "_")
        if not token:
            continue
        found = suite(token) if token in FAMILIES else [token] if token in BENCHMARKS else None
        if found is None:
            unknown.append(token)
            continue
        names.extend(n for n in found if n not in names)
    return names, unknown


def convert(name: str, src: Path, out_dir: Path, options: ConvertOptions) -> dict:
    """Convert one benchmark from ``src`` (its folder) to ``out_dir/<name>.parquet``; returns its manifest entry.

    Raises SourceError (one line) when the copy is missing or malformed; no partial file is left behind.
    """
    from tqdm import tqdm

    bench = BENCHMARKS[name]
    source = Source(name, src)
    rows = rows_of(bench.convert(source), name, bench.family, bench.split, source, options)
    started = time.time()
    try:
        count = write_rows(tqdm(rows, desc=name, unit="row", leave=False, total=options.limit),
                           out_dir / f"{name}.parquet")
    finally:
        leftover = out_dir / f"{name}.parquet.tmp"
        if leftover.exists():
            leftover.unlink()
    if count == 0:
        (out_dir / f"{name}.parquet").unlink()
        raise SourceError(f"{name}: {src} yielded no rows")
    return {
        "family": bench.family,
        "title": bench.title,
        "rows": count,
        "split": bench.split,
        "origin": bench.origin,
        "source": str(src),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - started, 1),
        "options": {"min_pixels": options.min_pixels, "max_pixels": options.max_pixels, "frames": options.frames,
                    "limit": options.limit},
    }


def convert_many(names: list[str], src_root: Path, out_dir: Path, options: ConvertOptions,
                 paths: dict[str, Path] | None = None, log=print) -> dict[str, dict]:
    """Convert several benchmarks; a failing one is one line (``log``) and the others still run.

    Returns the manifest entries of those converted; ``out_dir/manifest.json`` is updated after each.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    manifest_path = out_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    done = {}
    for name in names:
        src = (paths or {}).get(name) or src_root / name
        try:
            entry = convert(name, Path(src), out_dir, options)
        except SourceError as error:
            log(f"benchmarks: {name}: skipped: {error}")
            continue
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as error:  # a layout we do not know
            log(f"benchmarks: {name}: skipped: {src} does not have the published layout "
                f"({type(error).__name__}: {error}); see docs/evaluation.md")
            continue
        done[name] = manifest[name] = entry
        manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
        log(f"benchmarks: {name}: {entry['rows']} rows -> {out_dir / (name + '.parquet')}")
    return done


__all__ = ["BENCHMARKS", "FAMILIES", "Benchmark", "ConvertOptions", "Item", "Source", "SourceError", "convert",
           "convert_many", "resolve", "suite"]
