"""``python -m data_prep.benchmarks --suite llm,vlm,video --src ROOT --out DIR`` (see the package docstring).

Exit status: 0 when every requested benchmark was converted, 1 when some were skipped (missing or malformed copy,
unknown name; each named on one line, the others still converted), 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import BENCHMARKS, FAMILIES, convert_many, resolve
from .common import ConvertOptions, default_pixel_range


def _list() -> str:
    """One line per benchmark: ABBREV  family  hf_source  split/config  scoring  suite (paper first, as Tabs 5-7)."""
    rows = [("ABBREV", "family", "hf_source", "split/config", "scoring", "suite")]
    rows += [(b.abbrev, b.family, b.origin, b.split, b.scoring_label, b.suite) for b in BENCHMARKS.values()]
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row[:5], widths)) + "  " + row[5] for row in rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.benchmarks",
        description="Convert local copies of evaluation benchmarks into the trainer's parquet layout.",
    )
    parser.add_argument("--suite", default=",".join(FAMILIES),
                        help="comma-separated families (llm, vlm, video: the paper's benchmarks of each), suites "
                        "(paper, extra), benchmark ids and/or the paper's abbreviations (default: the paper's 31)")
    parser.add_argument("--src", type=Path, help="folder holding one sub-folder per benchmark (ROOT/<name>/)")
    parser.add_argument("--out", type=Path, help="output folder (<name>.parquet + manifest.json)")
    parser.add_argument("--path", action="append", default=[], metavar="NAME=DIR",
                        help="read benchmark NAME from DIR instead of ROOT/NAME (repeatable)")
    parser.add_argument("--frames", type=int, default=None,
                        help="frames per video (default: each benchmark's protocol, see docs/evaluation.md)")
    parser.add_argument("--min-pixels", type=int, default=None, help="image pixel floor (default: data_prep.vision)")
    parser.add_argument("--max-pixels", type=int, default=None, help="image pixel cap (default: data_prep.vision)")
    parser.add_argument("--limit", type=int, default=None, help="at most this many rows per benchmark (smoke runs)")
    parser.add_argument("--list", action="store_true",
                        help="list the benchmarks (ABBREV family hf_source split/config scoring suite) and exit")
    args = parser.parse_args(argv)
    if args.list:
        print(_list())
        return 0
    if args.src is None or args.out is None:
        parser.error("--src and --out are required")
    paths = {}
    for spec in args.path:
        name, sep, folder = spec.partition("=")
        if not sep or name not in BENCHMARKS:
            parser.error(f"--path {spec}: expected NAME=DIR with NAME one of the registered benchmarks")
        paths[name] = Path(folder)
    if args.frames is not None and args.frames < 1:
        parser.error("--frames must be >= 1")
    min_pixels, max_pixels = default_pixel_range()
    options = ConvertOptions(
        min_pixels=args.min_pixels if args.min_pixels is not None else min_pixels,
        max_pixels=args.max_pixels if args.max_pixels is not None else max_pixels,
        frames=args.frames,
        limit=args.limit,
    )
    if not 0 < options.min_pixels <= options.max_pixels:
        parser.error(f"pixel range [{options.min_pixels}, {options.max_pixels}] is empty")
    names, unknown = resolve(args.suite.split(","))
    for token in unknown:
        print(f"benchmarks: {token}: unknown benchmark or family (python -m data_prep.benchmarks --list)",
              file=sys.stderr)
    done = convert_many(names, args.src, args.out, options, paths=paths, log=lambda line: print(line, file=sys.stderr))
    skipped = len(names) - len(done) + len(unknown)
    print(f"benchmarks: {len(done)} converted, {skipped} skipped -> {args.out}", file=sys.stderr)
    return 0 if skipped == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
