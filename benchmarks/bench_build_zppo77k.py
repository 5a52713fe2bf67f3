"""Throughput and peak memory of the ZPPO-77K builder on a synthetic input with real images.

    python benchmarks/bench_build_zppo77k.py [--rows 20000] [--workdir DIR] [--json PATH] [--smoke] [--processor DIR]

Writes a synthetic Vero-600k + MMFineReason-SFT-586K pair (``data_prep.build_zppo77k.synthetic``: 55% / 45% of
the rows, several sub-datasets each, PNG and JPEG images from 90x200 to 2200x1700 pixels, a few duplicates and
bad rows), runs ``python -m data_prep.build_zppo77k`` on it as a child process with the real caps, and reports
input rows per second (whole build, wall clock; first pass, per CPU second), output rows per CPU second
(second pass: image checks, resizing, encoding, writing), CPU milliseconds per image by what was done to it
(kept / upscaled / downscaled), the child's peak resident memory, and an extrapolation to the real inputs
(about 1.2M input rows, about 77K output rows): first-pass CPU time per input row x 1.2M + second-pass CPU
time per output row x 77K. CPU time, because wall time on a shared host also measures the other tenants. For
another image mix, weigh the per-image costs by its shares. Prints a table and writes the numbers as JSON.

``--processor DIR``: passed to the builder, so every candidate prompt is also counted with that processor (the
real build's prompt budget: one tokenization of the templated prompt per candidate row; with the tiny processor of
``data_prep.tiny`` this measures that path, a real tokenizer and template may cost somewhat more per row).
``--smoke``: 120 rows with small images, for a unit test that the benchmark runs (numbers meaningless).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

REAL_INPUT_ROWS = 1_200_000  # Vero-600k (~600K) + MMFineReason-SFT-586K (~586K)
REAL_OUTPUT_ROWS = 77_000  # ZPPO-77K


def make_inputs(rows: int, inputs: Path, smoke: bool) -> None:
    """Write the synthetic input pair (run in its own process: see ``run``)."""
    from data_prep.build_zppo77k.synthetic import synthetic_inputs

    synthetic_inputs(inputs, rows, seed=0, image_pool=12 if smoke else 64, small_images=smoke)


def _run_child(cmd: list[str], log: Path):
    """Run ``cmd``; returns the resource usage of that one child (peak RSS, CPU), or raises with its log."""
    with open(log, "w") as out:
        proc = subprocess.Popen(cmd, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])} ... failed ({proc.returncode}):\n{log.read_text()[-4000:]}")
    return usage


def run(rows: int, workdir: Path, smoke: bool, processor: str | None = None) -> dict:
    # The inputs are made in a child process and this process imports nothing heavy: a child's peak RSS as
    # the kernel reports it includes the RSS its parent had when it started it.
    inputs = workdir / "inputs"
    t0 = time.perf_counter()
    _run_child([sys.executable, str(Path(__file__).resolve()), "--make-inputs", str(inputs), "--rows", str(rows)]
               + (["--smoke"] if smoke else []), workdir / "make_inputs.log")
    make_s = time.perf_counter() - t0
    input_bytes = sum(p.stat().st_size for p in inputs.rglob("*.parquet"))

    out = workdir / "out"
    cmd = [sys.executable, "-m", "data_prep.build_zppo77k", "--vero", str(inputs / "vero"), "--mmfinereason",
           str(inputs / "mmfinereason"), "--out", str(out), "--overwrite", "--no-progress", "--val-rows", "100"]
    cmd += ["--processor", processor or "none"]
    t0 = time.perf_counter()
    usage = _run_child(cmd, workdir / "build.log")
    wall_s = time.perf_counter() - t0
    peak_kib = usage.ru_maxrss  # KiB on Linux

    summary = json.loads((out / "summary.json").read_text())
    timing = summary["timing_s"]
    rows_in = sum(summary["rows_in"].values())
    rows_out = summary["rows_out"]["train"] + summary["rows_out"]["val"]
    # CPU seconds, not wall: on a shared host the wall time measures the other tenants too.
    pass1_per_row = timing["pass1_cpu"] / max(1, rows_in)
    pass2_per_row = timing["pass2_cpu"] / max(1, rows_out)
    extrapolated_s = pass1_per_row * REAL_INPUT_ROWS + pass2_per_row * REAL_OUTPUT_ROWS
    actions = summary["images"]["actions"]
    image_ms = {a: round(1000 * summary["image_cpu_s"].get(a, 0.0) / n, 2) for a, n in actions.items() if n}
    output_bytes = sum(s["bytes"] for s in summary["shards"]) + (summary["val"] or {}).get("bytes", 0)
    return {
        "rows_in": rows_in,
        "rows_out": rows_out,
        "processor": processor,
        "input_mb": round(input_bytes / 2**20, 1),
        "output_mb": round(output_bytes / 2**20, 1),
        "make_inputs_s": round(make_s, 1),
        "build_wall_s": round(wall_s, 2),
        "build_cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
        "build_internal_s": timing,
        "rows_in_per_s_wall": round(rows_in / wall_s, 1),
        "pass1_rows_per_cpu_s": round(rows_in / max(timing["pass1_cpu"], 1e-9), 1),
        "pass2_rows_per_cpu_s": round(rows_out / max(timing["pass2_cpu"], 1e-9), 1),
        "peak_rss_mib": round(peak_kib / 1024, 1),
        "image_actions": actions,
        "image_cpu_ms_per_action": image_ms,
        "extrapolated_real_cpu_s": round(extrapolated_s, 1),
        "extrapolated_real_cpu_min": round(extrapolated_s / 60, 1),
        "extrapolation": f"{REAL_INPUT_ROWS} input rows x pass-1 CPU time per input row + {REAL_OUTPUT_ROWS} "
                         "output rows x pass-2 CPU time per output row (one process, one core; disk reads "
                         "not included), with this input's image mix",
    }


def print_table(result: dict) -> None:
    t = result["build_internal_s"]
    rows = [
        ("input rows", result["rows_in"]),
        ("output rows", result["rows_out"]),
        ("input / output parquet (MiB)", f"{result['input_mb']} / {result['output_mb']}"),
        ("build wall / CPU time (s)", f"{result['build_wall_s']} / {result['build_cpu_s']}"),
        ("  pass 1, pass 2 CPU (s)", f"{t['pass1_cpu']}, {t['pass2_cpu']}"),
        ("input rows/s (wall, whole build)", result["rows_in_per_s_wall"]),
        ("input rows/s (pass 1, per CPU s)", result["pass1_rows_per_cpu_s"]),
        ("output rows/s (pass 2, per CPU s)", result["pass2_rows_per_cpu_s"]),
        ("peak RSS of the builder (MiB)", result["peak_rss_mib"]),
        ("images (pass 2)", ", ".join(f"{k} {v}" for k, v in result["image_actions"].items())),
        ("image CPU ms per image", ", ".join(f"{k} {v}" for k, v in result["image_cpu_ms_per_action"].items())),
        ("extrapolated 1.2M in / 77K out (CPU min)", result["extrapolated_real_cpu_min"]),
    ]
    width = max(len(k) for k, _ in rows)
    print(f"{'metric':<{width}}  value")
    print("-" * (width + 30))
    for key, value in rows:
        print(f"{key:<{width}}  {value}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rows", type=int, default=20_000, help="synthetic input rows (default 20000)")
    p.add_argument("--smoke", action="store_true", help="120 rows, small images: checks that the benchmark runs")
    p.add_argument("--workdir", type=Path, default=None, help="where inputs and output go (default: a temp dir)")
    p.add_argument("--json", type=Path, default=REPO / "outputs" / "bench_build_zppo77k.json",
                   help="write the numbers here (default: outputs/bench_build_zppo77k.json)")
    p.add_argument("--processor", default=None, help="the student's processor folder, passed to the builder")
    p.add_argument("--make-inputs", type=Path, default=None, help=argparse.SUPPRESS)  # internal: the input child
    args = p.parse_args(argv)
    rows = 120 if args.smoke else args.rows
    if args.make_inputs is not None:
        make_inputs(rows, args.make_inputs, args.smoke)
        return 0
    with tempfile.TemporaryDirectory(prefix="bench_zppo77k_") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        result = run(rows, workdir, args.smoke, args.processor)
        result["smoke"] = args.smoke
        print_table(result)
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"json: {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
