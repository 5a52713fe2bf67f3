"""math-verify with a hard time limit, callable from any thread.

Two facts shape this module:

- math-verify bounds its own work with ``signal.alarm``, which only works in a main thread, and verl's
  reward managers call the reward function from executor threads;
- a signal cannot interrupt work done inside C code: sympy evaluating ``9^{9^{9^{9}}}`` computes a huge
  integer and never returns to the interpreter, so no in-process timer can stop it.

So every comparison runs in a small pool of worker processes (``ZPPO_MATH_VERIFY_WORKERS``, default 2, started
on first use: ``python -c`` with this process's ``sys.path``, JSON lines over pipes). A worker applies a
``SIGALRM`` timer in its own main thread (cheap stop for Python-level slowness); the caller waits at most
``timeout + 1`` seconds for the answer and otherwise KILLS that worker (a fresh one replaces it on demand) and
reports a timeout. Inputs longer than ``MAX_MV_CHARS`` never reach sympy. The time limit is ``timeout_s`` or
``ZPPO_MATH_VERIFY_TIMEOUT_S`` (default 3 s). If worker processes cannot be started at all, comparisons run
inline under the signal timer when called from the main thread (inputs that look like exponent towers or huge
powers are refused) and are reported "unavailable" otherwise.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import queue
import re
import select
import signal
import subprocess
import sys
import threading
import time

logger = logging.getLogger(__name__)

MAX_MV_CHARS = 300
DEFAULT_TIMEOUT_S = 3.0
STARTUP_TIMEOUT_S = 120.0  # a worker imports sympy and math-verify once; generous for a busy host

# result details
EQUAL, NOT_EQUAL, UNPARSED, TIMEOUT, ERROR, TOO_LONG, UNAVAILABLE = (
    "equal", "not_equal", "unparsed", "timeout", "error", "too_long", "unavailable",
)


class _Timeout(Exception):
    pass


def default_timeout_s() -> float:
    try:
        value = float(os.environ.get("ZPPO_MATH_VERIFY_TIMEOUT_S", DEFAULT_TIMEOUT_S))
    except ValueError:
        value = DEFAULT_TIMEOUT_S
    return value if value > 0 else DEFAULT_TIMEOUT_S


def _can_use_signals() -> bool:
    return hasattr(signal, "setitimer") and threading.current_thread() is threading.main_thread()


@contextlib.contextmanager
def _alarm(seconds: float):
    """Raise ``_Timeout`` in the main thread after ``seconds``; restore any previous SIGALRM timer/handler."""

    def handler(signum, frame):
        raise _Timeout()

    old_handler = signal.signal(signal.SIGALRM, handler)
    old_delay, old_interval = signal.setitimer(signal.ITIMER_REAL, seconds)
    started = time.monotonic()
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old_handler)
        if old_delay > 0:
            remaining = max(old_delay - (time.monotonic() - started), 1e-3)
            signal.setitimer(signal.ITIMER_REAL, remaining, old_interval)


def _quiet_math_verify() -> None:
    """math-verify warns once that its own timeout is off: this module supplies the timeout."""
    import math_verify.grader
    import math_verify.parser

    math_verify.grader.TIMEOUT_WARNING_SHOWN = True
    math_verify.parser.TIMEOUT_WARNING_SHOWN = True


def _parse(text: str):
    from math_verify import parse
    from math_verify.parser import ExprExtractionConfig, LatexExtractionConfig

    configs = [LatexExtractionConfig(boxed_match_priority=0), ExprExtractionConfig()]
    parsed = parse("\\boxed{" + text + "}", extraction_config=configs, parsing_timeout=None)
    if not parsed:
        parsed = parse(text, extraction_config=configs, parsing_timeout=None)
    return parsed


def _as_float(value) -> float | None:
    try:
        f = float(value.evalf()) if hasattr(value, "evalf") else float(value)
    except Exception:
        return None
    return f if math.isfinite(f) else None


def _compare(gold: str, pred: str, rel_tol: float | None) -> tuple[bool | None, str]:
    from math_verify import verify

    _quiet_math_verify()
    gold_parsed = _parse(gold)
    pred_parsed = _parse(pred)
    if not gold_parsed or not pred_parsed:
        return None, UNPARSED
    if verify(gold_parsed, pred_parsed, float_rounding=6, timeout_seconds=None):
        return True, EQUAL
    if rel_tol is not None:
        for g in gold_parsed:
            gv = _as_float(g)
            if gv is None:
                continue
            for p in pred_parsed:
                pv = _as_float(p)
                if pv is not None and abs(pv - gv) <= (rel_tol * abs(gv) if abs(gv) > 1e-12 else rel_tol):
                    return True, EQUAL
    return False, NOT_EQUAL


def _compare_inline(gold: str, pred: str, rel_tol: float | None, timeout_s: float) -> tuple[bool | None, str]:
    """Compare under a SIGALRM timer (main thread only); stops Python-level work, not C-level work."""
    try:
        with _alarm(timeout_s):
            return _compare(gold, pred, rel_tol)
    except _Timeout:
        return None, TIMEOUT
    except Exception as exc:  # sympy/latex2sympy raise many things on odd input
        logger.debug("math-verify error on %r vs %r: %r", gold, pred, exc)
        return None, ERROR


def _serve_stdio() -> None:
    """Worker process main loop on stdin/stdout, one JSON line each way:
    [gold, pred, rel_tol, timeout_s] -> [correct, detail]."""
    import json
    import sys

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    out = sys.stdout
    sys.stdout = sys.stderr  # nothing but replies on the pipe
    _quiet_math_verify()
    out.write('"ready"\n')
    out.flush()
    for line in sys.stdin:
        try:
            gold, pred, rel_tol, timeout_s = json.loads(line)
            result = _compare_inline(str(gold), str(pred), rel_tol, float(timeout_s))
        except Exception:
            result = (None, ERROR)
        out.write(json.dumps(list(result)) + "\n")
        out.flush()


_live_workers: set = set()


@atexit.register
def _kill_all_workers() -> None:
    """A worker busy in C code would outlive us (it exits by itself on EOF only when idle)."""
    for worker in list(_live_workers):
        worker.kill()


class _Worker:
    """A clean interpreter (``python -c``; no re-import of the caller's ``__main__``) speaking JSON lines."""

    def __init__(self):
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from recipe.zppo.reward.mathverify import _serve_stdio; _serve_stdio()"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env,
            close_fds=True,
        )
        self._buffer = b""
        _live_workers.add(self)
        try:
            ready = self._readline(STARTUP_TIMEOUT_S)
        except Exception as exc:
            ready = repr(exc)
        if ready != "ready":
            self.kill()
            raise RuntimeError(f"math-verify worker did not start ({ready})")

    def _readline(self, timeout_s: float):
        deadline = time.monotonic() + timeout_s
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise _Timeout()
            ready, _, _ = select.select([fd], [], [], left)
            if not ready:
                raise _Timeout()
            chunk = os.read(fd, 65536)
            if not chunk:
                raise EOFError("math-verify worker exited")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return json.loads(line)

    def call(self, args: tuple, timeout_s: float) -> tuple[bool | None, str]:
        self.proc.stdin.write((json.dumps(list(args)) + "\n").encode())
        self.proc.stdin.flush()
        correct, detail = self._readline(timeout_s)
        return correct, detail

    def kill(self) -> None:
        _live_workers.discard(self)
        with contextlib.suppress(Exception):
            self.proc.kill()
            self.proc.wait(timeout=2)
        for stream in (self.proc.stdin, self.proc.stdout):
            with contextlib.suppress(Exception):
                stream.close()


class _Pool:
    """Up to ``size`` workers; a caller borrows one, and a worker that times out or fails is killed."""

    def __init__(self, size: int):
        self.size = max(1, size)
        self.idle: queue.LifoQueue[_Worker] = queue.LifoQueue()
        self.lock = threading.Lock()
        self.alive = 0
        self.failed_starts = 0

    def _borrow(self, wait_s: float) -> _Worker | None:
        try:
            return self.idle.get_nowait()
        except queue.Empty:
            pass
        with self.lock:
            spawn = self.alive < self.size
            if spawn:
                self.alive += 1
        if spawn:
            try:
                return _Worker()
            except Exception as exc:
                with self.lock:
                    self.alive -= 1
                    self.failed_starts += 1
                logger.warning("zppo reward: cannot start a math-verify worker process: %r", exc)
                return None
        try:
            return self.idle.get(timeout=wait_s)
        except queue.Empty:
            return None

    def _discard(self, worker: _Worker) -> None:
        worker.kill()
        with self.lock:
            self.alive -= 1

    def run(self, gold: str, pred: str, rel_tol: float | None, timeout_s: float) -> tuple[bool | None, str]:
        worker = self._borrow(wait_s=4 * (timeout_s + 1))
        if worker is None:
            return None, UNAVAILABLE
        try:
            result = worker.call((gold, pred, rel_tol, timeout_s), timeout_s + 1.0)
        except _Timeout:
            logger.info(
                "zppo reward: math-verify worker killed after %.1fs on %r vs %r", timeout_s, gold[:80], pred[:80]
            )
            self._discard(worker)
            return None, TIMEOUT
        except Exception as exc:
            logger.warning("zppo reward: math-verify worker failed (%r); replacing it", exc)
            self._discard(worker)
            return None, ERROR
        self.idle.put(worker)
        return result

    def close(self) -> None:
        while True:
            try:
                worker = self.idle.get_nowait()
            except queue.Empty:
                break
            self._discard(worker)


_pool: _Pool | None = None
_pool_lock = threading.Lock()


def _get_pool() -> _Pool:
    global _pool
    with _pool_lock:
        if _pool is None:
            try:
                size = int(os.environ.get("ZPPO_MATH_VERIFY_WORKERS", "2") or 2)
            except ValueError:
                size = 2
            _pool = _Pool(size)
        return _pool


def shutdown() -> None:
    """Stop the idle worker processes (they are daemons and die with this process anyway)."""
    global _pool
    with _pool_lock:
        pool, _pool = _pool, None
    if pool is not None:
        pool.close()


def math_equal(
    gold: str, pred: str, rel_tol: float | None = None, timeout_s: float | None = None
) -> tuple[bool | None, str]:
    """Compare two answers with math-verify (gold first: its rules are not symmetric).

    Returns (True, "equal"), (False, "not_equal"), or (None, why) with why in "unparsed" (either side is not
    mathematics math-verify reads), "timeout", "error", "too_long", "unavailable". Never raises; blocks at
    most about ``timeout_s + 1`` seconds once a worker is running (a worker's first start takes longer).
    """
    gold, pred = str(gold).strip(), str(pred).strip()
    if not gold or not pred:
        return None, UNPARSED
    if len(gold) > MAX_MV_CHARS or len(pred) > MAX_MV_CHARS:
        return None, TOO_LONG
    timeout_s = timeout_s if timeout_s and timeout_s > 0 else default_timeout_s()
    pool = _get_pool()
    result = pool.run(gold, pred, rel_tol, timeout_s)
    if result[1] == UNAVAILABLE and pool.failed_starts and _can_use_signals():
        # no worker process can run here: inline under the signal timer, minus the inputs that would make
        # sympy compute in C (where the timer cannot stop it)
        if _too_complex(gold) or _too_complex(pred):
            return None, TOO_LONG
        return _compare_inline(gold, pred, rel_tol, timeout_s)
    return result


_TOWER_RE = re.compile(r"\^\s*\{[^{}]*\^|\^\s*\(?[^\s{}()]*\^|\*\*[^*]*\*\*")
_BIG_EXP_RE = re.compile(r"(?:\^|\*\*)\s*\{?\s*\(?\s*\d{4,}|\d{3,}\s*!|\\(?:factorial|binom)")


def _too_complex(text: str) -> bool:
    """Exponent towers, exponents of 4+ digits, factorials of 3+ digits: sympy may compute them for ever."""
    return bool(_TOWER_RE.search(text) or _BIG_EXP_RE.search(text))
