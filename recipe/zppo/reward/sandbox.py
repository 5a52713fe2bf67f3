"""Worker processes that run the grader under a hard deadline (mathruler's sympy cannot hang a reward worker).

Why processes: sympy can compute for ever inside C code (``9**9**9**9`` builds a huge integer and never returns to
the interpreter), where neither a signal nor a thread can stop it, and verl calls the reward from executor threads,
where ``signal.alarm`` does not work at all. So every grading that may reach sympy runs in a small pool of worker
processes (``ZPPO_GRADER_WORKERS``, default 2, started in the background on first use: ``python -c`` with this
process's ``sys.path``, one JSON line each way over pipes):

- inside a worker, a repeating ``SIGALRM`` timer stops Python-level slowness (``sympy.simplify`` grinding) without
  losing the worker; mathruler swallows exceptions with bare ``except:`` clauses, so the timer fires again every
  50 ms until the grading returns, and a flag says the answer came late (it is then reported as a timeout);
- the caller waits at most until its deadline and otherwise KILLS the worker (work stuck in C) and reports a
  timeout; a replacement starts at once in the background;
- a caller waits for a free worker only until its deadline too ("grader_busy").

Design taken from the project's earlier math-verify pool (same pipes, ``select`` and kill), with the deadline made
per call rather than per comparison: a 3-item gold list is graded in ONE worker call under ONE deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import os
import queue
import select
import signal
import subprocess
import sys
import threading
import time

logger = logging.getLogger(__name__)

STARTUP_TIMEOUT_S = 120.0  # a worker imports sympy and mathruler once; generous for a busy host
RESTART_AFTER_S = 60.0  # after 3 failed starts in a row, try again only this often (calls fail fast meanwhile)
_TICK_S = 0.05  # the worker's timer repeats this often once it has fired

# reasons a call returns instead of a result
TIMEOUT, BUSY, UNAVAILABLE, ERROR = "grader_timeout", "grader_busy", "grader_unavailable", "grader_error"


class _Late(Exception):
    pass


def _serve_stdio() -> None:
    """Worker main loop: ``{"args": {...}, "limit_s": s}`` -> ``[correct, detail]`` or ``[null, reason]``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    from recipe.zppo.reward.grader import grade

    grade("x+1", ["1+x"], "plain", None)  # first sympy call pays its caches here, not in a caller's deadline
    fired = False

    def on_alarm(signum, frame):
        nonlocal fired
        fired = True
        raise _Late()

    signal.signal(signal.SIGALRM, on_alarm)
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        fired = False
        try:
            request = json.loads(line)
            signal.setitimer(signal.ITIMER_REAL, max(float(request["limit_s"]), 0.01), _TICK_S)
            try:
                correct, detail = grade(**request["args"])
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            result = [None, TIMEOUT] if fired else [bool(correct), str(detail)]
        except _Late:
            result = [None, TIMEOUT]
        except Exception as exc:  # a grader bug: that answer scores 0, the worker lives on
            result = [None, f"{ERROR}:{type(exc).__name__}"]
        out.write(json.dumps(result) + "\n")
        out.flush()


_live_workers: set = set()


@atexit.register
def _kill_all_workers() -> None:
    """A worker busy in C code would outlive us (an idle one exits by itself on EOF)."""
    for worker in list(_live_workers):
        worker.kill(reap=False)


class _Worker:
    """A clean interpreter (``python -c``; the caller's ``__main__`` is not re-imported) speaking JSON lines."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from recipe.zppo.reward.sandbox import _serve_stdio; _serve_stdio()"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, close_fds=True)
        self._buffer = b""
        _live_workers.add(self)
        try:
            ready = self._readline(STARTUP_TIMEOUT_S)
        except Exception as exc:
            ready = repr(exc)
        if ready != "ready":
            self.kill()
            raise RuntimeError(f"grader worker did not start ({ready})")

    def _readline(self, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise TimeoutError()
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("grader worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, args: dict, limit_s: float, timeout_s: float) -> list:
        self.proc.stdin.write((json.dumps({"args": args, "limit_s": limit_s}) + "\n").encode())
        self.proc.stdin.flush()
        return self._readline(timeout_s)

    def kill(self, reap: bool = True) -> None:
        """SIGKILL now; the reaping happens in the background (a caller at its deadline does not wait for it)."""
        _live_workers.discard(self)
        with contextlib.suppress(Exception):
            self.proc.kill()
        if not reap:  # at exit: no new thread
            return

        def _reap():
            with contextlib.suppress(Exception):
                self.proc.wait(timeout=10)
            for stream in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(Exception):
                    stream.close()

        threading.Thread(target=_reap, name="zppo-grader-reap", daemon=True).start()


class Pool:
    """``size`` workers started in the background; a caller borrows one until its deadline."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self.lock = threading.Lock()
        self.alive = 0  # running or starting
        self.failed_starts = 0  # in a row
        self.last_failure = 0.0
        self.kills = 0  # workers killed at a deadline (stuck in C)
        self.calls = 0  # gradings sent to a worker
        self.closed = False

    def warm(self) -> None:
        """Start the missing workers in the background (returns at once)."""
        self._top_up()

    def wait_ready(self, timeout_s: float) -> bool:
        """Block until every worker is started (or ``timeout_s``); for tests and benchmarks."""
        self._top_up()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.idle.qsize() >= self.size:
                return True
            time.sleep(0.05)
        return False

    def _top_up(self) -> None:
        with self.lock:
            if self.closed or (self.failed_starts >= 3 and time.monotonic() - self.last_failure < RESTART_AFTER_S):
                return
            missing = self.size - self.alive
            self.alive += missing
        for _ in range(missing):
            threading.Thread(target=self._start_one, name="zppo-grader-start", daemon=True).start()

    def _start_one(self) -> None:
        try:
            worker = _Worker()
        except Exception as exc:
            with self.lock:
                self.alive -= 1
                self.failed_starts += 1
                self.last_failure = time.monotonic()
            logger.warning("zppo reward: cannot start a grader worker process: %r", exc)
            return
        with self.lock:
            self.failed_starts = 0
            closed = self.closed
        if closed:
            self._discard(worker)
        else:
            self.idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self.lock:
            self.alive -= 1
        self._top_up()

    def broken(self) -> bool:
        """No worker could be started lately (calls then fail at once instead of waiting)."""
        with self.lock:
            return self.alive == 0 and self.failed_starts >= 3

    def run(self, args: dict, deadline: float, limit_s: float) -> tuple:
        """``grade(**args)`` in a worker: (correct, detail), or (None, reason) with reason in TIMEOUT, BUSY,
        UNAVAILABLE, ERROR. Returns by ``deadline`` (time.monotonic()) whatever the input."""
        with self.lock:
            self.calls += 1
        for _ in range(2):  # a worker found dead (its pipe broken) is replaced and the next one asked
            self._top_up()
            if self.broken():
                return None, UNAVAILABLE
            try:
                worker = self.idle.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                return None, UNAVAILABLE if self.broken() else BUSY
            left = deadline - time.monotonic()
            if left <= 0.02:
                self.idle.put(worker)
                return None, BUSY
            try:
                # the worker's own timer stops Python-level work a little before the caller gives up on it
                correct, detail = worker.call(args, min(limit_s, max(0.01, left - 0.1)), left)
            except TimeoutError:
                logger.info("zppo reward: grader worker killed at its deadline on %r", str(args)[:160])
                with self.lock:
                    self.kills += 1
                self._discard(worker)
                return None, TIMEOUT
            except Exception as exc:
                logger.warning("zppo reward: grader worker failed (%r); replacing it", exc)
                self._discard(worker)
                continue
            self.idle.put(worker)
            return correct, detail
        return None, ERROR

    def worker_pids(self) -> list[int]:
        """Process ids of the idle workers (for CPU accounting in the benchmark)."""
        return [worker.proc.pid for worker in list(self.idle.queue)]

    def close(self) -> None:
        with self.lock:
            self.closed = True
        while True:
            try:
                worker = self.idle.get_nowait()
            except queue.Empty:
                break
            self._discard(worker)


_pool: Pool | None = None
_pool_pid = 0
_pool_lock = threading.Lock()


def pool() -> Pool:
    """This process's pool (a forked child gets its own: the parent's pipes are not shared)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            try:
                size = int(os.environ.get("ZPPO_GRADER_WORKERS", "2") or 2)
            except ValueError:
                size = 2
            _pool, _pool_pid = Pool(size), os.getpid()
        return _pool


def shutdown() -> None:
    """Stop the idle workers (for tests; they die with this process anyway)."""
    global _pool
    with _pool_lock:
        current, _pool = _pool, None
    if current is not None:
        current.close()
