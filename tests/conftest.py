"""Shared fixtures: tiny offline assets, and one local Ray cluster for every end-to-end run of the session.

Ray start-up dominates a tiny run, so the end-to-end tests start one head node (``ray start --head --block``) and
every ``python -m recipe.zppo.main_zppo`` subprocess attaches to it through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


def pytest_configure(config):
    config.addinivalue_line("markers", "e2e: end-to-end training runs on the CPU (subprocess + shared Ray cluster)")
    config.addinivalue_line("markers", "gpu: needs a GPU (never runs in CI)")


def pytest_collection_modifyitems(config, items):
    try:
        import torch

        has_gpu = torch.cuda.is_available()
    except Exception:
        has_gpu = False
    skip_gpu = pytest.mark.skip(reason="needs a GPU")
    for item in items:
        if "gpu" in item.keywords and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_assets(tmp_path_factory) -> dict[str, Path]:
    """The four tiny artefacts (text/VL model, text/image data), built once per test session."""
    from data_prep.tiny import build_all

    return build_all(tmp_path_factory.mktemp("tiny"), teacher_responses=2)


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray head node for the session; yields its address (set it as RAY_ADDRESS for a run)."""
    from benchmarks.local_ray import LocalRayHead

    with LocalRayHead(tmp_path_factory.mktemp("ray") / "ray_start.log", timeout_s=120) as address:
        yield address


def run_main(args: list[str], *, ray_address: str | None, cwd: Path, timeout: int = 900, env: dict | None = None):
    """Run ``python -m recipe.zppo.main_zppo ARGS`` as a user would; returns the CompletedProcess."""
    full_env = {**os.environ, **(env or {})}
    full_env.pop("VERL_PLATFORM", None)
    if ray_address:
        full_env["RAY_ADDRESS"] = ray_address
    else:
        full_env.pop("RAY_ADDRESS", None)
    return subprocess.run(
        [sys.executable, "-m", "recipe.zppo.main_zppo", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


def start_teacher_server(model: Path, log_path: Path, *extra_args: str, timeout_s: float = 120):
    """Start ``python -m recipe.zppo.teacher_server`` on a free loopback port; returns (process, base url).

    The caller stops the process (``stop_process``). Fails with the server's log if it does not come up in time.
    """
    import selectors

    with open(log_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "recipe.zppo.teacher.server", "--model", str(model), "--port", "0",
             "--threads", "1", "--seed", "0", *extra_args],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=err, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
    selector = selectors.DefaultSelector()
    selector.register(proc.stdout, selectors.EVENT_READ)
    deadline, url = time.monotonic() + timeout_s, None
    while url is None and time.monotonic() < deadline and proc.poll() is None:
        if selector.select(timeout=0.5):
            line = proc.stdout.readline()
            if line.startswith("teacher server ready on "):
                url = line.split(" on ", 1)[1].strip()
    selector.close()
    if url is None:
        stop_process(proc)
        raise RuntimeError(
            f"teacher server did not come up in {timeout_s:.0f} s:\n{Path(log_path).read_text()[-3000:]}")
    return proc, url


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    if proc.stdout:
        proc.stdout.close()
