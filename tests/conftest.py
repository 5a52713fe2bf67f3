"""Shared fixtures: tiny offline assets, and one local Ray cluster for every end-to-end run of the session.

Ray start-up dominates a tiny run, so the end-to-end tests start one head node (``ray start --head --block``) and
every ``python -m recipe.zppo.main_zppo`` subprocess attaches to it through ``RAY_ADDRESS``.
"""

from __future__ import annotations

import os
import socket
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A local Ray head node for the session; yields its address (set it as RAY_ADDRESS for a run)."""
    ray_bin = Path(sys.executable).with_name("ray")
    port = _free_port()
    # Every port of the head is chosen free, not left at Ray's fixed defaults (client server 10001, dashboard agent
    # 52365, ...), so two test sessions on one machine (a developer's and CI's) do not collide.
    side_ports = [f"--{name}={_free_port()}" for name in (
        "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
        "runtime-env-agent-port", "metrics-export-port")]
    # A local test cluster without token authentication: Ray turns it on by itself once some earlier `ray start`
    # left ~/.ray/auth_token behind, and the CLI probe below would then be refused. Set for the head, the probe
    # and (inherited) every training subprocess.
    os.environ["RAY_AUTH_MODE"] = "disabled"
    log = open(tmp_path_factory.mktemp("ray") / "ray_start.log", "w")
    # More logical CPUs than cores: verl's many small actors each hold one slot. Logical GPUs: verl counts devices
    # through Ray; a run uses one, on-policy distillation a second for its teacher's own resource pool.
    # --block keeps the head in this child process, so terminating it ends the cluster.
    head = subprocess.Popen(
        [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=32", "--num-gpus=2",
         "--include-dashboard=false", "--disable-usage-stats", *side_ports],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAY_ADDRESS": ""},
    )
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        probe = subprocess.run([str(ray_bin), "status", f"--address={address}"], capture_output=True, text=True)
        if probe.returncode == 0:
            break
        if head.poll() is not None:
            raise RuntimeError(f"ray start exited early, see {log.name}")
        time.sleep(1)
    else:
        head.terminate()
        raise RuntimeError(f"Ray head did not come up within 120 s, see {log.name}")
    yield address
    head.terminate()
    try:
        head.wait(timeout=60)
    except subprocess.TimeoutExpired:
        head.kill()
    log.close()


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
            [sys.executable, "-m", "recipe.zppo.teacher_server", "--model", str(model), "--port", "0",
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
        raise RuntimeError(f"teacher server did not come up in {timeout_s:.0f} s:\n{Path(log_path).read_text()[-3000:]}")
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
