"""Helpers shared by the benchmark scripts: CPU pinning, timing, tables, goal lines and the JSON report.

Every script builds a ``Report``: rows of measured figures (printed as a table), goals checked against those
figures (printed as ``PASS`` / ``MISS`` lines, never asserted), and machine facts (load average, cores, pinning)
so that a number can be judged later. ``Report.write(path)`` stores everything as JSON.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


def pin_to_one_core(cpu: int | None) -> dict[str, Any]:
    """Run this process (and the thread pools it starts later) on one core; returns what was set.

    ``cpu=None`` or a negative value leaves the affinity alone. Thread pools of numpy/torch/tokenizers are
    limited through the environment (read when those libraries load) and through torch directly.
    """
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "RAYON_NUM_THREADS"):
        os.environ.setdefault(name, "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    pinned = None
    if cpu is not None and cpu >= 0 and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {cpu})
        pinned = cpu
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    return {"pinned_cpu": pinned, "threads": 1}


def machine_facts() -> dict[str, Any]:
    """What a reader needs to judge a timing: cores, load, Python and library versions."""
    facts: dict[str, Any] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    facts["cpu_model"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    for module in ("torch", "transformers", "tokenizers", "verl", "numpy"):
        try:
            facts[f"{module}_version"] = __import__(module).__version__
        except Exception:
            pass
    return facts


class Durations(list):
    """Wall-clock seconds of timed calls, with the process's CPU seconds of the same calls in ``cpu``.

    On a shared machine the wall clock counts the time other processes held the core; the CPU time of a
    single-threaded call does not, and equals its wall time on an idle core. ``summarise`` reports both.
    """

    def __init__(self, wall=(), cpu=()):
        super().__init__(wall)
        self.cpu = list(cpu)


def time_calls(fn: Callable[[], Any], repeat: int, warmup: int = 1) -> Durations:
    """Wall-clock (and CPU) seconds of ``repeat`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = Durations()
    for _ in range(repeat):
        cpu_start, start = time.process_time(), time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
        times.cpu.append(time.process_time() - cpu_start)
    return times


def summarise(times: list[float]) -> dict[str, float]:
    """Median, minimum, 99th percentile and maximum of a list of durations (seconds); ``cpu_median_s`` too when
    the durations carry CPU times (``time_calls``)."""
    ordered = sorted(times)
    p99 = ordered[min(len(ordered) - 1, int(round(0.99 * (len(ordered) - 1))))]
    stats = {"median_s": statistics.median(ordered), "min_s": ordered[0], "p99_s": p99, "max_s": ordered[-1],
             "calls": len(ordered)}
    cpu = getattr(times, "cpu", None)
    if cpu:
        cpu_ordered = sorted(cpu)
        stats["cpu_median_s"] = statistics.median(cpu_ordered)
        stats["cpu_min_s"] = cpu_ordered[0]
        stats["cpu_p99_s"] = cpu_ordered[min(len(cpu_ordered) - 1, int(round(0.99 * (len(cpu_ordered) - 1))))]
    return stats


def goal_seconds(stats: dict[str, float], key: str = "median_s") -> float:
    """The figure a goal is checked on: CPU time when measured (a shared machine's wall clock counts other
    processes' turns on the core), else wall time."""
    return stats.get("cpu_" + key, stats[key])


def fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} us"
    if seconds < 1.0:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.3f} s"


@dataclass
class Goal:
    name: str
    value: float | None
    limit: float
    unit: str
    passed: bool | None  # None: not measured in this run (e.g. a part that was skipped)
    note: str = ""

    def line(self) -> str:
        status = "PASS" if self.passed else ("SKIP" if self.passed is None else "MISS")
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        text = f"{status} {self.name}: {value} {self.unit} (goal <= {self.limit:g} {self.unit})"
        return text + (f" - {self.note}" if self.note else "")


@dataclass
class Report:
    """Rows, goals and facts of one benchmark run."""

    benchmark: str
    settings: dict[str, Any]
    rows: list[dict[str, Any]] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    facts: dict[str, Any] = field(default_factory=machine_facts)
    notes: list[str] = field(default_factory=list)

    def row(self, section: str, name: str, **values: Any) -> dict[str, Any]:
        record = {"section": section, "name": name, **values}
        self.rows.append(record)
        return record

    def goal(self, name: str, value: float | None, limit: float, unit: str, note: str = "") -> Goal:
        passed = None if value is None else bool(value <= limit)
        goal = Goal(name, value, limit, unit, passed, note)
        self.goals.append(goal)
        return goal

    def print_table(self, columns: list[tuple[str, str]], file=None) -> None:
        """``columns``: (row key, header). Seconds-valued keys (ending in ``_s``) are shown with units."""
        file = file or sys.stdout
        cells = [[header for _, header in columns]]
        for record in self.rows:
            line = []
            for key, _ in columns:
                value = record.get(key)
                if key.endswith("_s") and isinstance(value, (int, float)):
                    line.append(fmt_seconds(float(value)))
                elif isinstance(value, float):
                    line.append(f"{value:.4g}")
                else:
                    line.append("" if value is None else str(value))
            cells.append(line)
        widths = [max(len(row[i]) for row in cells) for i in range(len(columns))]
        for i, line in enumerate(cells):
            print("  ".join(text.ljust(width) for text, width in zip(line, widths)).rstrip(), file=file)
            if i == 0:
                print("  ".join("-" * width for width in widths), file=file)

    def print_goals(self, file=None) -> None:
        file = file or sys.stdout
        for note in self.notes:
            print(f"note: {note}", file=file)
        for goal in self.goals:
            print(goal.line(), file=file)

    def to_json(self) -> dict[str, Any]:
        return {
            "benchmark": self.benchmark,
            "settings": self.settings,
            "facts": self.facts,
            "rows": self.rows,
            "goals": [goal.__dict__ for goal in self.goals],
            "notes": self.notes,
        }

    def finish(self, columns: list[tuple[str, str]], out: str | Path) -> int:
        """The end of every benchmark script: a load-average note when the machine was busy, the table, the notes
        and goals, the JSON file. Returns the script's exit status (0: goals are reported, not enforced)."""
        load = os.getloadavg()[0] if hasattr(os, "getloadavg") else 0.0
        if load > 1.0:
            self.notes.append(f"machine load average {load:.2f} at the end: timings are noisy")
        print()
        self.print_table(columns)
        print()
        self.print_goals()
        self.write(out)
        return 0

    def write(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=2, default=str) + "\n")
        print(f"wrote {path}")
        return path


def default_output(name: str) -> Path:
    """Where a script writes its JSON unless told: outputs/benchmarks/<name>.json (outputs/ is git-ignored)."""
    return REPO_ROOT / "outputs" / "benchmarks" / f"{name}.json"
