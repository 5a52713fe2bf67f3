"""``python -m data_prep.tiny --out DIR [--only text-model,vl-model,text-data,vl-data,teacher-model] [--seed 0]``."""

from __future__ import annotations

import argparse
import sys
import time

from . import ARTEFACTS, build_all


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m data_prep.tiny",
        description="Build tiny Qwen checkpoints and RL data sets offline and deterministically.",
    )
    parser.add_argument("--out", required=True, help="output folder (artefacts go to models/ and data/ below it)")
    parser.add_argument(
        "--only",
        default=",".join(ARTEFACTS),
        help=f"comma-separated subset of {','.join(ARTEFACTS)} (default: all)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of model weights and data (default 0)")
    parser.add_argument(
        "--teacher-responses",
        type=int,
        default=0,
        help="synthetic teacher responses per row in extra_info (default 0: empty lists)",
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when the manifest matches")
    args = parser.parse_args(argv)
    only = [k.strip() for k in args.only.split(",") if k.strip()]
    bad = [k for k in only if k not in ARTEFACTS]
    if bad:
        parser.error(f"--only: unknown artefact(s) {', '.join(bad)}; choose from {', '.join(ARTEFACTS)}")
    t0 = time.perf_counter()
    build_all(args.out, seed=args.seed, only=only, teacher_responses=args.teacher_responses, force=args.force)
    print(f"[tiny] done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
