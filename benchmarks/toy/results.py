"""Per-run summaries from a run's metrics, mean +- sd over seeds per arm, and the RESULTS.md table.

A run's summary (``summarize_steps``) comes from its per-step metrics (verl's file logger, one JSON line per step
under RUN_DIR/metrics): the graduated and admitted questions summed over the steps (``zppo/graduated`` and
``zppo/admitted`` are per-step counts), and the last step's cumulative generated tokens and rollouts. The run
adds its held-out accuracies and wall time. ``aggregate`` groups runs by arm; sd is the sample sd (n - 1),
``None`` for a single run.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from recipe.zppo.eval.report import CUM_ADMITTED, CUM_GRADUATED, read_training_metrics

# What is aggregated per arm, with how RESULTS.md shows it.
METRICS = (
    ("graduated", "graduated (cum.)", "{:.1f}"),
    ("admitted", "admitted (cum.)", "{:.1f}"),
    ("heldout_hard_acc", "held-out hard acc", "{:.3f}"),
    ("heldout_easy_acc", "held-out easy acc", "{:.3f}"),
    ("transfer_helped_acc", "plain acc at next replay: helped", "{:.3f}"),
    ("transfer_unhelped_acc", "plain acc at next replay: unhelped", "{:.3f}"),
    ("cum_generated_tokens", "generated tokens", "{:,.0f}"),
    ("cum_rollouts", "rollouts", "{:,.0f}"),
    ("wall_s", "wall time (s)", "{:.0f}"),
)


def summarize_steps(run_dir: Path) -> dict:
    """Totals of one run's per-step metrics (see the module docstring)."""
    steps = [data for _, data in read_training_metrics(Path(run_dir))]
    if not steps:
        raise ValueError("no training steps in the metrics")
    last = steps[-1]
    return {
        "steps": len(steps),
        # The report's running sums of the per-step buffer counters (added when the metrics are read).
        "graduated": float(last.get(CUM_GRADUATED, 0.0)),
        "admitted": float(last.get(CUM_ADMITTED, 0.0)),
        "cum_generated_tokens": float(last.get("zppo/compute/cum_generated_tokens", float("nan"))),
        "cum_rollouts": float(last.get("zppo/compute/cum_rollouts", float("nan"))),
        "final_train_score": float(last.get("critic/score/mean", float("nan"))),
        # recipe/zppo/transfer.py: plain-prompt accuracy of hard questions at their next replay, by whether they got
        # second-phase groups (BCQ/NCQ, or grpo_matched's extra plain groups) when found hard; NaN: none completed.
        "transfer_helped_acc": float(last.get("zppo/transfer/helped/cum_acc_after", float("nan"))),
        "transfer_unhelped_acc": float(last.get("zppo/transfer/unhelped/cum_acc_after", float("nan"))),
        "transfer_helped_n": float(last.get("zppo/transfer/helped/cum_completed", 0.0)),
        "transfer_unhelped_n": float(last.get("zppo/transfer/unhelped/cum_completed", 0.0)),
    }


def mean_sd(values: Sequence[float]) -> tuple[float, float | None]:
    values = [float(v) for v in values]
    if not values:
        return float("nan"), None
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def aggregate(runs: Sequence[dict]) -> dict[str, dict]:
    """``{arm: {"n": seeds, metric: {"mean", "sd"}}}`` over ``runs`` (dicts with "arm" and the METRICS keys)."""
    arms: dict[str, list[dict]] = {}
    for run in runs:
        arms.setdefault(run["arm"], []).append(run)
    out = {}
    for arm, items in arms.items():
        entry = {"n": len(items), "seeds": sorted(r["seed"] for r in items)}
        for key, _, _ in METRICS:
            present = [r[key] for r in items if r.get(key) is not None and not math.isnan(r[key])]
            mean, sd = mean_sd(present)
            entry[key] = {"mean": mean, "sd": sd}
        out[arm] = entry
    return out


def _cell(stat: dict, fmt: str) -> str:
    if stat["mean"] is None or math.isnan(stat["mean"]):
        return "-"
    text = fmt.format(stat["mean"])
    return text if stat["sd"] is None else f"{text} ± {fmt.format(stat['sd'])}"


def markdown(results: dict) -> str:
    """RESULTS.md: set-up, the per-arm table (mean ± sd), the per-run table, the command, time and machine."""
    lines = ["# Toy experiment: counting in steps mod 100 (benchmarks/toy)", ""]
    lines += [f"Size `{results['size']}`, seeds {results['seeds']}. Command:", "",
              "```bash", results["command"], "```", ""]
    lines += [f"Total wall time {results['wall_s'] / 60:.1f} min on {results['machine']} (warm-up and training runs "
              f"alone: {results.get('stages_wall_s', results['wall_s']) / 60:.1f} min, evaluation not included).", ""]
    for run in results.get("failed", []):
        lines += [f"**Failed, not in the tables:** {run['arm']} seed {run['seed']}: {run['error']}", ""]
    warm = results.get("warmup", {})
    if warm:
        lines += ["## Warm-up student (before RL, greedy)", "",
                  "| plain easy | plain hard | BCQ (hard lengths) | NCQ (hard lengths) | warm-up steps "
                  "| wall time (s) |",
                  "|---|---|---|---|---|---|",
                  f"| {warm['heldout_easy_acc']:.3f} | {warm['heldout_hard_acc']:.3f} | {warm['bcq_hard_acc']:.3f} | "
                  f"{warm['ncq_hard_acc']:.3f} | {warm['steps']} | {warm['wall_s']:.0f} |", ""]
    lines += ["## Per arm (mean ± sd over seeds)", ""]
    lines += ["| arm | seeds | " + " | ".join(label for _, label, _ in METRICS) + " |",
              "|---|---|" + "---|" * len(METRICS)]
    for arm, entry in results["arms"].items():
        lines.append(f"| {arm} | {entry['n']} | " + " | ".join(_cell(entry[k], f) for k, _, f in METRICS) + " |")
    lines += ["", "## Per run", "",
              "| run | steps | " + " | ".join(label for _, label, _ in METRICS) + " | final train score |",
              "|---|---|" + "---|" * (len(METRICS) + 1)]
    for run in results["runs"]:
        cells = [f.format(run[k]) if run.get(k) is not None else "-" for k, _, f in METRICS]
        lines.append(f"| {run['arm']} s{run['seed']} | {run['steps']} | " + " | ".join(cells)
                     + f" | {run['final_train_score']:.3f} |")
    lines += ["", results.get("notes", ""), ""]
    return "\n".join(lines)


def write_results(results: dict, out_dir: Path) -> None:
    out_dir = Path(out_dir)
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (out_dir / "RESULTS.md").write_text(markdown(results))
