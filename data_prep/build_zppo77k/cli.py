"""Command line of the ZPPO-77K builder (``python -m data_prep.build_zppo77k --help``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from data_prep.vision import MAX_PIXELS, MIN_PIXELS

from .builder import BuildError, BuildOptions, build, format_table
from .inputs import InputError
from .tiers import DEFAULT_TABLE, TIERS, TierTableError

# The two data sets as the ZPPO paper names them (App. B.1, footnotes 1 and 2).
VERO_HUB_ID = "zlab-princeton/Vero-600k"
MMFINEREASON_HUB_ID = "OpenDataArena/MMFineReason-SFT-586K-Qwen3-VL-235B-Thinking"


STUDENT_PROCESSOR = "Qwen/Qwen3.5-0.8B"  # the paper's smallest student (Tab. 8)


def _input(value: str | None) -> str | None:
    return None if value is None or value.strip().lower() in ("", "none") else value


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m data_prep.build_zppo77k",
        description="Build ZPPO-77K (verl RL parquet shards with embedded images) from local copies of "
                    "Vero-600k and MMFineReason-SFT-586K. Rules, in order: row filters, cross-source "
                    "de-duplication (Vero wins), seeded caps per sub-dataset tier. See docs/data.md.")
    p.add_argument("--vero", default=VERO_HUB_ID,
                   help="Vero-600k: parquet file/folder (any nesting), datasets.save_to_disk folder, or hub id "
                        f"(default: the paper's {VERO_HUB_ID}); 'none' to leave it out")
    p.add_argument("--mmfinereason", default=MMFINEREASON_HUB_ID,
                   help=f"MMFineReason-SFT-586K: same forms as --vero (default: the paper's {MMFINEREASON_HUB_ID}); "
                        "'none' to leave it out")
    p.add_argument("--out", required=True, type=Path, help="output folder (shards, val.parquet, summary.json)")
    p.add_argument("--tier-table", type=Path, default=None,
                   help=f"tier table YAML (default: {DEFAULT_TABLE.name} in the package)")
    p.add_argument("--unknown-source-tier", choices=TIERS, default="excluded",
                   help="tier of a sub-dataset missing from the tier table (default: excluded); every such "
                        "sub-dataset is printed with its row count at the end")
    p.add_argument("--processor", default=STUDENT_PROCESSOR,
                   help="the student's processor (hub id or a folder with its tokenizer, chat template and image "
                        "processor): every prompt is counted (templated text + image tokens + closer) and rows "
                        "over --max-prompt-tokens are dropped (rule prompt_too_long). Default: the paper's "
                        f"{STUDENT_PROCESSOR} (ours: the Qwen3.5 students share one processor; pass your "
                        "student's); 'none' counts nothing (training may then cut a prompt)")
    p.add_argument("--max-prompt-tokens", type=int, default=4096,
                   help="prompt budget of a plain rollout, tokens (default 4096, the paper's App. D.1)")
    p.add_argument("--strict", action="store_true",
                   help="fail, before writing anything, if any sub-dataset is missing from the tier table")
    p.add_argument("--tier1-cap", type=int, default=2800, help="rows per tier-1 sub-dataset (default 2800)")
    p.add_argument("--tier2-cap", type=int, default=1400, help="rows per tier-2 sub-dataset (default 1400)")
    p.add_argument("--max-pass-rate", type=float, default=0.5,
                   help="drop MMFineReason rows whose pass rate (pass_rate or qwen3vl_4b_pass_rate) is above this "
                        "(default 0.5)")
    p.add_argument("--max-answer-chars", type=int, default=512, help="longest gold answer kept (default 512)")
    p.add_argument("--min-image-side", type=int, default=100, help="shortest image side kept, pixels (default 100)")
    p.add_argument("--min-pixels", type=int, default=MIN_PIXELS,
                   help=f"images below are upscaled to it (default {MIN_PIXELS} = 256*32*32; must match the "
                        "processor's min_pixels in training and evaluation)")
    p.add_argument("--max-pixels", type=int, default=MAX_PIXELS,
                   help=f"images above are downscaled to it (default {MAX_PIXELS} = 1280*32*32)")
    p.add_argument("--seed", type=int, default=0, help="seed of the cap sample and the validation draw")
    p.add_argument("--val-rows", type=int, default=0,
                   help="rows drawn (seeded, after the caps) into val.parquet instead of train (default 0)")
    p.add_argument("--shard-rows", type=int, default=10_000, help="rows per train shard at most (default 10000)")
    p.add_argument("--max-shard-mb", type=float, default=512.0,
                   help="row payload (mostly image bytes) per train shard at most, MiB (default 512)")
    p.add_argument("--splits", default="train",
                   help="comma-separated input splits to read (files named for another split are skipped)")
    p.add_argument("--jpeg-quality", type=int, default=95, help="quality of re-encoded JPEG images (default 95)")
    p.add_argument("--png-compress-level", type=int, default=1,
                   help="zlib level of re-encoded PNG images (default 1: fastest; 6 is about 15%% smaller and "
                        "up to 1.5x slower to encode)")
    p.add_argument("--workers", type=int, default=1,
                   help="processes for the image work of the second pass (default 1); output is identical")
    p.add_argument("--dropped-id-sample", type=int, default=20, help="ids listed per drop rule in summary.json")
    p.add_argument("--overwrite", action="store_true", help="replace an earlier build in --out")
    p.add_argument("--cache-dir", default=None, help="hub cache folder, for hub ids")
    bars = p.add_mutually_exclusive_group()
    bars.add_argument("--progress", dest="progress", action="store_true", default=None,
                      help="progress bars even when stderr is not a terminal")
    bars.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    return p


def options_from(args: argparse.Namespace) -> BuildOptions:
    return BuildOptions(
        out=args.out, vero=_input(args.vero), mmfinereason=_input(args.mmfinereason), tier_table=args.tier_table,
        unknown_source_tier=args.unknown_source_tier, tier1_cap=args.tier1_cap, tier2_cap=args.tier2_cap,
        max_pass_rate=args.max_pass_rate, max_answer_chars=args.max_answer_chars,
        min_image_side=args.min_image_side, min_pixels=args.min_pixels, max_pixels=args.max_pixels,
        seed=args.seed, val_rows=args.val_rows, shard_rows=args.shard_rows, max_shard_mb=args.max_shard_mb,
        splits=tuple(s.strip() for s in args.splits.split(",") if s.strip()), jpeg_quality=args.jpeg_quality,
        png_compress_level=args.png_compress_level, dropped_id_sample=args.dropped_id_sample,
        overwrite=args.overwrite, progress=args.progress, cache_dir=args.cache_dir, workers=args.workers,
        strict=args.strict, processor=_input(args.processor), max_prompt_tokens=args.max_prompt_tokens)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.shard_rows < 1 or args.max_shard_mb <= 0 or args.val_rows < 0 or args.workers < 1:
        parser().error("--shard-rows, --max-shard-mb and --workers must be positive, --val-rows not negative")
    try:
        summary = build(options_from(args))
    except (BuildError, InputError, TierTableError) as exc:
        print(f"build_zppo77k: error: {exc}", file=sys.stderr)
        return 2
    print(format_table(summary))
    if not summary["prompt_tokens"]["checked"]:
        print(f"warning: prompt lengths NOT checked (--processor none); training may cut prompts over "
              f"{args.max_prompt_tokens} tokens", file=sys.stderr)
    print(f"summary: {args.out / 'summary.json'}")
    return 0
