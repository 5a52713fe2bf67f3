"""Compare runs: a Markdown table (benchmark x method, family averages, deltas vs the base model in points), two
training tables (at equal compute and at equal steps) and PNG plots (training dynamics against steps and against
generated tokens, per-family and per-benchmark bars).

    python -m recipe.zppo.report RUN_DIR [RUN_DIR ...] [--baseline BASE] --out OUT [--names a,b] [--title TEXT]
                                 [--x-axis METRIC] [--token-budget N] [--metric acc]

- ``RUN_DIR``: a training run folder (``trainer.default_local_dir``) and/or an evaluation folder. Evaluation results
  are the ``results.json`` that ``python -m recipe.zppo.eval`` writes, found in RUN_DIR or one or two levels below
  (the newest when there are several; named on one line). They are the scores of the one checkpoint that was
  evaluated, whatever its step or spend: the token budget below does not cut them. Training dynamics are read from
  verl's file-logger JSON lines, ``RUN_DIR/metrics/*.jsonl`` (one file per launch, records ``{"step", "data"}``; a
  resumed launch's steps replace the earlier ones). Console and TensorBoard logs are not read.
- ``BASE``: the base model's evaluation folder (or its results.json); deltas are ``method - base`` in points.
  Without ``--baseline`` the report covers training only (its tables and dynamics plots).
- Family averages are taken over the benchmarks that EVERY column has, so the columns compare like with like; a
  benchmark missing from some column shows "–" and the gap is listed under the table.
- Training tables. ZPPO spends more rollouts per step than GRPO, so runs are compared at equal compute: BUDGET is
  ``--token-budget N`` or, by default, the smallest final ``zppo/compute/cum_generated_tokens`` of the runs (every
  run is cut at the same spend); each run's row is its last step whose cumulative generated tokens are <= BUDGET.
  A second table cuts every run at the smallest final step ("at equal steps"). Columns: step reached, cumulative
  generated tokens, cumulative rollouts, cumulative graduated and admitted questions (running sums of
  ``zppo/graduated`` / ``zppo/admitted`` over the logged steps up to the cut), buffer size at the cut, mean score
  (mean of ``critic/score/mean`` over the steps up to the cut). A run without the compute ledger's metrics is named
  on one line and left out of the equal-compute table; a run that never reached BUDGET shows its final step, marked.
- Plots: ``training_dynamics.png`` has x = step; the second plot has x = ``--x-axis`` (default
  ``zppo/compute/cum_generated_tokens``; ``step`` also means the default), written as
  ``training_dynamics_tokens.png`` for the token count and ``training_dynamics_by_<METRIC>.png`` (non-alphanumerics
  as ``_``) for any other logged metric. A run that lacks that metric is left out of the second plot and named.
  Both have the same panels, among them cumulative graduated questions and cumulative generated tokens (the latter
  always against step, so the compute price of each step stays visible).
- ``--title``: the report's heading and the plots' title.
- Against the paper (``paper_tables.py``): the evaluated columns beside the paper's reference rows of Tabs 1-2
  (``paper_reference.json``) in the paper's layouts (Tab. 1: 16 VLM columns + Avg; Tab. 2: 10 LLM + Avg, 5 Video +
  Avg; Tab. 4: family averages), with the deltas of each column vs the paper row of the same method
  (``--paper-methods``; the baseline is ``base``) at one student size (``--paper-size``, default: named in the model
  path). Printed on stdout and written into report.md. ``python -m recipe.zppo.report --baseline evals/base --out R``
  alone checks an evaluation of the base model against the paper's base row. Benchmarks outside the paper's 31 (the
  registry's "extra" suite) are a separate group everywhere, never averaged into a family.

Outputs in OUT: ``report.md``, ``report.json`` (every number of the tables), ``training_dynamics.png``, the second
dynamics plot, ``family_bars.png``, ``benchmark_deltas.png``. A run without metrics, or without evaluation results,
is one line; the rest of the report is still made.
"""

from __future__ import annotations

import argparse
import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

FAMILY_ORDER = ("llm", "vlm", "video", "extra")
FAMILY_TITLES = {"llm": "LLM", "vlm": "VLM", "video": "Video", "extra": "Extra (not in the paper)"}

# What the compute ledger logs per step (compute_ledger.py): the spend since the start of the run.
TOKENS_KEY = "zppo/compute/cum_generated_tokens"
ROLLOUTS_KEY = "zppo/compute/cum_rollouts"
SCORE_KEY = "critic/score/mean"
# The replay buffer's per-step counters (zppo_trainer.py) and the running sums this report derives from them
# (added to every step's metrics at load; "report/" marks them as not logged by the trainer).
BUFFER_COUNTERS = ("admitted", "graduated", "evicted")
CUM_GRADUATED = "report/cum_graduated"
CUM_ADMITTED = "report/cum_admitted"

# (panel title, [(metric key, line label)], always against step): what ZPPO's trainer logs per step
# (zppo_trainer.py, compute_ledger.py). The generated-token panel stays against step in every plot: against its own
# count it would be a diagonal, while against step it shows what each step cost.
DYNAMICS_PANELS = [
    ("reward (mean score)", [(SCORE_KEY, "score")], False),
    ("hard-question fraction", [("zppo/hard_frac", "hard")], False),
    ("zero-advantage group fraction", [("zppo/zero_adv_group_frac", "zero-adv")], False),
    ("BCQ / NCQ accuracy", [("zppo/bcq_acc", "BCQ"), ("zppo/ncq_acc", "NCQ")], False),
    ("replay buffer size", [("zppo/buffer_size", "size")], False),
    ("buffer traffic per step", [("zppo/admitted", "admitted"), ("zppo/graduated", "graduated"),
                                 ("zppo/evicted", "evicted")], False),
    ("cumulative graduated questions", [(CUM_GRADUATED, "graduated")], False),
    ("cumulative generated tokens (x = step)", [(TOKENS_KEY, "tokens")], True),
    # transfer.py: plain-prompt accuracy of hard questions at their next replay, by whether they got BCQ/NCQ help.
    ("transfer: plain-prompt acc. at next replay (cum.)",
     [("zppo/transfer/helped/cum_acc_after", "helped"), ("zppo/transfer/unhelped/cum_acc_after", "unhelped")], False),
]
_LINE_STYLES = ["-", "--", ":", "-."]


@dataclass
class Run:
    name: str
    path: Path
    results: dict | None = None  # results.json of its evaluation
    steps: list[tuple[int, dict]] = field(default_factory=list)  # (step, metrics) of its training


def log(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------------ loading


def find_results(path: Path) -> Path | None:
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


def _number(value) -> float | None:
    """A logged value as a float, or None when absent / NaN (verl's file logger writes NaN as null)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return None if math.isnan(value) else float(value)


def add_running_sums(steps: list[tuple[int, dict]]) -> None:
    """Add ``report/cum_{admitted,graduated,evicted}``: the running sum of the per-step buffer counter over the
    logged steps, from the first step that logged it on (a step with the counter missing adds nothing)."""
    for counter in BUFFER_COUNTERS:
        total, seen = 0.0, False
        for _, data in steps:
            value = _number(data.get(f"zppo/{counter}"))
            if value is not None:
                total += value
                seen = True
            if seen:
                data[f"report/cum_{counter}"] = total


def read_training_metrics(run_dir: Path) -> list[tuple[int, dict]]:
    """Per-step training metrics of every launch (files in name order; a later launch replaces a repeated step).

    ``run_dir``: a run folder (its ``metrics/*.jsonl``) or one such file."""
    run_dir = Path(run_dir)
    files = [run_dir] if run_dir.is_file() else sorted((run_dir / "metrics").glob("*.jsonl"))
    by_step: dict[int, dict] = {}
    for path in files:
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
    steps = sorted(by_step.items())
    add_running_sums(steps)
    return steps


def load_run(path: Path, name: str | None = None) -> Run:
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


def benchmark_scores(results: dict | None, metric: str) -> dict[str, float]:
    if not results:
        return {}
    return {name: entry[metric] for name, entry in results.get("benchmarks", {}).items()
            if entry.get("status") == "ok" and entry.get(metric) is not None}


def _family_of(name: str, runs: list[Run]) -> str:
    for run in runs:
        entry = ((run.results or {}).get("benchmarks") or {}).get(name)
        if entry and entry.get("suite") == "extra":  # outside the paper's 31: never averaged with its families
            return "extra"
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


def _fmt(value: float | None, delta: float | None = None, show_delta: bool = False) -> str:
    if value is None:
        return "–"
    text = f"{value:.1f}"
    if show_delta and delta is not None:
        text += f" ({delta:+.1f})"
    return text


def markdown(table: dict, runs: list[Run], notes: list[str], title: str | None = None) -> str:
    columns = table["columns"]
    header = ["Benchmark", f"{columns[0]} (base)", *columns[1:]]
    heading = f"Evaluation ({table['metric']}, percent; deltas vs {columns[0]} in points)"
    lines = [f"# {title}", "", f"## {heading}"] if title else [f"# {heading}"]
    lines += ["", "Each column is the evaluated checkpoint of its run (results.json), not cut by the token budget.",
              "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
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


# ------------------------------------------------------------------------------------------------ training tables


def _final(run: Run, key: str) -> float | None:
    """The value of ``key`` at the last step that logged it."""
    for _, data in reversed(run.steps):
        value = _number(data.get(key))
        if value is not None:
            return value
    return None


def training_row(run: Run, cut_step: int) -> dict:
    """A run's training state at its last logged step <= ``cut_step``: spend, buffer traffic, mean score so far."""
    upto = [(step, data) for step, data in run.steps if step <= cut_step]
    if not upto:
        return {"run": run.name, "step": None}
    step, data = upto[-1]
    scores = [v for v in (_number(d.get(SCORE_KEY)) for _, d in upto) if v is not None]
    return {
        "run": run.name,
        "step": step,
        "cum_generated_tokens": _number(data.get(TOKENS_KEY)),
        "cum_rollouts": _number(data.get(ROLLOUTS_KEY)),
        "cum_graduated": _number(data.get(CUM_GRADUATED)),
        "cum_admitted": _number(data.get(CUM_ADMITTED)),
        "buffer_size": _number(data.get("zppo/buffer_size")),
        "mean_score": sum(scores) / len(scores) if scores else None,
    }


def build_training(runs: list[Run], token_budget: float | None = None) -> dict:
    """The training tables: every run cut at the same generated-token spend, and every run cut at the same step.

    BUDGET is ``token_budget`` or the smallest final cumulative generated-token count among the runs that log it;
    a run's equal-compute row is its last step whose count is <= BUDGET."""
    trained = [run for run in runs if run.steps]
    finals = {run.name: _final(run, TOKENS_KEY) for run in trained}
    with_compute = [run for run in trained if finals[run.name] is not None]
    training: dict = {
        "token_budget": None,
        "token_budget_source": None,
        "without_compute": [run.name for run in trained if finals[run.name] is None],
        "equal_compute": [],
        "equal_steps": {"step": None, "rows": []},
    }
    if with_compute:
        budget = float(token_budget) if token_budget is not None else min(finals[run.name] for run in with_compute)
        training["token_budget"] = budget
        training["token_budget_source"] = "--token-budget" if token_budget is not None else "smallest final spend"
        for run in with_compute:
            within = [step for step, data in run.steps
                      if (_number(data.get(TOKENS_KEY)) is not None and data[TOKENS_KEY] <= budget)]
            row = training_row(run, within[-1]) if within else {"run": run.name, "step": None}
            row["final_cum_generated_tokens"] = finals[run.name]
            row["reached_budget"] = finals[run.name] >= budget
            training["equal_compute"].append(row)
    if trained:
        step = min(run.steps[-1][0] for run in trained)
        training["equal_steps"] = {"step": step, "rows": [training_row(run, step) for run in trained]}
    return training


_TRAINING_COLUMNS = [("step", "Step", "{:.0f}"), ("cum_generated_tokens", "Generated tokens", "{:,.0f}"),
                     ("cum_rollouts", "Rollouts", "{:,.0f}"), ("cum_graduated", "Graduated (cum.)", "{:,.0f}"),
                     ("cum_admitted", "Admitted (cum.)", "{:,.0f}"), ("buffer_size", "Buffer size", "{:,.0f}"),
                     ("mean_score", "Mean score", "{:.3f}")]


def _training_table(rows: list[dict]) -> list[str]:
    lines = ["| Run | " + " | ".join(title for _, title, _ in _TRAINING_COLUMNS) + " |",
             "|" + "---|" * (len(_TRAINING_COLUMNS) + 1)]
    for row in rows:
        cells = ["–" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in _TRAINING_COLUMNS]
        if row.get("reached_budget") is False and row.get("step") is not None:
            cells[0] += "†"
        lines.append("| " + " | ".join([row["run"], *cells]) + " |")
    return lines


def training_markdown(training: dict) -> str:
    lines = []
    if training["token_budget"] is not None:
        budget = training["token_budget"]
        how = ("set by --token-budget" if training["token_budget_source"] == "--token-budget"
               else "the smallest final spend of the runs; --token-budget N sets it")
        lines += [f"## Training at equal compute: {budget:,.0f} generated tokens ({how})", "",
                  "Each run at its last step whose cumulative generated tokens are <= the budget; mean score over the "
                  "steps up to it; graduated and admitted are running sums of the per-step counters.", ""]
        lines += _training_table(training["equal_compute"])
        lines.append("")
        for row in training["equal_compute"]:
            if row["step"] is None:
                lines.append(f"- {row['run']}: no logged step within the budget (it spent "
                             f"{row['final_cum_generated_tokens']:,.0f} generated tokens in all)")
            elif not row["reached_budget"]:
                lines.append(f"- †{row['run']} spent only {row['final_cum_generated_tokens']:,.0f} generated tokens "
                             "in all, less than the budget: its row is its final step")
    if training["without_compute"]:
        lines.append(f"- Without compute metrics ({TOKENS_KEY}), left out of the equal-compute table: "
                     + ", ".join(training["without_compute"]))
    if training["equal_steps"]["step"] is not None:
        lines += ["", f"## Training at equal steps: step {training['equal_steps']['step']} (the smallest final step)",
                  ""]
        lines += _training_table(training["equal_steps"]["rows"])
    return "\n".join(lines).strip("\n") + "\n" if lines else ""


# ------------------------------------------------------------------------------------------------ plots


def _series(run: Run, key: str, x_axis: str) -> tuple[list[float], list[float]]:
    """The logged points of ``key`` against ``x_axis`` (step or a metric; a step lacking either is skipped)."""
    xs, ys = [], []
    for step, data in run.steps:
        value = _number(data.get(key))
        x = float(step) if x_axis == "step" else _number(data.get(x_axis))
        if value is None or x is None:
            continue
        xs.append(x)
        ys.append(value)
    return xs, ys


def second_plot_file(x_axis: str) -> str:
    """The file name of the dynamics plot against ``x_axis`` (a metric; step's plot is training_dynamics.png)."""
    if x_axis == TOKENS_KEY:
        return "training_dynamics_tokens.png"
    return "training_dynamics_by_" + re.sub(r"[^A-Za-z0-9]+", "_", x_axis).strip("_") + ".png"


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (no display on a cluster node)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_dynamics(runs: list[Run], x_axis: str, path: Path, title: str | None = None,
                  token_budget: float | None = None) -> tuple[bool, list[str]]:
    """The dynamics panels of every run with metrics against ``x_axis``. Returns (written, names of the runs left
    out because they lack ``x_axis``): a run is never drawn against another axis than the others."""
    plt = _pyplot()

    with_steps = [run for run in runs if run.steps]
    if x_axis == "step":
        plotted, left_out = with_steps, []
    else:
        plotted = [run for run in with_steps if _final(run, x_axis) is not None]
        left_out = [run.name for run in with_steps if run not in plotted]
    if not plotted:
        return False, left_out
    x_label = {"step": "step", TOKENS_KEY: "cumulative generated tokens"}.get(x_axis, x_axis)
    fig, axes = plt.subplots(3, 3, figsize=(16, 12))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel_title, keys, against_step) in zip(axes.flat, DYNAMICS_PANELS):
        panel_x = "step" if against_step else x_axis
        drawn = False
        for r, run in enumerate(plotted):
            for k, (key, label) in enumerate(keys):
                xs, ys = _series(run, key, panel_x)
                if xs:
                    ax.plot(xs, ys, _LINE_STYLES[k % len(_LINE_STYLES)], color=colours[r % len(colours)],
                            marker="o", markersize=3, label=f"{run.name} {label}" if len(keys) > 1 else run.name)
                    drawn = True
        if drawn and x_axis == TOKENS_KEY and not against_step and token_budget is not None:
            ax.axvline(token_budget, color="grey", linestyle=":", linewidth=1)
        ax.set_title(panel_title)
        ax.set_xlabel("step" if against_step else x_label)
        if drawn:
            ax.legend(fontsize=7)
        else:
            ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes, color="grey")
    heading = f"Training dynamics against {x_label}"
    if x_axis == TOKENS_KEY and token_budget is not None:
        heading += f" (dotted: equal-compute budget, {token_budget:,.0f} tokens)"
    fig.suptitle(f"{title}: {heading}" if title else heading)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True, left_out


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


def paper_comparison(baseline: Run | None, runs: list[Run], size: str | None = None,
                     methods: list[str] | None = None, metric: str = "acc") -> dict | None:
    """The paper-layout tables (``paper_tables.py``) for the evaluated columns: ``size`` "0.8B"/"2B" (default: named
    in the baseline's or a run's model path, else 0.8B, said in a note); ``methods``: the paper row each column
    reproduces, in column order (default: the baseline is ``base``, a run named like a paper method is that method)."""
    from recipe.zppo.eval import paper_tables

    reference = paper_tables.load_reference()
    evaluated = [run for run in ([baseline] if baseline is not None else []) + runs if run.results]
    if not evaluated:
        return None
    columns, notes = [], []
    for i, run in enumerate(evaluated):
        if methods and i < len(methods):
            method = methods[i] or None
        elif run is baseline:
            method = "base"
        else:
            method = run.name if run.name in reference["methods"] else None
        if method is not None and method not in reference["methods"]:
            raise SystemExit(f"report: --paper-methods {method!r}: one of {', '.join(reference['methods'])}")
        columns.append(paper_tables.Column(run.name, method, benchmark_scores(run.results, metric)))
    if size is None:
        size = paper_tables.guess_size(*[run.results.get("model", "") for run in evaluated],
                                       *[run.results.get("model_path", "") for run in evaluated])
        if size is None:
            size = "0.8B"
            notes.append("student size not named in any model path: compared with the paper's 0.8B rows "
                         "(--paper-size 2B for the others)")
    tables = paper_tables.build(reference, size, columns)
    tables["notes"] = notes
    tables["markdown"] = paper_tables.markdown(tables) + "".join(f"\n- {note}" for note in notes) + (
        "\n" if notes else "")
    return tables


def make_report(run_paths: list[Path], baseline_path: Path | None, out: Path, names: list[str] | None = None,
                x_axis: str | None = None, metric: str = "acc", title: str | None = None,
                token_budget: float | None = None, paper_size: str | None = None,
                paper_methods: list[str] | None = None) -> dict:
    """Write the report files into ``out``; returns report.json's content (the evaluation table's numbers at the
    top level, the training tables under ``training``)."""
    if token_budget is not None and not token_budget > 0:
        raise SystemExit(f"report: --token-budget {token_budget}: must be a positive number of generated tokens")
    second_x = TOKENS_KEY if x_axis in (None, "step") else x_axis
    out.mkdir(parents=True, exist_ok=True)
    baseline = load_run(baseline_path) if baseline_path is not None else None
    if baseline is not None and baseline.results is None:
        raise SystemExit(f"report: --baseline {baseline_path}: no evaluation results to compare against")
    runs = [load_run(path, names[i] if names and i < len(names) else None) for i, path in enumerate(run_paths)]
    notes = []
    for run in runs:
        if not run.steps:
            log(f"report: {run.path}: no training metrics (metrics/*.jsonl); left out of the dynamics plots")
            notes.append(f"{run.name}: no training metrics found in {run.path / 'metrics'}")
        if run.results is None and baseline is not None:
            notes.append(f"{run.name}: no evaluation results found under {run.path}")
    # Without --baseline the report is about training only: no evaluation table or bars.
    table = build_table(baseline, runs, metric) if baseline is not None else None
    training = build_training(runs, token_budget)
    if training["without_compute"]:
        log(f"report: without {TOKENS_KEY}, left out of the equal-compute table: "
            + ", ".join(training["without_compute"]))
    plots = {}
    written, _ = plot_dynamics(runs, "step", out / "training_dynamics.png", title)
    if written:
        plots["training_dynamics"] = "training_dynamics.png"
    else:
        notes.append("no run has training metrics: no training-dynamics plot")
    if any(run.steps for run in runs):
        second_file = second_plot_file(second_x)
        written, left_out = plot_dynamics(runs, second_x, out / second_file, title, training["token_budget"])
        if written:
            plots["training_dynamics_" + ("tokens" if second_x == TOKENS_KEY else "x")] = second_file
        else:
            notes.append(f"no run logged {second_x}: no training-dynamics plot against it")
        if written and left_out:
            log(f"report: {', '.join(left_out)}: {second_x} not logged; left out of {second_file}")
            notes.append(f"{second_x} not logged by {', '.join(left_out)}: left out of {second_file}")
    if table is not None and plot_family_bars(table, out / "family_bars.png"):
        plots["family_bars"] = "family_bars.png"
    if table is not None and plot_benchmark_deltas(table, out / "benchmark_deltas.png"):
        plots["benchmark_deltas"] = "benchmark_deltas.png"
    if table is not None:
        text = markdown(table, [baseline, *runs], notes, title)
    else:
        text = f"# {title or 'Training report'}\n" + "".join(f"\n- {note}" for note in notes) + ("\n" if notes else "")
    paper = paper_comparison(baseline, runs, paper_size, paper_methods, metric)
    if paper is not None:
        text += "\n" + paper["markdown"]
        print(paper["markdown"], flush=True)
    training_text = training_markdown(training)
    if training_text:
        text += "\n" + training_text
    text += "\n" + "\n".join(f"![{key}]({file})" for key, file in plots.items()) + "\n"
    (out / "report.md").write_text(text)
    report = {**(table or {}), "title": title, "training": training, "plots": plots, "notes": notes, "x_axis": second_x,
              "paper": {k: v for k, v in paper.items() if k != "markdown"} if paper else None}
    (out / "report.json").write_text(json.dumps(report, indent=2))
    log(f"report: {out / 'report.md'} ({len(plots)} plots)")
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.zppo.report", description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="*", type=Path,
                        help="training and/or evaluation folders, one per method (none: the baseline alone against "
                             "the paper)")
    parser.add_argument("--baseline", default=None, type=Path,
                        help="the base model's evaluation folder (without it: the training tables and plots only)")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--names", default=None, help="comma-separated method names, in the order of the runs")
    parser.add_argument("--title", default=None, help="the report's heading (and the dynamics plots' title)")
    parser.add_argument("--x-axis", default=None,
                        help=f"the logged metric of the second dynamics plot's x axis (default {TOKENS_KEY}; "
                             "training_dynamics.png is always against step)")
    parser.add_argument("--token-budget", default=None, type=float,
                        help="generated tokens at which the equal-compute table cuts every run "
                             "(default: the smallest final spend of the runs)")
    parser.add_argument("--metric", default="acc", help="the per-benchmark number of the table (acc, pass@k, ...)")
    parser.add_argument("--paper-size", default=None, choices=("0.8B", "2B"),
                        help="the paper rows to compare with (default: the size named in the model paths, else 0.8B)")
    parser.add_argument("--paper-methods", default=None,
                        help="comma-separated paper method of each column, baseline first (base, grpo, grpo_buffer, "
                             "zppo, off_distill, ...; empty for none); default: base for the baseline, a run named "
                             "like a method is that method")
    args = parser.parse_args(argv)
    if not args.runs and args.baseline is None:
        parser.error("give evaluation/training folders and/or --baseline")
    names = [n.strip() for n in args.names.split(",")] if args.names else None
    methods = [m.strip() for m in args.paper_methods.split(",")] if args.paper_methods is not None else None
    make_report(args.runs, args.baseline, args.out, names, args.x_axis, args.metric, args.title, args.token_budget,
                args.paper_size, methods)
    return 0


if __name__ == "__main__":
    sys.exit(main())
