"""Evaluation benchmarks in the trainer's parquet layout: one converter per benchmark, one registry line each.

    python -m data_prep.benchmarks --suite llm,vlm,video --src ROOT --out DIR [--frames N] [--limit N]
    python -m data_prep.benchmarks --suite mathvista,MMMUPro --src ROOT --out DIR
    python -m data_prep.benchmarks --list

The registry is the paper's suite, exactly (App. B.2, Tabs 5-7): 16 VLM, 10 LLM and 5 Video benchmarks with the
Hugging Face source, split/config and scoring protocol of Tabs 5-7 (``suite="paper"``), then benchmarks the
paper does not use, kept as an optional ``extra`` suite (``suite="extra"``, marked so in every report).
``--suite`` takes family names (``llm``, ``vlm``, ``video``: the paper's benchmarks of that family), ``paper``,
``extra``, benchmark ids, and the paper's abbreviations (``MMMUPro``, ``OCREN``, ...). Each benchmark is read from
``ROOT/<id>/`` (a local copy in its published layout, see docs/evaluation.md; ``--path ID=DIR`` points one
elsewhere) and written to ``DIR/<id>.parquet``; ``DIR/manifest.json`` records rows, family, split, source, scoring
and options of each. A missing or malformed copy, or an unknown name, is one line and the other benchmarks still
convert.

Adding a benchmark: a converter ``fn(source) -> Iterable[Item]`` (llm.py / vlm.py / video.py, a few lines with the
helpers of common.py), one ``Benchmark(...)`` line in ``BENCHMARKS`` below, and a fixture writer (fixtures.py).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from . import llm, video, vlm
from .common import DEFAULT_FRAMES, SAMPLINGS, SCORINGS, ConvertOptions, Item, Source, SourceError, rows_of, write_rows

FAMILIES = ("llm", "vlm", "video")
SUITES = ("paper", "extra")
AGGREGATES = ("mean_rows", "mean_subsets")


@dataclass(frozen=True)
class Benchmark:
    name: str  # the benchmark id: data_source of its rows and file name
    family: str  # llm | vlm | video
    convert: Callable[[Source], Iterable[Item]]
    abbrev: str  # the column header of the paper's Tabs 1-2 (extra benchmarks: a short name of ours)
    title: str  # full name (Tabs 5-7)
    origin: str  # the Hugging Face source (or the release) the converter reads
    split: str  # split / config (rows)
    scoring: str  # exact_judge | rule_judge | det | benchjudge (App. B.2, Tabs 5-7)
    suite: str = "paper"  # paper | extra
    aggregate: str = "mean_rows"  # mean_rows: accuracy over all rows; mean_subsets: mean of the subsets' accuracies
    licence: str = "see card"
    frames: int = DEFAULT_FRAMES  # video: frames per clip of the benchmark's protocol (with per_second: the cap)
    sampling: str = "segments"  # video: where the frames are taken (common.frame_times)
    per_second: float | None = None  # video: frames per second of the clip instead of a fixed count

    def __post_init__(self):
        for key, value, allowed in (("family", self.family, FAMILIES), ("scoring", self.scoring, tuple(SCORINGS)),
                                    ("suite", self.suite, SUITES), ("aggregate", self.aggregate, AGGREGATES),
                                    ("sampling", self.sampling, SAMPLINGS)):
            if value not in allowed:
                raise ValueError(f"benchmark {self.name}: {key}={value!r} is not one of {', '.join(allowed)}")

    @property
    def scoring_label(self) -> str:
        return SCORINGS[self.scoring]


B = Benchmark
_PAPER = [
    # Tab. 5: 16 VLM benchmarks
    B("ai2d", "vlm", vlm.ai2d, "AI2D", "AI2 Diagrams", "lmms-lab/ai2d", "test (3,088)", "exact_judge"),
    B("babyvision", "vlm", vlm.babyvision, "BabyV", "BabyVision", "UnipatAI/BabyVision", "train (388)",
      "exact_judge"),
    B("charxiv", "vlm", vlm.charxiv, "CharXiv", "CharXiv (reasoning + descriptive)", "princeton-nlp/CharXiv",
      "validation: reasoning (1,000) + descriptive (4,000)", "benchjudge", aggregate="mean_subsets",
      licence="CC BY-SA 4.0"),
    B("dynamath", "vlm", vlm.dynamath, "DynaM", "DynaMath (501 seeds x 10 variants)", "DynaMath/DynaMath_Sample",
      "sample_variant1-10 (5,010)", "exact_judge", licence="Apache-2.0"),
    B("embspatial", "vlm", vlm.embspatial, "EmbSp", "EmbSpatial-Bench", "FlagEval/EmbSpatial-Bench", "test (3,640)",
      "exact_judge"),
    B("infovqa", "vlm", vlm.infovqa, "InfoVQA", "InfographicVQA", "lmms-lab/DocVQA",
      "InfographicVQA / validation (2,801)", "det"),
    B("mathverse", "vlm", vlm.mathverse, "MVerse", "MathVerse (testmini)", "CaraJ/MathVerse-lmmseval",
      "testmini / testmini, all 5 versions (3,940)", "exact_judge"),
    B("mathvision", "vlm", vlm.mathvision, "MVision", "MathVision", "MathLLMs/MathVision", "test (3,040)",
      "exact_judge", licence="MIT"),
    B("mathvista", "vlm", vlm.mathvista, "MVista", "MathVista (testmini)", "AI4Math/MathVista", "testmini (1,000)",
      "rule_judge", licence="CC BY-SA 4.0"),
    B("mmmu_pro", "vlm", vlm.mmmu_pro, "MMMUPro", "MMMU-Pro (all 3 configs)", "MMMU/MMMU_Pro",
      "standard (10 options) + standard (4 options) + vision / test (3 x 1,730)", "exact_judge",
      aggregate="mean_subsets", licence="Apache-2.0"),
    B("mm_vet", "vlm", vlm.mm_vet, "MM-Vet", "MM-Vet", "lmms-lab/MMVet", "test (218)", "benchjudge"),
    B("ocrbench_v2_en", "vlm", vlm.ocrbench_v2_en, "OCREN", "OCRBench v2 (English subset)", "ling99/OCRBench_v2",
      "test, types ending ' en'", "det", aggregate="mean_subsets"),
    B("ocrbench_v2_zh", "vlm", vlm.ocrbench_v2_zh, "OCRZH", "OCRBench v2 (Chinese subset)", "ling99/OCRBench_v2",
      "test, types ending ' cn'", "det", aggregate="mean_subsets"),
    B("visualpuzzles", "vlm", vlm.visualpuzzles, "VisP", "VisualPuzzles", "neulab/VisualPuzzles", "train (1,168)",
      "exact_judge"),
    B("vlms_are_blind", "vlm", vlm.vlms_are_blind, "VBlind", "VLMs-are-Blind", "XAI/vlmsareblind", "valid",
      "exact_judge"),
    B("wemath", "vlm", vlm.wemath, "WeMath", "WeMath (testmini)", "We-Math/We-Math", "testmini (1,740)",
      "exact_judge"),
    # Tab. 6: 10 LLM benchmarks
    B("aime25", "llm", llm.aime, "AIME25", "AIME 2025 (AIME2025-I/II)", "opencompass/AIME2025",
      "AIME2025-I + AIME2025-II / test (30)", "exact_judge", licence="MAA problems; see card"),
    B("aime26", "llm", llm.aime, "AIME26", "AIME 2026", "MathArena/aime_2026", "train (30)", "exact_judge",
      licence="MAA problems; see card"),
    B("ceval", "llm", llm.ceval, "CEval", "C-Eval (val, all 52 subjects)", "ceval/ceval-exam",
      "52 subject configs / val (1,346)", "exact_judge", licence="CC BY-NC-SA 4.0"),
    B("gpqa_diamond", "llm", llm.gpqa_diamond, "GPQA-D", "GPQA-Diamond", "Idavidrein/gpqa",
      "gpqa_diamond / train (198)", "exact_judge", licence="CC BY 4.0 (gated)"),
    B("hle", "llm", llm.hle, "HLE", "Humanity's Last Exam", "cais/hle", "test (2,500)", "benchjudge",
      licence="MIT (gated)"),
    B("imo_answerbench", "llm", llm.imo_answerbench, "IMO-AB", "IMO-AnswerBench", "OpenEvals/IMO-AnswerBench",
      "all rows (400)", "exact_judge"),
    B("mmlu", "llm", llm.mmlu, "MMLU", "MMLU (test, all subjects)", "cais/mmlu", "all / test (14,042)",
      "exact_judge", licence="MIT"),
    B("mmlu_pro", "llm", llm.mmlu_pro, "MMLU-Pro", "MMLU-Pro", "TIGER-Lab/MMLU-Pro", "test (12,032)", "exact_judge",
      licence="MIT"),
    B("mmlu_redux", "llm", llm.mmlu_redux, "MMLU-Rd", "MMLU-Redux 2.0 (all 57 subjects)",
      "edinburgh-dawg/mmlu-redux-2.0", "57 subject configs / test, error_type ok", "exact_judge",
      licence="CC BY 4.0"),
    B("multichallenge", "llm", llm.multichallenge, "MultiCh", "MultiChallenge", "ScaleAI/MultiChallenge",
      "all rows (273)", "benchjudge"),
    # Tab. 7: 5 Video benchmarks
    B("mmvu", "video", video.mmvu, "MMVU", "MMVU (validation)", "yale-nlp/MMVU", "validation (1,000)", "benchjudge",
      frames=64, sampling="linspace", per_second=1.0),
    B("mvbench", "video", video.mvbench, "MVBench", "MVBench (20 task configs)", "OpenGVLab/MVBench",
      "20 task configs / train (4,000)", "rule_judge", licence="MIT (videos: their sources' terms)", frames=16,
      sampling="segments"),
    B("videomme", "video", video.videomme, "VMME", "Video-MME (w/o subtitles)", "lmms-lab/Video-MME", "test (2,700)",
      "rule_judge", licence="research use; see card", frames=32, sampling="linspace"),
    B("videomme_sub", "video", video.videomme_sub, "VMMES", "Video-MME (with subtitles)", "lmms-lab/Video-MME",
      "test + subtitle/*.srt (2,700)", "rule_judge", licence="research use; see card", frames=32,
      sampling="linspace"),
    B("videommmu", "video", video.videommmu, "VMMMU", "Video-MMMU", "lmms-lab/VideoMMMU",
      "Perception + Comprehension + Adaptation / test (900)", "rule_judge", licence="research use; see card",
      frames=32, sampling="linspace"),
]
# Benchmarks the paper does not use: the optional ``extra`` suite (abbreviations and scoring labels are ours).
_EXTRA = [
    B("aime24", "llm", llm.aime, "AIME24", "AIME 2024", "HuggingFaceH4/aime_2024", "train (30)", "exact_judge",
      suite="extra", licence="MAA problems; see card"),
    B("math500", "llm", llm.math500, "MATH500", "MATH-500", "HuggingFaceH4/MATH-500", "test (500)", "exact_judge",
      suite="extra", licence="MIT (MATH)"),
    B("mmmu", "vlm", vlm.mmmu, "MMMU", "MMMU", "MMMU/MMMU", "validation (900)", "exact_judge", suite="extra",
      licence="Apache-2.0"),
    B("mmstar", "vlm", vlm.mmstar, "MMStar", "MMStar", "Lin-Chen/MMStar", "val (1,500)", "exact_judge",
      suite="extra"),
    B("chartqa", "vlm", vlm.chartqa, "ChartQA", "ChartQA", "lmms-lab/ChartQA", "test (2,500)", "exact_judge",
      suite="extra", licence="GPL-3.0"),
    B("ocrbench", "vlm", vlm.ocrbench, "OCRBench", "OCRBench (v1)", "echo840/OCRBench", "test (1,000)",
      "exact_judge", suite="extra"),
    B("realworldqa", "vlm", vlm.realworldqa, "RWQA", "RealWorldQA", "xai-org/RealworldQA", "test (765)",
      "exact_judge", suite="extra", licence="CC BY-ND 4.0"),
    B("hallusionbench", "vlm", vlm.hallusionbench, "HallB", "HallusionBench", "lmms-lab/HallusionBench",
      "image (951)", "exact_judge", suite="extra"),
    B("blink", "vlm", vlm.blink, "BLINK", "BLINK", "BLINK-Benchmark/BLINK", "val (1,901)", "exact_judge",
      suite="extra", licence="Apache-2.0"),
    B("logicvista", "vlm", vlm.logicvista, "LogicV", "LogicVista", "Yijia-Xiao/LogicVista (GitHub)", "all (448)",
      "exact_judge", suite="extra", licence="see repository"),
    B("longvideobench", "video", video.longvideobench, "LVBench", "LongVideoBench", "longvideobench/LongVideoBench",
      "validation (1,337)", "rule_judge", suite="extra", licence="CC BY-NC-SA 4.0"),
    B("mlvu", "video", video.mlvu, "MLVU", "MLVU (dev, multiple choice)", "MLVU/MVLU", "dev, multiple choice (2,174)",
      "rule_judge", suite="extra", licence="CC BY-NC-SA 4.0"),
]
BENCHMARKS: dict[str, Benchmark] = {b.name: b for b in _PAPER + _EXTRA}


def suite(family: str) -> list[str]:
    """The paper's benchmarks of a family (``llm``, ``vlm``, ``video``), or every benchmark of a suite (``paper``,
    ``extra``)."""
    if family in SUITES:
        return [b.name for b in BENCHMARKS.values() if b.suite == family]
    return [b.name for b in BENCHMARKS.values() if b.family == family and b.suite == "paper"]


def _key(token: str) -> str:
    return token.strip().lower().replace("-", "_").replace(" ", "_")


_BY_ABBREV = {_key(b.abbrev): b.name for b in BENCHMARKS.values()}


def resolve(tokens: Iterable[str]) -> tuple[list[str], list[str]]:
    """(benchmark ids, unknown tokens) for a list of families, suites, benchmark ids and/or abbreviations, in
    order, without repeats."""
    names, unknown = [], []
    for token in tokens:
        token = _key(token)
        if not token:
            continue
        if token in FAMILIES or token in SUITES:
            found = suite(token)
        elif token in BENCHMARKS:
            found = [token]
        elif token in _BY_ABBREV:
            found = [_BY_ABBREV[token]]
        else:
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
    rows = rows_of(bench.convert(source), name, bench.family, bench.split, source, options, scoring=bench.scoring,
                   frames=bench.frames, sampling=bench.sampling, per_second=bench.per_second)
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
        "abbrev": bench.abbrev,
        "suite": bench.suite,
        "scoring": bench.scoring,
        "aggregate": bench.aggregate,
        "rows": count,
        "split": bench.split,
        "origin": bench.origin,
        "source": str(src),
        "converted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "seconds": round(time.time() - started, 1),
        "options": {"min_pixels": options.min_pixels, "max_pixels": options.max_pixels,
                    "frames": (options.frames or bench.frames) if bench.family == "video" else None,
                    "sampling": bench.sampling if bench.family == "video" else None,
                    "per_second": None if options.frames else bench.per_second, "limit": options.limit},
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


__all__ = ["AGGREGATES", "BENCHMARKS", "FAMILIES", "SUITES", "Benchmark", "ConvertOptions", "Item", "Source",
           "SourceError", "convert", "convert_many", "resolve", "suite"]
