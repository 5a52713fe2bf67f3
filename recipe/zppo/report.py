"""Compare runs: a Markdown table (benchmark x method, family averages, deltas vs the base model in points) and PNG
plots (training dynamics, per-family and per-benchmark bars).

    python -m recipe.zppo.report RUN_DIR [RUN_DIR ...] --baseline BASE --out OUT [--names a,b]
                                 [--x-axis step|METRIC] [--metric acc]

- ``RUN_DIR``: a training run folder (``trainer.default_local_dir``) and/or an evaluation folder. Evaluation results
  are the ``results.json`` that ``python -m recipe.zppo.eval`` writes, found in RUN_DIR or one or two levels below
  (the newest when there are several; named on one line). Training dynamics are read from verl's file-logger JSON
  lines, ``RUN_DIR/metrics/*.jsonl`` (one file per launch, records ``{"step", "data"}``; a resumed launch's steps
  replace the earlier ones). Console and TensorBoard logs are not read.
- ``BASE``: the base model's evaluation folder (or its results.json); deltas are ``method - base`` in points.
- Family averages are taken over the benchmarks that EVERY column has, so the columns compare like with like; a
  benchmark missing from some column shows "–" and the gap is listed under the table.
- ``--x-axis``: ``step`` (default) or the name of a logged metric (e.g. a cumulative generated-token count) to
  plot the training dynamics against; a run that lacks it is plotted against step, and named.

Outputs in OUT: ``report.md``, ``report.json`` (every number of the table), ``training_dynamics.png``,
``family_bars.png``, ``benchmark_deltas.png``. A run without metrics, or without evaluation results, is one line;
the rest of the report is still made.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

FAMILY_ORDER = ("llm", "vlm", "video")
FAMILY_TITLES = {"llm": "LLM", "vlm": "VLM", "video": "Video"}

# (panel title, [(metric key, line label)]): what ZPPO's trainer logs per step (zppo_trainer.py).
DYNAMICS_PANELS = [
    ("reward (mean score)", [("critic/score/mean", "score")]),
    ("hard-question fraction", [("zppo/hard_frac", "hard")]),
    ("zero-advantage group fraction", [("zppo/zero_adv_group_frac", "zero-adv")]),
    ("BCQ / NCQ accuracy", [("zppo/bcq_acc", "BCQ"), ("zppo/ncq_acc", "NCQ")]),
    ("replay buffer size", [("zppo/buffer_size", "size")]),
    ("buffer traffic per step", [("zppo/admitted", "admitted"), ("zppo/graduated", "graduated"),
                                 ("zppo/evicted", "evicted")]),
]
_LINE_STYLES = ["-", "--", ":", "-."]


@dataclass
class Run:
    name: str
    path: Path
    results: Optional[dict] = None  # results.json of its evaluation
    steps: list[tuple[int, dict]] = field(default_factory=list)  # (step, metrics) of its training


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ loading


def find_results(path: Path) -> Optional[Path]:
    """The evaluation results of a folder: results.json in it, or the newest one up to two levels below."""
    if path.is_file():
        return path
    direct = path / "results.json"
    if direct.is_file():
        return direct
    found = sorted(list(path.glob("*/results.json")) + list(path.glob("*/*/results.json")),
                   key=lambda p: p.stat().st_mtime)
    if len(found) > 1:
        log(f"report: {path}: {len(found)} evaluations found, using the newest: {found[-1]}")
    return found[-1] if found else None


def read_training_metrics(run_dir: Path) -> list[tuple[int, dict]]:
    """Per-step training metrics of every launch (files in name order; a later launch replaces a repeated step)."""
    by_step: dict[int, dict] = {}
    for path in sorted((run_dir / "metrics").glob("*.jsonl")):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                log(f"report: {path}: line {number} is not JSON; skipped")
                continue
            data = record.get("data") or {}
            if "training/global_step" in data:
                by_step[int(record.get("step", data["training/global_step"]))] = data
    return sorted(by_step.items())


def load_run(path: Path, name: Optional[str] = None) -> Run:
    path = path.expanduser()
    results_path = find_results(path) if path.exists() else None
    results = json.loads(results_path.read_text()) if results_path else None
    run_dir = path if path.is_dir() else path.parent
    run = Run(name or (results or {}).get("name") or run_dir.name, run_dir, results)
    if not path.exists():
        log(f"report: {path}: no such folder")
        return run
    run.steps = read_training_metrics(run_dir)
    if results is None:
        log(f"report: {path}: no evaluation results (results.json from python -m recipe.zppo.eval)")
    return run


# ------------------------------------------------------------------------------------------------ table


def benchmark_scores(results: Optional[dict], metric: str) -> dict[str, float]:
    if not results:
        return {}
    return {name: entry[metric] for name, entry in results.get("benchmarks", {}).items()
            if entry.get("status") == "ok" and entry.get(metric) is not None}


def _family_of(name: str, runs: list[Run]) -> str:
    for run in runs:
        entry = ((run.results or {}).get("benchmarks") or {}).get(name)
        if entry and entry.get("family"):
            return entry["family"]
    return "other"


def _title_of(name: str, runs: list[Run]) -> str:
    for run in runs:
        entry = ((run.results or {}).get("benchmarks") or {}).get(name)
        if entry and entry.get("title"):
            return entry["title"]
    return name


def _order(names: set[str]) -> list[str]:
    try:
        from data_prep.benchmarks import BENCHMARKS

        registry = list(BENCHMARKS)
    except ImportError:  # pragma: no cover - data_prep ships with the project
        registry = []
    return sorted(names, key=lambda n: (registry.index(n) if n in registry else len(registry), n))


def build_table(baseline: Run, runs: list[Run], metric: str = "acc") -> dict:
    """Every number of the report table: per benchmark and per family, each column's value and delta vs base."""
    columns = [baseline, *runs]
    scores = [benchmark_scores(run.results, metric) for run in columns]
    every = set().union(*scores) if scores else set()
    families: dict[str, list[str]] = {}
    for name in _order(every):
        families.setdefault(_family_of(name, columns), []).append(name)
    family_names = [f for f in FAMILY_ORDER if f in families] + sorted(f for f in families if f not in FAMILY_ORDER)
    table = {"metric": metric, "columns": [run.name for run in columns], "baseline": baseline.name, "families": []}
    for family in family_names:
        rows = []
        for name in families[family]:
            values = [s.get(name) for s in scores]
            rows.append({"benchmark": name, "title": _title_of(name, columns), "values": values,
                         "deltas": [None if v is None or values[0] is None else v - values[0] for v in values]})
        common = [r["benchmark"] for r in rows if all(v is not None for v in r["values"])]
        averages = [sum(s[n] for n in common) / len(common) if common else None for s in scores]
        gaps = {run.name: [r["benchmark"] for r in rows if r["values"][i] is None] for i, run in enumerate(columns)}
        table["families"].append({
            "family": family,
            "rows": rows,
            "common": common,
            "average": averages,
            "average_delta": [None if a is None or averages[0] is None else a - averages[0] for a in averages],
            "gaps": {k: v for k, v in gaps.items() if v},
        })
    return table


def _fmt(value: Optional[float], delta: Optional[float] = None, show_delta: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}"
    if show_delta and delta is not None:
        text += f" ({delta:+.1f})"
    return text


def markdown(table: dict, runs: list[Run], notes: list[str]) -> str:
    columns = table["columns"]
    header = ["Benchmark", f"{columns[0]} (base)", *columns[1:]]
    lines = [f"# Evaluation report ({table['metric']}, percent; deltas vs {columns[0]} in points)", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    footnotes = []
    for family in table["families"]:
        for row in family["rows"]:
            cells = [_fmt(v, d, i > 0) for i, (v, d) in enumerate(zip(row["values"], row["deltas"]))]
            lines.append("| " + " | ".join([row["title"], *cells]) + " |")
        total = len(family["rows"])
        label = f"**{FAMILY_TITLES.get(family['family'], family['family'])} average ({len(family['common'])})**"
        if len(family["common"]) < total:
            label = label[:-2] + "*" + "**"
            footnotes.append(f"*{FAMILY_TITLES.get(family['family'], family['family'])} average over the "
                             f"{len(family['common'])} of {total} benchmarks every column has; missing: " +
                             "; ".join(f"{k}: {', '.join(v)}" for k, v in family["gaps"].items()))
        cells = [f"**{_fmt(a, d, i > 0)}**" for i, (a, d) in enumerate(zip(family["average"], family["average_delta"]))]
        lines.append("| " + " | ".join([label, *cells]) + " |")
    lines.append("")
    lines += [f"- {note}" for note in footnotes + notes]
    lines.append("")
    lines.append("Columns: " + "; ".join(
        f"{run.name}: {(run.results or {}).get('model', 'no evaluation results')}"
        f"{' (' + run.results['date'] + ')' if run.results and run.results.get('date') else ''}" for run in runs))
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------------ plots


def _series(run: Run, key: str, x_axis: str) -> tuple[list[float], list[float]]:
    xs, ys = [], []
    for step, data in run.steps:
        value = data.get(key)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        x = step if x_axis == "step" else data.get(x_axis, step)
        xs.append(float(x))
        ys.append(float(value))
    return xs, ys


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_dynamics(runs: list[Run], x_axis: str, path: Path) -> bool:
    plt = _pyplot()

    with_steps = [run for run in runs if run.steps]
    if not with_steps:
        return False
    for run in with_steps:
        if x_axis != "step" and not any(x_axis in data for _, data in run.steps):
            log(f"report: {run.name}: metric {x_axis} not logged; its dynamics are plotted against step")
    fig, axes = plt.subplots(2, 3, figsize=(15, 8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (title, keys) in zip(axes.flat, DYNAMICS_PANELS):
        drawn = False
        for r, run in enumerate(with_steps):
            for k, (key, label) in enumerate(keys):
                xs, ys = _series(run, key, x_axis)
                if xs:
                    ax.plot(xs, ys, _LINE_STYLES[k % len(_LINE_STYLES)], color=colours[r % len(colours)],
                            marker="o", markersize=3, label=f"{run.name} {label}" if len(keys) > 1 else run.name)
                    drawn = True
        ax.set_title(title)
        ax.set_xlabel(x_axis)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_family_bars(table: dict, path: Path) -> bool:
    plt = _pyplot()

    families = [f for f in table["families"] if any(a is not None for a in f["average"])]
    if not families:
        return False
    columns = table["columns"]
    width = 0.8 / len(columns)
    fig, ax = plt.subplots(figsize=(max(6, 2.2 * len(families)), 4.5))
    for c, name in enumerate(columns):
        xs = [i + (c - (len(columns) - 1) / 2) * width for i in range(len(families))]
        values = [f["average"][c] if f["average"][c] is not None else 0.0 for f in families]
        bars = ax.bar(xs, values, width, label=name)
        for bar, family in zip(bars, families):
            delta = family["average_delta"][c]
            if c > 0 and delta is not None:
                ax.annotate(f"{delta:+.1f}", (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                            va="bottom", fontsize=8)
    ax.set_xticks(range(len(families)))
    ax.set_xticklabels([f"{FAMILY_TITLES.get(f['family'], f['family'])} ({len(f['common'])})" for f in families])
    ax.set_ylabel(f"{table['metric']} (%)")
    ax.set_title(f"Family averages (labels: points vs {table['baseline']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def plot_benchmark_deltas(table: dict, path: Path) -> bool:
    plt = _pyplot()

    rows = [row for family in table["families"] for row in family["rows"]]
    methods = table["columns"][1:]
    if not rows or not methods:
        return False
    height = 0.8 / len(methods)
    fig, ax = plt.subplots(figsize=(8, max(3, 0.35 * len(rows) * max(1, len(methods)) ** 0.5 + 1)))
    for m, name in enumerate(methods):
        ys = [i + (m - (len(methods) - 1) / 2) * height for i in range(len(rows))]
        deltas = [row["deltas"][m + 1] if row["deltas"][m + 1] is not None else 0.0 for row in rows]
        ax.barh(ys, deltas, height, label=name)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([row["title"] for row in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{table['metric']} delta vs {table['baseline']} (points)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------------------------ main


def make_report(run_paths: list[Path], baseline_path: Path, out: Path, names: Optional[list[str]] = None,
                x_axis: str = "step", metric: str = "acc") -> dict:
    """Write the report files into ``out``; returns the table (also in report.json)."""
    out.mkdir(parents=True, exist_ok=True)
    baseline = load_run(baseline_path)
    if baseline.results is None:
        raise SystemExit(f"report: --baseline {baseline_path}: no evaluation results to compare against")
    runs = [load_run(path, names[i] if names and i < len(names) else None) for i, path in enumerate(run_paths)]
    notes = []
    for run in runs:
        if not run.steps:
            log(f"report: {run.path}: no training metrics (metrics/*.jsonl); left out of the dynamics plot")
            notes.append(f"{run.name}: no training metrics found in {run.path / 'metrics'}")
        if run.results is None:
            notes.append(f"{run.name}: no evaluation results found under {run.path}")
    table = build_table(baseline, runs, metric)
    plots = {}
    if plot_dynamics(runs, x_axis, out / "training_dynamics.png"):
        plots["training_dynamics"] = "training_dynamics.png"
    else:
        notes.append("no run has training metrics: no training-dynamics plot")
    if plot_family_bars(table, out / "family_bars.png"):
        plots["family_bars"] = "family_bars.png"
    if plot_benchmark_deltas(table, out / "benchmark_deltas.png"):
        plots["benchmark_deltas"] = "benchmark_deltas.png"
    text = markdown(table, [baseline, *runs], notes)
    text += "\n" + "\n".join(f"![{key}]({file})" for key, file in plots.items()) + "\n"
    (out / "report.md").write_text(text)
    (out / "report.json").write_text(json.dumps({**table, "plots": plots, "notes": notes,
                                                 "x_axis": x_axis}, indent=2))
    log(f"report: {out / 'report.md'} ({len(plots)} plots)")
    return table


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.zppo.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="training and/or evaluation folders, one per method")
    parser.add_argument("--baseline", required=True, type=Path, help="the base model's evaluation folder")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--names", default=None, help="comma-separated method names, in the order of the runs")
    parser.add_argument("--x-axis", default="step", help="step, or a logged metric to plot the dynamics against")
    parser.add_argument("--metric", default="acc", help="the per-benchmark number of the table (acc, pass@k, ...)")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    make_report(args.runs, args.baseline, args.out, names, args.x_axis, args.metric)
    return 0


if __name__ == "__main__":
    sys.exit(main())
