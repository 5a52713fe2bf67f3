"""A tiny CPU run of every RL method, side by side in one report (against steps and against generated tokens).

    python -m benchmarks.methods_report --out outputs/methods_report [--steps 4] [--methods zppo grpo ...]

Builds the tiny assets (``data_prep.tiny``, cached in ``OUT/tiny``), starts one local Ray head, runs each method
through ``python -m recipe.zppo.main_zppo preset=cpu method=<name>`` for ``--steps`` steps (``grpo_matched`` after
``zppo``, matched to that run's generated tokens), then ``python -m recipe.zppo.report`` over all of them:
``OUT/report/report.md`` (training tables at equal generated tokens and at equal steps) and
``training_dynamics.png`` / ``training_dynamics_tokens.png``. A method whose run already finished (its metrics
reached ``--steps``) is not run again. Each run's log is ``OUT/runs/<method>.log``.

The tiny random student answers in the format but (almost) never correctly, so the score stays near 0: what the
report shows is each method's mechanics and price (hard questions, buffer traffic, BCQ/NCQ accuracy, generated
tokens per step), not learning. The distillation methods are left out (a teacher model run, not a prompt method).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from recipe.zppo.eval.report import make_report, read_training_metrics

from .local_ray import LocalRayHead, run_main_zppo

METHODS = ("grpo", "grpo_buffer", "zppo", "grpo_matched", "grpo_buffer_bcq", "grpo_buffer_ncq", "hint", "prefix")


def run_method(method: str, out: Path, assets: Path, steps: int, address: str) -> float:
    """One run of ``method``; returns its wall time in seconds (0 when it had already finished)."""
    run_dir = out / "runs" / method
    if len(read_training_metrics(run_dir)) >= steps:
        print(f"[methods] {method}: already done ({run_dir})", flush=True)
        return 0.0
    overrides = ["preset=cpu", f"method={method}", f"trainer.total_training_steps={steps}",
                 f"trainer.default_local_dir={run_dir}", "trainer.save_freq=-1", f"trainer.experiment_name={method}"]
    if method == "grpo_matched":
        overrides.append(f"zppo.matched.reference={out / 'runs' / 'zppo'}")
    log_path = out / "runs" / f"{method}.log"
    started = time.perf_counter()
    print(f"[methods] {method}: running {steps} steps (log {log_path})", flush=True)
    returncode = run_main_zppo(overrides, address, log_path, cwd=out, env={"ZPPO_TINY_DIR": str(assets)})
    seconds = time.perf_counter() - started
    if returncode != 0:
        raise RuntimeError(f"{method} failed (exit {returncode}); see {log_path}")
    print(f"[methods] {method}: done in {seconds:.0f} s", flush=True)
    return seconds


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("outputs/methods_report"))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    args = parser.parse_args(argv)
    out = args.out.resolve()
    if "grpo_matched" in args.methods and "zppo" not in args.methods:
        parser.error("grpo_matched needs zppo in --methods (its reference run)")
    methods = sorted(args.methods, key=METHODS.index)  # zppo before grpo_matched

    from data_prep.tiny import build_all

    assets = out / "tiny"
    build_all(assets, teacher_responses=2)
    started = time.perf_counter()
    with LocalRayHead(out / "ray_start.log") as address:
        for method in methods:
            run_method(method, out, assets, args.steps, address)
    make_report([out / "runs" / m for m in methods], None, out / "report", names=methods,
                title=f"Every method, {args.steps} steps of the tiny CPU run")
    print(f"[methods] report: {out / 'report' / 'report.md'} ({time.perf_counter() - started:.0f} s of runs)",
          flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
