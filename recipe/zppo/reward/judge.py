"""Judge-model fallback: an OpenAI-compatible chat-completions endpoint (e.g. vLLM serving Qwen3.5-27B).

Off by default. ``compute_score`` consults it only when the deterministic path found no answer it could
interpret (never for an empty response or an unclosed think block). Standard library only (urllib).

Configuration: keyword arguments of ``compute_score`` (what verl passes from
``reward.custom_reward_function.reward_kwargs``; flat ``judge_<key>`` or a nested ``judge: {<key>: ...}``),
else the environment variable ``ZPPO_JUDGE_<KEY>``, else the default:

================ ========================== ==========================================================
key              env var                    meaning (default)
================ ========================== ==========================================================
url              ZPPO_JUDGE_URL             base URL (``http://host:8000/v1``) or the full
                                            ``.../chat/completions`` URL; the judge is on iff url and
                                            model are set (none)
model            ZPPO_JUDGE_MODEL           model name sent in the request (none)
enable           ZPPO_JUDGE_ENABLE          set false to switch a configured judge off (true)
api_key_env      ZPPO_JUDGE_API_KEY_ENV     NAME of the env var holding the API key, sent as
                                            ``Authorization: Bearer`` (none: no header)
timeout_s        ZPPO_JUDGE_TIMEOUT_S       per-request socket timeout (30)
max_retries      ZPPO_JUDGE_MAX_RETRIES     retries after a failed request (timeouts, connection errors,
                                            HTTP 429/5xx; not other 4xx), backoff 0.25 s doubling (2)
max_concurrency  ZPPO_JUDGE_MAX_CONCURRENCY requests in flight per process (8); a caller waits at most
                                            one request's worst case for a slot, then gives up
cache_size       ZPPO_JUDGE_CACHE_SIZE      verdicts kept in memory per process, keyed by (model,
                                            question, gold, response tail); LRU (100000)
max_tokens       ZPPO_JUDGE_MAX_TOKENS      max_tokens of the request (512)
response_chars   ZPPO_JUDGE_RESPONSE_CHARS  tail of the response (after the think block) shown (4000)
fail_threshold   ZPPO_JUDGE_FAIL_THRESHOLD  consecutive failed calls that open the circuit breaker (3)
cooldown_s       ZPPO_JUDGE_COOLDOWN_S      while open, calls fail at once as judge_unavailable (30)
extra_body       ZPPO_JUDGE_EXTRA_BODY      dict (or JSON text) merged into the request body, e.g.
                                            ``{"chat_template_kwargs": {"enable_thinking": false}}``
================ ========================== ==========================================================

Failure never raises and never hangs: the verdict is None with a reason ("judge_timeout",
"judge_connection_error", "judge_http_<code>", "judge_bad_reply", "judge_circuit_open", "judge_busy").
Worst-case time of one call: (max_retries + 1) * timeout_s + backoff (about 0.75 s with 2 retries).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import socket
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass

logger = logging.getLogger(__name__)

JUDGE_KEYS = (
    "url", "model", "enable", "api_key_env", "timeout_s", "max_retries", "max_concurrency", "cache_size",
    "max_tokens", "response_chars", "fail_threshold", "cooldown_s", "extra_body",
)

SYSTEM_PROMPT = (
    "You grade answers. You are given a question, its gold answer and the end of a student's response. "
    "Decide whether the student's final answer is equivalent to the gold answer (same value, choice or "
    "meaning; formatting, units and wording do not matter; a response that hedges between several answers "
    "is incorrect). Reply with exactly one word: CORRECT or INCORRECT."
)
_VERDICT_RE = re.compile(r"\b(INCORRECT|NOT\s+CORRECT|CORRECT)\b", re.IGNORECASE)
_THINK_RE = re.compile(r"<think>.*?</think>", re.DOTALL)


@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    api_key_env: str | None = None
    timeout_s: float = 30.0
    max_retries: int = 2
    max_concurrency: int = 8
    cache_size: int = 100_000
    max_tokens: int = 512
    response_chars: int = 4000
    fail_threshold: int = 3
    cooldown_s: float = 30.0
    extra_body: str = "{}"  # JSON text (hashable)

    @property
    def endpoint(self) -> str:
        url = self.url.rstrip("/")
        if url.endswith("/chat/completions"):
            return url
        if not url.endswith("/v1"):
            url += "/v1"
        return url + "/chat/completions"


@dataclass(frozen=True)
class JudgeResult:
    verdict: bool | None  # None: the judge could not be used
    reason: str


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned and len(_warned) < 100:
        _warned.add(message)
        logger.warning(message)


def judge_config_from(kwargs: dict | None = None, environ=None) -> JudgeConfig | None:
    """The judge configuration from compute_score's kwargs and the environment; None when the judge is off."""
    kwargs = dict(kwargs or {})
    environ = os.environ if environ is None else environ
    nested = kwargs.get("judge")
    if hasattr(nested, "items"):  # dict or OmegaConf DictConfig
        for key, value in nested.items():
            kwargs.setdefault(f"judge_{key}", value)

    def get(key, default=None):
        value = kwargs.get(f"judge_{key}")
        if value is None:
            value = environ.get(f"ZPPO_JUDGE_{key.upper()}")
        return default if value is None or value == "" else value

    if not _truthy(get("enable", True)):
        return None
    url, model = get("url"), get("model")
    if not url or not model:
        if url or model:
            _warn_once("zppo judge: both judge url and judge model are needed; the judge stays off")
        return None
    extra = get("extra_body", {})
    try:
        if isinstance(extra, str):
            extra = json.loads(extra)
        if hasattr(extra, "items"):
            extra = {k: (dict(v) if hasattr(v, "items") else v) for k, v in extra.items()}
        extra_json = json.dumps(extra if isinstance(extra, dict) else {}, sort_keys=True)
    except (TypeError, ValueError):
        _warn_once(f"zppo judge: extra_body {extra!r} is not a JSON object; ignored")
        extra_json = "{}"

    def num(key, default, cast):
        try:
            value = cast(get(key, default))
        except (TypeError, ValueError):
            _warn_once(f"zppo judge: bad value for {key}; using {default}")
            return default
        return value

    return JudgeConfig(
        url=str(url),
        model=str(model),
        api_key_env=str(get("api_key_env")) if get("api_key_env") else None,
        timeout_s=max(0.05, num("timeout_s", 30.0, float)),
        max_retries=max(0, num("max_retries", 2, int)),
        max_concurrency=max(1, num("max_concurrency", 8, int)),
        cache_size=max(0, num("cache_size", 100_000, int)),
        max_tokens=max(1, num("max_tokens", 512, int)),
        response_chars=max(200, num("response_chars", 4000, int)),
        fail_threshold=max(1, num("fail_threshold", 3, int)),
        cooldown_s=max(0.0, num("cooldown_s", 30.0, float)),
        extra_body=extra_json,
    )


def parse_verdict(content) -> bool | None:
    """CORRECT -> True, INCORRECT -> False (the last one said, outside any think block); else None."""
    if not isinstance(content, str):
        return None
    content = _THINK_RE.sub(" ", content)
    if "</think>" in content:
        content = content.rsplit("</think>", 1)[1]
    if "<think>" in content:  # reasoning cut off before a verdict
        return None
    found = _VERDICT_RE.findall(content)
    if not found:
        return None
    return found[-1].upper() == "CORRECT"


def build_messages(question: str, gold: str, response_tail: str) -> list[dict]:
    user = (
        f"Question:\n{question.strip() or '(not given)'}\n\n"
        f"Gold answer:\n{gold.strip()}\n\n"
        f"End of the student's response:\n{response_tail.strip()}\n\n"
        "Is the student's final answer correct? Reply with exactly one word: CORRECT or INCORRECT."
    )
    return [{"role": "system", "content": SYSTEM_PROMPT}, {"role": "user", "content": user}]


class _Retryable(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class JudgeStats:
    requests: int = 0
    cache_hits: int = 0
    verdicts: int = 0
    failures: int = 0
    bad_replies: int = 0
    circuit_rejections: int = 0


class JudgeClient:
    """One endpoint's client: concurrency limit, LRU cache, bounded retries, circuit breaker (per process)."""

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._slots = threading.BoundedSemaphore(config.max_concurrency)
        self._cache: OrderedDict[str, bool] = OrderedDict()
        self._lock = threading.Lock()
        self._consecutive_failures = 0
        self._open_until = 0.0
        self.stats = JudgeStats()
        host = urllib.parse.urlsplit(config.endpoint).hostname or ""
        handlers = [urllib.request.ProxyHandler({})] if host in ("localhost", "127.0.0.1", "::1") else []
        self._opener = urllib.request.build_opener(*handlers)

    def _key(self, question: str, gold: str, tail: str) -> str:
        raw = json.dumps([self.config.model, question, gold, tail], ensure_ascii=False)
        return hashlib.sha256(raw.encode("utf-8", errors="replace")).hexdigest()

    def _cache_get(self, key: str) -> bool | None:
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
                return self._cache[key]
        return None

    def _cache_put(self, key: str, verdict: bool) -> None:
        if self.config.cache_size <= 0:
            return
        with self._lock:
            self._cache[key] = verdict
            self._cache.move_to_end(key)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)

    def _post(self, payload: dict) -> dict:
        headers = {"Content-Type": "application/json"}
        if self.config.api_key_env:
            key = os.environ.get(self.config.api_key_env)
            if key:
                headers["Authorization"] = f"Bearer {key}"
        request = urllib.request.Request(
            self.config.endpoint, data=json.dumps(payload).encode("utf-8"), headers=headers, method="POST"
        )
        try:
            with self._opener.open(request, timeout=self.config.timeout_s) as response:
                body = response.read(4 * 1024 * 1024)
        except urllib.error.HTTPError as exc:
            if exc.code == 429 or exc.code >= 500:
                raise _Retryable(f"judge_http_{exc.code}") from exc
            raise _Fatal(f"judge_http_{exc.code}") from exc
        except TimeoutError as exc:
            raise _Retryable("judge_timeout") from exc
        except urllib.error.URLError as exc:
            reason = getattr(exc, "reason", None)
            if isinstance(reason, (TimeoutError, socket.timeout)):
                raise _Retryable("judge_timeout") from exc
            raise _Retryable("judge_connection_error") from exc
        except (ConnectionError, OSError) as exc:
            raise _Retryable("judge_connection_error") from exc
        try:
            return json.loads(body.decode("utf-8", errors="replace"))
        except ValueError as exc:
            raise _Retryable("judge_bad_json") from exc

    def judge(self, question: str, gold: str, response_tail: str) -> JudgeResult:
        cfg = self.config
        tail = (response_tail or "")[-cfg.response_chars :]
        question = (question or "")[:8000]
        gold = (gold or "")[:2000]
        key = self._key(question, gold, tail)
        cached = self._cache_get(key)
        if cached is not None:
            return JudgeResult(cached, "judge_cached")
        with self._lock:
            if time.monotonic() < self._open_until:
                self.stats.circuit_rejections += 1
                return JudgeResult(None, "judge_circuit_open")
        worst_case = (cfg.max_retries + 1) * cfg.timeout_s + 1.0
        if not self._slots.acquire(timeout=worst_case):
            return JudgeResult(None, "judge_busy")
        try:
            return self._judge_uncached(key, question, gold, tail)
        except Exception as exc:  # never raise into verl's reward loop
            logger.warning("zppo judge: unexpected error %r", exc)
            return JudgeResult(None, "judge_error")
        finally:
            self._slots.release()

    def _judge_uncached(self, key: str, question: str, gold: str, tail: str) -> JudgeResult:
        cfg = self.config
        payload = {
            "model": cfg.model,
            "messages": build_messages(question, gold, tail),
            "temperature": 0.0,
            "max_tokens": cfg.max_tokens,
        }
        payload.update(json.loads(cfg.extra_body))
        reason = "judge_error"
        for attempt in range(cfg.max_retries + 1):
            with self._lock:
                self.stats.requests += 1
            try:
                reply = self._post(payload)
            except _Fatal as exc:
                reason = exc.reason
                break
            except _Retryable as exc:
                reason = exc.reason
                if attempt < cfg.max_retries:
                    time.sleep(min(0.25 * 2**attempt, 2.0))
                continue
            with self._lock:
                self._consecutive_failures = 0
            try:
                content = reply["choices"][0]["message"]["content"]
            except (KeyError, IndexError, TypeError):
                content = None
            verdict = parse_verdict(content)
            if verdict is None:
                with self._lock:
                    self.stats.bad_replies += 1
                return JudgeResult(None, "judge_bad_reply")
            with self._lock:
                self.stats.verdicts += 1
            self._cache_put(key, verdict)
            return JudgeResult(verdict, "judge")
        with self._lock:
            self.stats.failures += 1
            self._consecutive_failures += 1
            if self._consecutive_failures >= cfg.fail_threshold:
                self._open_until = time.monotonic() + cfg.cooldown_s
                self._consecutive_failures = 0
                _warn_once(f"zppo judge: {cfg.endpoint} keeps failing ({reason}); pausing it for {cfg.cooldown_s}s")
        return JudgeResult(None, reason)


class _Fatal(_Retryable):
    pass


_clients: dict[JudgeConfig, JudgeClient] = {}
_clients_lock = threading.Lock()


def get_client(config: JudgeConfig) -> JudgeClient:
    with _clients_lock:
        client = _clients.get(config)
        if client is None:
            client = _clients[config] = JudgeClient(config)
        return client


def reset_clients() -> None:
    """Forget every client (caches, circuit breakers); for tests."""
    with _clients_lock:
        _clients.clear()
