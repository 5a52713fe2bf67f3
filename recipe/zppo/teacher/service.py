"""Teacher service: the OpenAI-compatible server a run asks for teacher answers (``client.py``).

Either an endpoint already running (``url``, e.g. ``vllm serve`` on the teacher's GPUs) or a server process the
run starts and stops: ``vllm serve`` where CUDA and vLLM are available, ``transformers serve`` on the CPU
(tests, the CPU demo; started through ``transformers_serve.py``). A started server runs in its own process group
from a scratch directory, its output in the log file; ``start`` returns once ``GET /health`` (or ``/v1/models``)
answers 200, and fails with a one-line reason and the log's tail if the process exits or ``startup_timeout_s``
passes.
"""

from __future__ import annotations

import atexit
import importlib.util
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from .client import normalise_base_url

CONFIG_PREFIX = "zppo.teacher.server"
ENGINES = ("auto", "transformers", "vllm")
STOP_GRACE_S = 10.0  # SIGTERM, then SIGKILL after this
LOG_TAIL_CHARS = 3000
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass  # not frozen: also a Hydra structured-config node (config/schema.py)
class TeacherServerConfig:
    """``zppo.teacher.server.*``: which OpenAI-compatible server the teacher client asks."""

    # An OpenAI-compatible endpoint already running (root or /v1, e.g. `vllm serve` on the teacher's GPUs);
    # empty: the run starts a server for `model`. Default "".
    url: str = ""
    # The teacher checkpoint (path or hub id) the run serves; with url, the served model name to request ("": the
    # first model of the server's /v1/models). Default "".
    model: str = ""
    # Which server the run starts: auto | transformers | vllm (auto: vllm when CUDA is available and vllm is
    # importable, else transformers serve on the CPU). Default auto.
    engine: str = "auto"
    # Address the started server listens on. Default 127.0.0.1.
    host: str = "127.0.0.1"
    # Port of the started server (0: a free one). Default 0.
    port: int = 0
    # CUDA_VISIBLE_DEVICES of a started vllm server (e.g. "6,7"); "" leaves the environment as it is. Default "".
    devices: str = ""
    # Appended to the started server's command line (e.g. ["--tensor-parallel-size", "2"]). Default [].
    extra_args: list[str] = field(default_factory=list)
    # Seconds a started server may take to answer /health (a 27B model loads in minutes). Default 900.
    startup_timeout_s: float = 900.0

    def __post_init__(self):
        def fail(key: str, expected: str) -> None:
            raise ValueError(f"{CONFIG_PREFIX}.{key}={getattr(self, key)!r}: expected {expected}")

        for key in ("url", "model", "host", "devices"):
            if not isinstance(getattr(self, key), str):
                fail(key, "a string")
        if self.url and not self.url.startswith(("http://", "https://")):
            fail("url", "an http:// or https:// address (or empty: the run starts a server)")
        if self.engine not in ENGINES:
            fail("engine", f"one of {', '.join(ENGINES)}")
        if not self.host.strip():
            fail("host", "an address to listen on")
        if not isinstance(self.port, int) or isinstance(self.port, bool) or not 0 <= self.port <= 65535:
            fail("port", "an integer in [0, 65535] (0: a free port)")
        if isinstance(self.extra_args, str) or not all(isinstance(a, str) for a in self.extra_args):
            fail("extra_args", "a list of strings")
        self.extra_args = list(self.extra_args)  # an OmegaConf ListConfig becomes a plain list
        timeout = self.startup_timeout_s
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout) \
                or timeout <= 0:
            fail("startup_timeout_s", "a number of seconds > 0")

    @property
    def configured(self) -> bool:
        """Whether a teacher server is set: an endpoint or a model to serve."""
        return bool(self.url.strip() or self.model.strip())


def vllm_available() -> bool:
    """CUDA is available and vllm importable (without importing it)."""
    if importlib.util.find_spec("vllm") is None:
        return False
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _console_script(name: str) -> str:
    """``name`` installed next to this Python (the venv's), else on PATH, else the bare name."""
    beside = Path(sys.executable).with_name(name)
    if beside.exists():
        return str(beside)
    return shutil.which(name) or name


def _get(url: str, timeout: float) -> tuple[int | None, str]:
    """(HTTP status or None, body or error) of a GET without proxies."""
    try:
        with _NO_PROXY.open(url, timeout=timeout) as response:
            return response.status, response.read(1 << 20).decode("utf-8", "replace")
    except urllib.error.HTTPError as error:
        return error.code, str(error.reason)
    except Exception as error:  # refused, reset, timed out, bad address
        reason = getattr(error, "reason", error)
        return None, f"{type(reason).__name__}: {reason}"


class TeacherService:
    """The teacher's server for a run: ``start()`` gives (base url ending in /v1, model name), ``stop()`` ends a
    started process. A context manager; ``stop`` is also registered with ``atexit``."""

    def __init__(self, config: TeacherServerConfig, log_path: str | Path):
        self.config = config
        self.log_path = Path(log_path)
        self.process: subprocess.Popen | None = None
        self.base_url: str | None = None
        self.model_name: str | None = None
        self._port = config.port or None
        self._scratch: str | None = None
        self._log = None

    # ---- what would run

    @property
    def engine(self) -> str:
        """The engine a started server uses (``auto`` resolved)."""
        if self.config.engine != "auto":
            return self.config.engine
        return "vllm" if vllm_available() else "transformers"

    @property
    def model(self) -> str:
        """The model as the server is started with it (and so as requests name it): a local path made absolute."""
        model = self.config.model.strip()
        return str(Path(model).expanduser().resolve()) if model and Path(model).expanduser().exists() else model

    @property
    def port(self) -> int:
        if self._port is None:
            self._port = _free_port(self.config.host)
        return self._port

    def command(self) -> list[str]:
        """The command ``start`` runs (a free port is picked on the first call when ``port`` is 0)."""
        cfg = self.config
        if not cfg.model.strip():
            raise ValueError(f"{CONFIG_PREFIX}.model is empty: set the teacher checkpoint to serve (or "
                             f"{CONFIG_PREFIX}.url to use a running server)")
        model, host, port = self.model, cfg.host, str(self.port)
        if self.engine == "vllm":
            return [_console_script("vllm"), "serve", model, "--host", host, "--port", port,
                    "--served-model-name", model, *cfg.extra_args]
        # transformers serve, with the reasoning of a reply kept (transformers_serve.py says why).
        return [sys.executable, "-m", "recipe.zppo.teacher.transformers_serve", "serve", "--host", host, "--port", port,
                "--device", "cpu", model, *cfg.extra_args]

    def environment(self) -> dict[str, str]:
        env = dict(os.environ)
        if self.engine == "vllm":
            if self.config.devices:
                env["CUDA_VISIBLE_DEVICES"] = self.config.devices
        else:
            env.setdefault("OMP_NUM_THREADS", "1")
            if Path(self.model).is_dir():
                env.setdefault("HF_HUB_OFFLINE", "1")  # a local checkpoint: no hub look-ups
        return env

    # ---- lifecycle

    def start(self) -> tuple[str, str]:
        """(base url ending in /v1, model name for requests); starts the server unless ``url`` is set."""
        if self.base_url is not None:
            return self.base_url, self.model_name
        if self.config.url.strip():
            return self._attach()
        command = self.command()
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._scratch = tempfile.mkdtemp(prefix="zppo-teacher-")
        self._log = open(self.log_path, "ab")
        self._log.write(f"$ {' '.join(command)}\n".encode())
        self._log.flush()
        self.process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                        cwd=self._scratch, env=self.environment(), start_new_session=True)
        atexit.register(self.stop)
        root = f"http://{self._connect_host()}:{self.port}"
        deadline = time.monotonic() + self.config.startup_timeout_s
        while True:
            code = self.process.poll()
            if code is not None:
                self.stop()
                raise RuntimeError(self._failure(f"the {self.engine} teacher server exited with code {code} before "
                                                 f"it was ready"))
            if self._ready(root, timeout=2.0):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(self._failure(f"the {self.engine} teacher server did not answer {root}/health "
                                                 f"within {self.config.startup_timeout_s:g} s"))
            time.sleep(0.5)
        self.base_url, self.model_name = root + "/v1", self.model
        return self.base_url, self.model_name

    def stop(self) -> None:
        """Terminate a started server's process group (SIGKILL after a grace period); idempotent."""
        proc, self.process = self.process, None
        atexit.unregister(self.stop)
        if proc is not None:
            self._signal_group(proc, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
            self._signal_group(proc, signal.SIGKILL)  # the leader and anything it left behind
            try:
                proc.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._scratch is not None:
            shutil.rmtree(self._scratch, ignore_errors=True)
            self._scratch = None
        self.base_url = self.model_name = None

    def __enter__(self) -> TeacherService:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ---- internals

    def _connect_host(self) -> str:
        host = self.config.host
        return "127.0.0.1" if host in ("0.0.0.0", "::", "") else host

    @staticmethod
    def _ready(root: str, timeout: float) -> bool:
        return any(_get(root + path, timeout)[0] == 200 for path in ("/health", "/v1/models"))

    @staticmethod
    def _signal_group(proc: subprocess.Popen, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the leader's pid
        except (ProcessLookupError, PermissionError):
            pass

    def _failure(self, what: str) -> str:
        try:
            tail = self.log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        except OSError:
            tail = ""
        last = next((line.strip() for line in reversed(tail.splitlines()) if line.strip()), "")
        reason = f": {last[:300]}" if last else ""
        return f"{what}{reason} (log {self.log_path})\n--- log tail ---\n{tail}"

    def _attach(self) -> tuple[str, str]:
        """A running endpoint: checked once (GET /health or /v1/models), the model name asked if not given."""
        base = normalise_base_url(self.config.url.strip())
        root = base[: -len("/v1")]
        health, health_detail = _get(root + "/health", 10.0)
        models, models_body = _get(base + "/models", 10.0)
        if health != 200 and models != 200:
            raise RuntimeError(f"{CONFIG_PREFIX}.url={self.config.url}: no OpenAI-compatible server answers there "
                               f"(GET /health: {health or health_detail}; GET /v1/models: {models or models_body})")
        model = self.config.model.strip()
        if not model:
            try:
                model = json.loads(models_body)["data"][0]["id"] if models == 200 else ""
            except (ValueError, KeyError, IndexError, TypeError):
                model = ""
            if not model:
                raise RuntimeError(f"{CONFIG_PREFIX}.model is empty and {base}/models names no model: set the "
                                   f"served model name")
        self.base_url, self.model_name = base, model
        return base, model
