"""The user's evaluation numbers beside the paper's, in the paper's table layouts (Tabs 1, 2 and 4).

The reference numbers are data (``paper_reference.json``: every per-benchmark number and average of Tabs 1-2 at
0.8B and 2B, and Tab. 4's family averages, keyed by the benchmark ids of ``data_prep.benchmarks``; columns and
abbreviations of App. B.2, Tabs 5-7). ``python -m recipe.zppo.report`` prints, for one student size:

- Tab. 1 layout: Method | the 16 VLM columns | Avg;
- Tab. 2 layout: Method | the 10 LLM columns | Avg | the 5 Video columns | Avg;
- Tab. 4 layout: Method | LLM VLM Video at 0.8B | LLM VLM Video at 2B (family averages);

each with the paper's rows of that size, then every evaluated run as a row ("ours: NAME") and, for a run that
corresponds to a paper row (``base``, ``grpo``, ``grpo_buffer``, ``zppo``, ...), a row of deltas (ours - paper, points).
Evaluating the base model first checks the pipeline against the paper's base row (Qwen3.5-0.8B: VLM 41.0, LLM 25.2,
Video 48.3). An average over fewer benchmarks than the paper's is marked ``*`` with the count. Benchmarks outside the
paper's 31 (the registry's "extra" suite) are listed in their own table, never averaged into a family.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

REFERENCE_FILE = Path(__file__).with_name("paper_reference.json")
SIZES = ("0.8B", "2B")
FAMILY_TITLES = {"vlm": "VLM", "llm": "LLM", "video": "Video"}


@dataclass
class Column:
    """One evaluated run: its name, the paper method it reproduces (or None), its per-benchmark scores (percent)."""

    name: str
    method: str | None
    scores: dict[str, float]


def load_reference(path: Path = REFERENCE_FILE) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


def guess_size(*texts: str) -> str | None:
    """The student size named in a model path or run name ("Qwen3.5-0.8B" -> "0.8B"), if any."""
    for text in texts:
        match = re.search(r"(?<![\d.])(0\.8|2)\s*[bB](?![a-zA-Z])", str(text or ""))
        if match:
            return f"{match.group(1)}B"
    return None


def _benchmarks(reference: dict, family: str) -> list[str]:
    return [name for name, entry in reference["benchmarks"].items() if entry["family"] == family]


def _fmt(value: float | None, signed: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:+.1f}" if signed else f"{value:.1f}"


def _average(scores: dict[str, float], names: list[str]) -> tuple[float | None, int]:
    present = [scores[n] for n in names if scores.get(n) is not None]
    return (sum(present) / len(present) if present else None), len(present)


def _paper_rows(reference: dict, table: str, size: str, family: str) -> list[dict]:
    return [row for row in reference["rows"] if row["table"] == table and row["size"] == size
            and row["family"] == family]


def family_block(reference: dict, size: str, family: str, columns: list[Column]) -> dict:
    """Every number of one family's block: the paper's rows, each run's row, and deltas vs its paper row."""
    names = _benchmarks(reference, family)
    table = "Tab. 1" if family == "vlm" else "Tab. 2"
    paper = _paper_rows(reference, table, size, family)
    rows = [{"kind": "paper", "label": row["label"], "method": row["method"],
             "values": [row["scores"][n] for n in names], "avg": row["avg"], "count": len(names)} for row in paper]
    by_method = {row["method"]: row for row in paper}
    for column in columns:
        avg, count = _average(column.scores, names)
        rows.append({"kind": "ours", "label": f"ours: {column.name}", "method": column.method,
                     "values": [column.scores.get(n) for n in names], "avg": avg, "count": count})
        ref = by_method.get(column.method)
        if ref is not None:
            values = [None if column.scores.get(n) is None else column.scores[n] - ref["scores"][n] for n in names]
            # the delta of the averages compares like with like: the paper's average over the same benchmarks
            ref_avg, _ = _average(ref["scores"], [n for n in names if column.scores.get(n) is not None])
            rows.append({"kind": "delta", "label": f"Δ {column.name} - paper {ref['label'].strip()}",
                         "method": column.method, "values": values,
                         "avg": None if avg is None or ref_avg is None else avg - ref_avg, "count": count})
    return {"family": family, "table": table, "benchmarks": names,
            "abbrs": [reference["benchmarks"][n]["abbr"] for n in names], "rows": rows}


def tab4_block(reference: dict, columns_by_size: dict[str, list[Column]]) -> dict:
    """Tab. 4's layout: family averages at 0.8B and 2B, the paper's rows then the runs (in the column of their size)."""
    families = ("llm", "vlm", "video")
    rows = []
    for label in dict.fromkeys(row["label"] for row in reference["tab4"]):
        cells = {}
        for row in reference["tab4"]:
            if row["label"] == label:
                cells.update({(row["size"], f): row["avg"][f] for f in families})
        rows.append({"kind": "paper", "label": label,
                     "values": [cells.get((size, f)) for size in SIZES for f in families]})
    for size, columns in columns_by_size.items():
        for column in columns:
            values = []
            for s in SIZES:
                for f in families:
                    avg, count = _average(column.scores, _benchmarks(reference, f)) if s == size else (None, 0)
                    values.append(avg)
            rows.append({"kind": "ours", "label": f"ours: {column.name} ({size})", "values": values})
    return {"columns": [f"{FAMILY_TITLES[f]} {size}" for size in SIZES for f in families], "rows": rows}


def extra_block(reference: dict, columns: list[Column]) -> dict | None:
    """Benchmarks some run has that are not among the paper's 31."""
    known = set(reference["benchmarks"])
    names = sorted({n for column in columns for n in column.scores if n not in known})
    if not names:
        return None
    return {"benchmarks": names,
            "rows": [{"label": f"ours: {c.name}", "values": [c.scores.get(n) for n in names]} for c in columns]}


def build(reference: dict, size: str, columns: list[Column]) -> dict:
    """Every number of the paper-layout tables for one student size."""
    if size not in SIZES:
        raise ValueError(f"paper tables: size {size!r}: the paper's Tabs 1-2 have {', '.join(SIZES)}")
    return {
        "size": size,
        "vlm": family_block(reference, size, "vlm", columns),
        "llm": family_block(reference, size, "llm", columns),
        "video": family_block(reference, size, "video", columns),
        "tab4": tab4_block(reference, {size: columns}),
        "extra": extra_block(reference, columns),
        "source": reference["source"],
    }


def _avg_cell(row: dict, total: int) -> str:
    text = _fmt(row["avg"], row["kind"] == "delta")
    if row["kind"] != "paper" and row["avg"] is not None and row["count"] < total:
        text += f"*({row['count']})"
    return text


def markdown(tables: dict) -> str:
    size = tables["size"]
    lines = [f"## Against the paper (Qwen3.5-{size}; paper rows: {tables['source'].split(':')[0]})", "",
             "Paper rows are the paper's numbers; `ours` rows are the evaluations here; `Δ` rows are ours minus the "
             "paper row of the same method, in points. `*(k)`: an average over the k benchmarks evaluated (the "
             "paper's over all; the Δ compares the paper's average over the same k).", ""]
    vlm = tables["vlm"]
    lines += [f"### Tab. 1 layout: 16 VLM benchmarks ({size})", "",
              "| Method | " + " | ".join(vlm["abbrs"]) + " | Avg |", "|---" * (len(vlm["abbrs"]) + 2) + "|"]
    for row in vlm["rows"]:
        cells = [_fmt(v, row["kind"] == "delta") for v in row["values"]]
        lines.append("| " + " | ".join([row["label"], *cells, _avg_cell(row, len(vlm["abbrs"]))]) + " |")
    llm, video = tables["llm"], tables["video"]
    lines += ["", f"### Tab. 2 layout: 10 LLM and 5 Video benchmarks ({size})", "",
              "| Method | " + " | ".join(llm["abbrs"]) + " | Avg | " + " | ".join(video["abbrs"]) + " | Avg |",
              "|---" * (len(llm["abbrs"]) + len(video["abbrs"]) + 3) + "|"]
    for row_l, row_v in zip(llm["rows"], video["rows"]):
        delta = row_l["kind"] == "delta"
        cells = ([_fmt(v, delta) for v in row_l["values"]] + [_avg_cell(row_l, len(llm["abbrs"]))]
                 + [_fmt(v, delta) for v in row_v["values"]] + [_avg_cell(row_v, len(video["abbrs"]))])
        lines.append("| " + " | ".join([row_l["label"], *cells]) + " |")
    tab4 = tables["tab4"]
    lines += ["", "### Tab. 4 layout: family averages", "", "| Method | " + " | ".join(tab4["columns"]) + " |",
              "|---" * (len(tab4["columns"]) + 1) + "|"]
    for row in tab4["rows"]:
        lines.append("| " + " | ".join([row["label"], *[_fmt(v) for v in row["values"]]]) + " |")
    extra = tables.get("extra")
    if extra:
        lines += ["", "### Extra benchmarks (not in the paper; not averaged into any family)", "",
                  "| Method | " + " | ".join(extra["benchmarks"]) + " |", "|---" * (len(extra["benchmarks"]) + 1) + "|"]
        for row in extra["rows"]:
            lines.append("| " + " | ".join([row["label"], *[_fmt(v) for v in row["values"]]]) + " |")
    return "\n".join(lines) + "\n"
