"""Shared fixtures: tiny offline assets, and one local Ray cluster for every end-to-end run of the session.

Ray start-up dominates a tiny run, so the end-to-end tests start one head node (``ray start --head --block``) and
every ``python -m recipe.zppo.main_zppo`` subprocess attaches to it through ``RAY_ADDRESS``.

``make test`` runs two pytest-xdist workers (a tiny run leaves about a third of 2 cores idle while its processes
start): each worker has its own Ray head, and both share one build of the tiny artefacts (a file lock per artefact
group, so the second worker waits for the first build instead of repeating it).
"""

from __future__ import annotations

import os
import subprocess
import sys
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
        # the marker itself, not item.keywords: keywords also hold folder names (a checkout in a folder named
        # "gpu" would skip every test)
        if item.get_closest_marker("gpu") is not None and not has_gpu:
            item.add_marker(skip_gpu)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """Where the session's tiny artefacts are built (``data_prep.tiny`` layout); under pytest-xdist, one folder
    for every worker of the run (the parent of the workers' own temporary folders)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent
    path = root / "tiny"
    path.mkdir(exist_ok=True)
    return path


def _built_once(tiny_dir: Path, group: str, build):
    """``build()`` under a lock shared by the run's workers: the first builds, the others find it up to date."""
    from filelock import FileLock

    with FileLock(str(tiny_dir / f".{group}.lock")):
        return build()


@pytest.fixture(scope="session")
def tiny_assets(tiny_dir) -> dict[str, Path]:
    """The four tiny student-side artefacts (text/VL model, text/image data), built once per test run."""
    from data_prep.tiny import ARTEFACTS, build_all

    return _built_once(tiny_dir, "student", lambda: build_all(
        tiny_dir, teacher_responses=2, only=[k for k in ARTEFACTS if k != "teacher-model"]))


@pytest.fixture(scope="session")
def tiny_teacher(tiny_dir) -> Path:
    """The tiny teacher (about a minute to teach on 2 cores), taught the train answers of ``tiny_assets``' text set
    (same seed and stored responses): built once, only for the tests that use it."""
    from data_prep.tiny import artefact_paths, build_teacher_model

    return _built_once(tiny_dir, "teacher", lambda: build_teacher_model(
        artefact_paths(tiny_dir)["teacher-model"], teacher_responses=2))


@pytest.fixture(scope="session")
def tiny_text_model(tiny_dir) -> Path:
    """The tiny Qwen3 text model alone (the same folder as ``tiny_assets["text-model"]``: built once)."""
    from data_prep.tiny import artefact_paths, build_text_model

    return _built_once(tiny_dir, "student", lambda: build_text_model(artefact_paths(tiny_dir)["text-model"]))


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
    """Start ``transformers serve`` on the CPU with ``model`` on a free loopback port (``TeacherService``).

    Returns (service, base url ending in /v1, model name for requests: the model's absolute path); the caller
    stops it with ``service.stop()``. Fails with the server's log tail if it does not come up in time.
    """
    from recipe.zppo.teacher.service import TeacherServerConfig, TeacherService

    config = TeacherServerConfig(model=str(model), engine="transformers", extra_args=list(extra_args),
                                 startup_timeout_s=timeout_s)
    service = TeacherService(config, log_path)
    url, name = service.start()
    return service, url, name
