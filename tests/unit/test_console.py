"""zppo.console=steps (recipe/zppo/console.py): the terminal shows ZPPO's lines and a progress bar, the log file
everything, child processes and Ray-forwarded worker lines included."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from recipe.zppo.console import LOG_NAME, visible


def test_visible_keeps_zppo_lines_and_strips_rays_prefix():
    assert visible("(TaskRunner pid=4242) [zppo] step 3: hard 2/8\n") == "[zppo] step 3: hard 2/8"
    assert visible("\x1b[36m(TaskRunner pid=7, ip=10.0.0.2)\x1b[0m [zppo] step 1: x") == "[zppo] step 1: x"
    assert visible("zppo: teacher server ready at http://127.0.0.1:1/v1 in 9 s") is not None
    for noise in ("(WorkerDict pid=1) INFO: loading weights", "2026-12-06 WARNING something", "", "step 1: zppo"):
        assert visible(noise) is None


def _run(body: str, tmp_path) -> subprocess.CompletedProcess:
    script = textwrap.dedent(f"""
        import subprocess, sys
        from recipe.zppo.console import StepConsole
        with StepConsole({str(tmp_path)!r}, total_steps=2):
        """) + textwrap.indent(textwrap.dedent(body), "    ")
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_terminal_shows_steps_and_the_log_keeps_everything(tmp_path):
    result = _run("""
        print("INFO noisy start-up line")
        print("(TaskRunner pid=11) [zppo] step 1: hard 3/8 | BCQ 1", flush=True)
        subprocess.run([sys.executable, "-c", "print('child noise'); import sys; print('child err', file=sys.stderr)"])
        print("(TaskRunner pid=11) [zppo] step 2: hard 1/8 | BCQ 0", file=sys.stderr, flush=True)
        """, tmp_path)
    assert result.returncode == 0, result.stderr
    terminal = result.stdout
    assert "[zppo] step 1: hard 3/8 | BCQ 1" in terminal and "[zppo] step 2: hard 1/8" in terminal
    assert "noisy" not in terminal and "child" not in terminal and "pid=11" not in terminal
    assert f"full log goes to {tmp_path / LOG_NAME}" in terminal
    assert "2/2" in result.stderr + terminal  # the progress bar reached the last step
    log = (tmp_path / LOG_NAME).read_text()
    for line in ("INFO noisy start-up line", "child noise", "child err", "(TaskRunner pid=11) [zppo] step 2"):
        assert line in log


def test_a_failed_run_shows_the_logs_tail(tmp_path):
    result = _run("""
        print("something went wrong here", flush=True)
        raise RuntimeError("boom")
        """, tmp_path)
    assert result.returncode != 0
    assert "the run failed; the last lines of" in result.stdout and "something went wrong here" in result.stdout
    assert "RuntimeError: boom" in (tmp_path / LOG_NAME).read_text() + result.stderr
