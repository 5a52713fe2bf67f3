"""One local Ray head for many short CPU runs (the test session, the toy experiment, the methods report).

Ray's start-up dominates a tiny run, so runs attach to one head (``RAY_ADDRESS``) instead of starting their own:

    with LocalRayHead(log_path) as address:
        run_main_zppo(["preset=cpu", ...], address, log_path=run_dir.with_suffix(".log"))
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LocalRayHead:
    """``ray start --head --block`` in a child process; entering waits until it answers, leaving terminates it."""

    def __init__(self, log_path: str | Path, timeout_s: float = 180.0):
        self.log_path = Path(log_path)
        self.timeout_s = timeout_s
        self.address: str | None = None
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> str:
        ray_bin = Path(sys.executable).with_name("ray")
        port = free_port()
        # Every port of the head is chosen free, not left at Ray's fixed defaults (client server 10001, dashboard
        # agent 52365, ...), so two sessions on one machine (a developer's and CI's) do not collide.
        side_ports = [f"--{name}={free_port()}" for name in (
            "ray-client-server-port", "dashboard-agent-listen-port", "dashboard-agent-grpc-port",
            "runtime-env-agent-port", "metrics-export-port")]
        # A local cluster without token authentication: Ray turns it on by itself once some earlier `ray start` left
        # ~/.ray/auth_token behind, and the CLI probe below would then be refused. Set for the head, the probe and
        # (inherited) every run started from this process.
        os.environ["RAY_AUTH_MODE"] = "disabled"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "w") as log:
            # More logical CPUs than cores: verl's many small actors each hold one slot. Logical GPUs: verl counts
            # devices through Ray; a run uses one, on-policy distillation a second for its teacher's resource pool.
            self._process = subprocess.Popen(
                [str(ray_bin), "start", "--head", "--block", f"--port={port}", "--num-cpus=32", "--num-gpus=2",
                 "--include-dashboard=false", "--disable-usage-stats", *side_ports],
                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "RAY_ADDRESS": ""},
            )
        address = f"127.0.0.1:{port}"
        deadline = time.time() + self.timeout_s
        while time.time() < deadline:
            probe = subprocess.run([str(ray_bin), "status", f"--address={address}"], capture_output=True, text=True)
            if probe.returncode == 0:
                self.address = address
                return address
            if self._process.poll() is not None:
                raise RuntimeError(f"ray start exited early, see {self.log_path}")
            time.sleep(1)
        self.__exit__(None, None, None)
        raise RuntimeError(f"Ray head did not come up within {self.timeout_s:.0f} s, see {self.log_path}")

    def __exit__(self, *exc) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=30)
        self._process = None


def run_main_zppo(overrides: list[str], address: str, log_path: str | Path, *, cwd: str | Path | None = None,
                  timeout: float | None = None, env: dict | None = None) -> int:
    """``python -m recipe.zppo.main_zppo OVERRIDES`` attached to the head at ``address``, its output (stdout and
    stderr) into ``log_path``; returns its exit status."""
    run_env = {**os.environ, **(env or {}), "RAY_ADDRESS": address, "RAY_AUTH_MODE": "disabled"}
    run_env.pop("VERL_PLATFORM", None)  # verl resolves the platform itself (the cpu plugin on this machine)
    Path(log_path).parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w") as log:
        return subprocess.run([sys.executable, "-m", "recipe.zppo.main_zppo", *overrides], stdout=log,
                              stderr=subprocess.STDOUT, env=run_env, cwd=cwd, timeout=timeout).returncode
