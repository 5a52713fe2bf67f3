"""Teacher client: asks an OpenAI-compatible chat-completions server (``vllm serve``, ``transformers serve``) for
teacher answers, one answer per request.

Built on the ``openai`` package, which owns the HTTP, the timeouts and the retries (backoff, ``Retry-After``).
``chat`` never raises: any failure (refused connection, timeout, HTTP error, malformed reply) is a ``Reply`` with
an ``error`` line; ``submit`` runs ``chat`` in a pool of ``max_concurrency`` threads. No ``n``: ``transformers
serve`` ignores it, so callers ask G times. The message and image conversion lives in ``messages.py``.
"""

from __future__ import annotations

import math
import os
import re
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from .messages import IMAGE_OMITTED, VIDEO_OMITTED, image_to_url, join_reasoning, to_openai_messages

__all__ = [
    "IMAGE_OMITTED",
    "VIDEO_OMITTED",
    "Completion",
    "Reply",
    "TeacherClient",
    "TeacherClientConfig",
    "image_to_url",
    "join_reasoning",
    "normalise_base_url",
    "to_openai_messages",
]

CONFIG_PREFIX = "zppo.teacher.client"
MAX_ERROR_CHARS = 500
_STATUS_PREFIX = re.compile(r"^Error code: \d+ - ")  # openai's prefix of an HTTP error's message


@dataclass  # not frozen: also a Hydra structured-config node (config/schema.py)
class TeacherClientConfig:
    """``zppo.teacher.client.*``: how the teacher server is asked."""

    # Seconds one HTTP attempt may wait (connect, send, each read), passed to openai; a 12,288-token teacher answer
    # takes minutes. Default 600.
    timeout_s: float = 600.0
    # Attempts after the first, by openai itself (exponential backoff, the server's Retry-After; connection errors,
    # timeouts, HTTP 408/409/429/5xx). Default 2.
    max_retries: int = 2
    # Requests in flight at once: the size of the client's thread pool (submit). Default 32.
    max_concurrency: int = 32
    # Environment variable holding the API key; the key is "EMPTY" when it is unset. Default ZPPO_TEACHER_API_KEY.
    api_key_env: str = "ZPPO_TEACHER_API_KEY"
    # Send images as data URLs; false for a text-only teacher: images become the text "[image omitted]". Default true.
    send_images: bool = True

    def __post_init__(self):
        def fail(key: str, expected: str) -> None:
            raise ValueError(f"{CONFIG_PREFIX}.{key}={getattr(self, key)!r}: expected {expected}")

        def is_int(value: Any) -> bool:
            return isinstance(value, int) and not isinstance(value, bool)

        timeout = self.timeout_s
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or not math.isfinite(timeout) \
                or timeout <= 0:
            fail("timeout_s", "a number of seconds > 0")
        if not is_int(self.max_retries) or self.max_retries < 0:
            fail("max_retries", "an integer >= 0")
        if not is_int(self.max_concurrency) or self.max_concurrency < 1:
            fail("max_concurrency", "an integer >= 1")
        if not isinstance(self.api_key_env, str) or not self.api_key_env.strip():
            fail("api_key_env", "the name of an environment variable")
        if not isinstance(self.send_images, bool):
            fail("send_images", "true or false")


@dataclass(frozen=True)
class Completion:
    # The answer; a separately returned reasoning is joined back as "<think>{reasoning}</think>{content}".
    text: str
    # "stop", "length", ...
    finish_reason: str
    # From the reply's usage (0 when the server sends none).
    prompt_tokens: int
    completion_tokens: int

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class Reply:
    completion: Completion | None  # None on failure
    error: str | None  # one line: what went wrong
    seconds: float  # wall time of this request, retries included


class _Malformed(Exception):
    pass


def normalise_base_url(url: str) -> str:
    """``http://host:port``, ``.../v1`` or ``.../v1/chat/completions`` -> ``.../v1``."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")) or len(url.split("//", 1)[1]) == 0:
        raise ValueError(f"teacher base_url={url!r}: expected an http:// or https:// address")
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        base = base[: -len("/chat/completions")]
    return base if base.endswith("/v1") else base + "/v1"


def _one_line(text: str) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= MAX_ERROR_CHARS else line[: MAX_ERROR_CHARS - 3] + "..."


def _field(obj: Any, name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def _completion_of(response: Any) -> Completion:
    """The first choice of a chat-completions reply (an openai object, or whatever a broken server sent)."""
    choices = _field(response, "choices")
    if not isinstance(choices, (list, tuple)):
        got = f": the body starts {response[:120]!r}" if isinstance(response, str) else ""  # a non-JSON body
        raise _Malformed(f"no choices in the reply{got}")
    if not choices:
        raise _Malformed("empty choices")
    choice = choices[0]
    message = _field(choice, "message")
    if message is None:
        raise _Malformed("the choice has no message")
    if not isinstance(message, Mapping):
        dump = getattr(message, "model_dump", None)  # keeps the fields openai does not declare (reasoning_content)
        message = dump() if callable(dump) else {"content": getattr(message, "content", None)}
    content = message.get("content")
    if content is not None and not isinstance(content, (str, list)):
        raise _Malformed(f"message content is a {type(content).__name__}")
    finish = _field(choice, "finish_reason")
    usage = _field(response, "usage")

    def tokens(name: str) -> int:
        value = _field(usage, name) if usage is not None else None
        return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0

    return Completion(join_reasoning(message), str(finish) if finish is not None else "", tokens("prompt_tokens"),
                      tokens("completion_tokens"))


class TeacherClient:
    """One teacher endpoint (``base_url``: ``http://host:port`` or ``.../v1``) and the model name to request."""

    def __init__(self, base_url: str, model: str, config: TeacherClientConfig | None = None):
        import openai

        self.config = config if config is not None else TeacherClientConfig()
        self.base_url = normalise_base_url(base_url)
        self.model = model
        self._openai_errors = openai
        self._attempts = threading.local()  # HTTP attempts of the request running in this thread
        http_client = openai.DefaultHttpxClient(event_hooks={"request": [self._count_attempt]})
        self._openai = openai.OpenAI(
            base_url=self.base_url, api_key=os.environ.get(self.config.api_key_env) or "EMPTY",
            timeout=float(self.config.timeout_s), max_retries=int(self.config.max_retries), http_client=http_client)
        self._pool = ThreadPoolExecutor(max_workers=self.config.max_concurrency, thread_name_prefix="zppo-teacher")
        self._lock = threading.Lock()
        self._counters = dict.fromkeys(("requests", "failures", "truncated", "prompt_tokens", "completion_tokens",
                                        "attempts", "images_sent", "images_dropped"), 0)
        self._in_flight = 0
        self._busy_since = 0.0
        self._busy_s = 0.0

    # ---- public

    def chat(self, messages: Sequence[Mapping], *, images: Sequence[Any] = (), max_tokens: int, temperature: float,
             top_p: float = 1.0, thinking: bool | None = None) -> Reply:
        """One answer to ``messages`` (the row's ``images`` fill their ``<image>`` places). Blocks; never raises;
        bounded by openai's timeout per attempt, ``max_retries`` and its backoff between attempts."""
        started = time.monotonic()
        self._attempts.count = 0
        with self._lock:
            self._counters["requests"] += 1
            if self._in_flight == 0:
                self._busy_since = started
            self._in_flight += 1
        completion, error = None, None
        try:
            completion = self._request(messages, images, max_tokens, temperature, top_p, thinking)
        except Exception as exc:  # every failure is a Reply, never an exception
            error = self._describe(exc)
        finally:
            ended = time.monotonic()
            with self._lock:
                self._in_flight -= 1
                if self._in_flight == 0:
                    self._busy_s += ended - self._busy_since
                self._counters["attempts"] += self._attempts.count
                if completion is None:
                    self._counters["failures"] += 1
                else:
                    self._counters["truncated"] += completion.truncated
                    self._counters["prompt_tokens"] += completion.prompt_tokens
                    self._counters["completion_tokens"] += completion.completion_tokens
        return Reply(completion, error, ended - started)

    def submit(self, messages: Sequence[Mapping], **kwargs: Any) -> Future[Reply]:
        """``chat(messages, **kwargs)`` in the client's pool (at most ``max_concurrency`` at once)."""
        return self._pool.submit(self.chat, messages, **kwargs)

    def stats(self) -> dict[str, float]:
        """Cumulative counters: requests (chat calls), failures, truncated (finish_reason "length"), prompt_tokens,
        completion_tokens, attempts (HTTP attempts, retries included), images_sent, images_dropped, and busy_s (wall
        time with at least one request in flight: diff it per step)."""
        with self._lock:
            out = {key: float(value) for key, value in self._counters.items()}
            busy = self._busy_s + (time.monotonic() - self._busy_since if self._in_flight else 0.0)
        out["busy_s"] = busy
        return out

    def close(self) -> None:
        """Cancel queued requests and close the HTTP client (a request still running ends with an error)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._openai.close()

    def __enter__(self) -> TeacherClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    # ---- internals

    def _count_attempt(self, _request) -> None:
        self._attempts.count = getattr(self._attempts, "count", 0) + 1

    def _request(self, messages, images, max_tokens, temperature, top_p, thinking) -> Completion:
        converted, sent, dropped = to_openai_messages(messages, images, send_images=self.config.send_images)
        with self._lock:
            self._counters["images_sent"] += sent
            self._counters["images_dropped"] += dropped
        extra = {}
        if thinking is not None:
            extra["extra_body"] = {"chat_template_kwargs": {"enable_thinking": bool(thinking)}}
        response = self._openai.chat.completions.create(
            model=self.model, messages=converted, max_tokens=int(max_tokens), temperature=float(temperature),
            top_p=float(top_p), **extra)
        return _completion_of(response)

    def _describe(self, exc: Exception) -> str:
        errors = self._openai_errors
        attempts = getattr(self._attempts, "count", 0)
        if isinstance(exc, errors.APITimeoutError):
            what = f"timed out after {self.config.timeout_s:g} s"
        elif isinstance(exc, errors.APIConnectionError):
            cause, seen = exc.__cause__ or exc.__context__, 0
            while cause is not None and (cause.__cause__ or cause.__context__) is not None and seen < 5:
                cause, seen = cause.__cause__ or cause.__context__, seen + 1
            what = f"connection failed: {cause if cause is not None else exc}"
        elif isinstance(exc, errors.APIStatusError):
            what = f"HTTP {exc.status_code}: {_STATUS_PREFIX.sub('', str(exc.message))}"
        elif isinstance(exc, (errors.APIResponseValidationError, _Malformed, ValueError)):
            what = f"malformed reply: {exc}"
        else:
            what = f"{type(exc).__name__}: {exc}"
        where = f"{self.base_url} ({attempts} attempt{'s' if attempts != 1 else ''})" if attempts else self.base_url
        return _one_line(f"{what} [{where}]")
