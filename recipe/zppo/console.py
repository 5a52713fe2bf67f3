"""The run's console in ``zppo.console=steps`` mode: ZPPO's own lines and a progress bar; everything to a log file.

A CPU run prints some two thousand lines of Ray and verl start-up output for a few training steps. In this mode
the driver's stdout and stderr (and so what Ray forwards from every worker, and what child processes write) go
through a pipe into ``<run dir>/run.log``; the terminal shows only the driver's ``zppo:`` lines, the trainer's
``[zppo]`` lines (the per-step summary) and a progress bar over ``trainer.total_training_steps``. When the run
fails, the log's last lines are shown with its path.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections import deque
from pathlib import Path

from tqdm import tqdm

MODES = ("all", "steps")
LOG_NAME = "run.log"
TAIL_LINES = 40

# Ray prefixes what it forwards from a worker: "(TaskRunner pid=123) " or "(TaskRunner pid=123, ip=10.0.0.1) ",
# coloured on a terminal.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_RAY_PREFIX = re.compile(r"^\(\w+ pid=\d+(?:, ip=[\w.:]+)?\)\s*")
_SHOWN = re.compile(r"^(zppo: |\[zppo\] )")
_STEP = re.compile(r"^\[zppo\] step (\d+):")


def visible(line: str) -> str | None:
    """The part of a log line the console shows (colours and Ray's worker prefix removed), or None."""
    text = _RAY_PREFIX.sub("", _ANSI.sub("", line.rstrip("\n")))
    return text if _SHOWN.match(text) else None


class StepConsole:
    """Context manager: while active, fds 1 and 2 write to ``<run_dir>/run.log``; ZPPO's lines reach the
    terminal above a progress bar."""

    def __init__(self, run_dir: str | os.PathLike, total_steps: int | None):
        self.log_path = Path(run_dir) / LOG_NAME
        self.total_steps = total_steps
        self.tail: deque[str] = deque(maxlen=TAIL_LINES)
        self._saved: tuple[int, int] | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> StepConsole:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        sys.stdout.flush()
        sys.stderr.flush()
        self._saved = (os.dup(1), os.dup(2))
        self._terminal = os.fdopen(os.dup(self._saved[0]), "w", buffering=1)
        self._terminal.write(f"zppo: the full log goes to {self.log_path}\n")
        read_fd, write_fd = os.pipe()
        os.dup2(write_fd, 1)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        self._bar = tqdm(total=self.total_steps, desc="zppo steps", unit="step", file=self._terminal,
                         dynamic_ncols=True, leave=True)
        self._thread = threading.Thread(target=self._pump, args=(read_fd,), name="zppo-console", daemon=True)
        self._thread.start()
        return self

    def _pump(self, read_fd: int) -> None:
        with os.fdopen(read_fd, "r", errors="replace") as pipe, open(self.log_path, "a") as log:
            for line in pipe:
                log.write(line)
                log.flush()
                self.tail.append(line.rstrip("\n"))
                shown = visible(line)
                if shown is None:
                    continue
                self._bar.write(shown, file=self._terminal)
                step = _STEP.match(shown)
                if step and int(step.group(1)) > self._bar.n:
                    self._bar.update(int(step.group(1)) - self._bar.n)

    def __exit__(self, exc_type, exc, tb) -> None:
        sys.stdout.flush()
        sys.stderr.flush()
        out, err = self._saved
        os.dup2(out, 1)  # closes the pipe's last write ends: the pump reads to its end and stops
        os.dup2(err, 2)
        os.close(out)
        os.close(err)
        self._thread.join(timeout=5)  # a child still holding the pipe (a Ray process) must not hold the exit
        self._bar.close()
        if exc_type is not None and not (exc_type is SystemExit and exc.code in (0, None)):
            self._terminal.write(f"zppo: the run failed; the last lines of {self.log_path}:\n")
            self._terminal.write("\n".join(self.tail) + "\n")
        self._terminal.close()
