"""Online teacher: a client of an OpenAI-compatible chat-completions endpoint (no Ray, no verl, standard library only).

The trainer asks it for teacher responses to hard questions that have no stored CORRECT teacher response; it
scores the returned texts itself with the project's reward. This module only fetches.

Server: ``vllm serve TEACHER`` on GPUs, ``python -m recipe.zppo.teacher_server --model TINY`` on CPU. ``url`` may
be the server root (``http://host:8000``), its ``/v1`` base, or the full ``.../v1/chat/completions`` address.

What is sent. One POST per question: ``{"model", "messages", "n": num_responses, "max_tokens", "temperature"}``.
The messages are the student's, as it saw them (system turn, question, answer-format closer); only ``role``,
``content`` and ``name`` of each turn are sent. If the server rejects ``n > 1`` (HTTP 400/422) and a
single-response request then succeeds, the client remembers it and asks for the ``n`` responses one by one from
then on; a server that returns fewer choices than asked is topped up the same way.

Images. A request may carry the row's ``images`` (verl's RL parquet: ``{"bytes": PNG}`` dicts; raw bytes and PIL
images work too). Each ``<image>`` placeholder in a text turn, and each ``{"type": "image"}`` part of a list
turn, takes the next image, which is sent as an OpenAI ``image_url`` part holding a ``data:`` URL (PNG, JPEG, GIF
and WEBP are recognised from their magic bytes; ``image_url`` parts and ``data:``/``http(s):`` strings are sent
as they are). With ``send_images=False`` (for a text-only teacher), or for an image that cannot be encoded, the
image is dropped and the text ``[image omitted]`` stands in its place; ``<video>`` is always dropped that way
(``[video omitted]``). Counters ``images_sent`` / ``images_dropped`` say what happened. A turn left with text
only is sent as a plain string.

Reasoning. vLLM's reasoning parsers return the thinking apart, in ``message.reasoning_content`` (``reasoning``
in newer vLLM); it is joined back as ``<think>{reasoning}</think>{content}`` so every text is in the project's
answer format. Without a parser the content already holds the think block and is returned as is.

Failures never raise and never hang. Every question has a budget of ``timeout_s * (max_retries + 1) + 1`` seconds
from the moment a worker picks it up, covering every HTTP attempt, backoff sleep and single-response fallback;
each attempt's socket timeout is ``min(timeout_s, what is left)`` and the body is read in chunks against the same
deadline. Attempts that fail fast (connection refused or reset, HTTP 5xx/408/429, a malformed body) are
retried after an exponential backoff (0.25 s, 0.5 s, 1 s, ... capped at 2 s; a numeric ``Retry-After`` up to 2 s
is honoured) that never outlasts the budget; a timed-out attempt is retried at once (it already waited); any
other 4xx is final (the same request would fail again). A question that ends without a text gives
``TeacherResult(texts=[], error=...)``. ``responses`` itself waits at most
``ceil(questions / max_concurrency) * budget + 2`` seconds: a worker stuck past that (a server trickling header
bytes) is reported as an error and left behind.

Caching. Successful results are kept in an LRU keyed by question id (``cache_size`` entries, 0 disables it): a
question answered once is never asked again; errors are not cached, so a failed question is asked again the
next time. A result with fewer texts than asked (the fallback ran out of budget) is a success: it is cached and
counted in ``partial``. Ids repeated in one call are asked once. Two concurrent ``responses`` calls do not
share in-flight requests (the trainer calls from one thread). ``state_dict``/``load_state_dict`` let a
checkpoint carry the cache.
"""

from __future__ import annotations

import base64
import http.client
import io
import json
import math
import os
import random
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, fields
from typing import Any

CONFIG_PREFIX = "zppo.teacher.online"
IMAGE_OMITTED = "[image omitted]"
VIDEO_OMITTED = "[video omitted]"

BACKOFF_BASE_S = 0.25
BACKOFF_CAP_S = 2.0
BUDGET_SLACK_S = 1.0  # added to timeout_s * (max_retries + 1) per question
CALL_SLACK_S = 2.0  # added to the wait of a whole responses() call
MAX_BODY_BYTES = 64 * 1024 * 1024
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})  # and every other 5xx
N_REJECTED_STATUS = frozenset({400, 422})

_PLACEHOLDER = re.compile(r"<image>|<video>")


class TeacherConfigError(ValueError):
    """A bad ``zppo.teacher.online`` value; the message starts with the full key."""


# ------------------------------------------------------------------------------------------------------- config


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class OnlineTeacherConfig:
    """``zppo.teacher.online``: where the teacher is served and how it is asked.

    url: server root, ``/v1`` base or full chat-completions address (http or https).
    model: the served model name (vLLM: ``--served-model-name``, else the path it was started with).
    api_key_env: name of an environment variable holding a bearer token (None: no Authorization header).
    num_responses: teacher responses asked per question (the OpenAI ``n``).
    max_tokens, temperature: sampling of each response.
    timeout_s: socket timeout of one HTTP attempt; max_retries: attempts after the first.
    max_concurrency: questions in flight at once; cache_size: questions kept in the LRU (0: no cache).
    send_images: send images as data URLs (False: a text-only teacher; images become "[image omitted]").
    enable: whether the trainer uses the online teacher at all (url and model may be empty when False).
    """

    url: str = ""
    model: str = ""
    api_key_env: str | None = None
    num_responses: int = 2
    max_tokens: int = 1024
    temperature: float = 1.0
    timeout_s: float = 60
    max_retries: int = 2
    max_concurrency: int = 8
    cache_size: int = 100_000
    send_images: bool = True
    enable: bool = False

    def __post_init__(self):
        _validate(self)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any] | None) -> OnlineTeacherConfig:
        """Build from a plain mapping (or an OmegaConf DictConfig); errors name ``zppo.teacher.online.<key>``."""
        if d is None:
            d = {}
        if not isinstance(d, Mapping):
            raise TeacherConfigError(f"{CONFIG_PREFIX}: expected a mapping of keys, got {type(d).__name__}")
        known = {f.name for f in fields(cls)}
        values = {}
        for key, value in d.items():
            if key not in known:
                raise TeacherConfigError(
                    f"{CONFIG_PREFIX}.{key}: unknown key; known keys: {', '.join(sorted(known))}"
                )
            values[key] = value
        enable = values.get("enable", False)
        for key in ("url", "model"):
            if values.get(key) is None:
                if enable is True:
                    raise TeacherConfigError(f"{CONFIG_PREFIX}.{key} is not set (required when enable=true)")
                values[key] = ""
        return cls(**values)


def _validate(cfg: OnlineTeacherConfig) -> None:
    def fail(key, expected, value):
        raise TeacherConfigError(f"{CONFIG_PREFIX}.{key}: expected {expected}, got {value!r}")

    def is_int(v):
        return isinstance(v, int) and not isinstance(v, bool)

    def is_num(v):
        return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)

    if not isinstance(cfg.enable, bool):
        fail("enable", "true or false", cfg.enable)
    for key in ("url", "model"):
        value = getattr(cfg, key)
        if not isinstance(value, str):
            fail(key, "a string", value)
        if cfg.enable and not value.strip():
            raise TeacherConfigError(f"{CONFIG_PREFIX}.{key} is empty (required when enable=true)")
    if cfg.url and not re.match(r"^https?://[^/\s]+", cfg.url):
        fail("url", "an http:// or https:// address", cfg.url)
    if cfg.api_key_env is not None and (not isinstance(cfg.api_key_env, str) or not cfg.api_key_env.strip()):
        fail("api_key_env", "null or the name of an environment variable", cfg.api_key_env)
    for key, low in (("num_responses", 1), ("max_tokens", 1), ("max_retries", 0), ("max_concurrency", 1),
                     ("cache_size", 0)):
        value = getattr(cfg, key)
        if not is_int(value) or value < low:
            fail(key, f"an integer >= {low}", value)
    if not is_num(cfg.temperature) or cfg.temperature < 0:
        fail("temperature", "a number >= 0", cfg.temperature)
    if not is_num(cfg.timeout_s) or cfg.timeout_s <= 0:
        fail("timeout_s", "a number of seconds > 0", cfg.timeout_s)
    if not isinstance(cfg.send_images, bool):
        fail("send_images", "true or false", cfg.send_images)


# --------------------------------------------------------------------------------------------- requests/results


@dataclass
class TeacherRequest:
    """One question. ``messages``: chat turns as the student saw them (content a string, possibly with
    ``<image>`` placeholders, or a list of OpenAI-style parts). ``images``: the row's images, in placeholder order."""

    question_id: str
    messages: list[dict]
    images: Sequence[Any] = ()


@dataclass
class TeacherResult:
    """``texts``: the teacher's responses (``<think>...</think>answer``), [] on failure; ``error``: why, else None.
    ``cached``: served from the cache without a request."""

    question_id: str
    texts: list[str] = field(default_factory=list)
    error: str | None = None
    cached: bool = False


# ------------------------------------------------------------------------------------------------------ images


def _mime_of(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def image_to_url(image: Any) -> str | None:
    """A ``data:`` (or http) URL for an image given as bytes, a ``{"bytes"|"path"|"image"|"url"}`` dict, a path,
    a URL string or a PIL image; None when it cannot be encoded."""
    try:
        if isinstance(image, Mapping):
            for key in ("bytes", "image", "url", "image_url", "path"):
                value = image.get(key)
                if isinstance(value, Mapping):  # {"image_url": {"url": ...}}
                    value = value.get("url")
                if value is not None:
                    return image_to_url(value)
            return None
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        elif isinstance(image, str):
            if image.startswith(("data:image/", "http://", "https://")):
                return image
            path = image[len("file://"):] if image.startswith("file://") else image
            if not os.path.isfile(path):
                return None
            with open(path, "rb") as handle:
                data = handle.read()
        elif hasattr(image, "save") and hasattr(image, "mode"):  # a PIL image, without importing PIL
            buffer = io.BytesIO()
            image.save(buffer, format="PNG")
            data = buffer.getvalue()
        else:
            return None
    except Exception:  # an unreadable file or an image PIL cannot save: dropped, never fatal
        return None
    mime = _mime_of(data)
    if mime is None:
        return None
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"


def to_openai_messages(messages: Sequence[Mapping], images: Sequence[Any] = (), *, send_images: bool = True
                       ) -> tuple[list[dict], int, int]:
    """The student's turns as OpenAI chat messages; returns (messages, images sent, images dropped)."""
    pending = list(images) if images is not None else []
    sent = dropped = 0

    def image_part(explicit: Any = None) -> dict:
        nonlocal sent, dropped
        source = explicit if explicit is not None else (pending.pop(0) if pending else None)
        url = image_to_url(source) if (send_images and source is not None) else None
        if url is None:
            dropped += 1
            return {"type": "text", "text": IMAGE_OMITTED}
        sent += 1
        return {"type": "image_url", "image_url": {"url": url}}

    out = []
    for message in messages:
        content = message.get("content")
        parts: list[dict] = []
        if isinstance(content, str):
            pos = 0
            for match in _PLACEHOLDER.finditer(content):
                if match.start() > pos:
                    parts.append({"type": "text", "text": content[pos:match.start()]})
                if match.group() == "<image>":
                    parts.append(image_part())
                else:
                    dropped += 1
                    parts.append({"type": "text", "text": VIDEO_OMITTED})
                pos = match.end()
            if pos < len(content):
                parts.append({"type": "text", "text": content[pos:]})
        elif content is not None and not isinstance(content, (bytes, Mapping)) and hasattr(content, "__iter__"):
            for part in content:  # a list of parts (or a NumPy array of them, from a parquet row)
                if isinstance(part, str):
                    parts.append({"type": "text", "text": part})
                    continue
                kind = part.get("type") if isinstance(part, Mapping) else None
                if kind == "text" or (kind is None and isinstance(part, Mapping) and "text" in part):
                    parts.append({"type": "text", "text": str(part.get("text", ""))})
                elif kind == "image_url" and send_images:
                    sent += 1
                    parts.append(dict(part))
                elif kind in ("image", "image_url") or (isinstance(part, Mapping) and "image" in part):
                    explicit = part.get("image") if kind != "image_url" else part.get("image_url")
                    parts.append(image_part(explicit))  # no data in the part: the next of ``images``
                else:  # video and anything else: dropped, said in the text
                    dropped += 1
                    parts.append({"type": "text", "text": VIDEO_OMITTED if "video" in str(kind) else IMAGE_OMITTED})
        elif content is not None:
            parts.append({"type": "text", "text": str(content)})
        new = {"role": str(message.get("role", "user"))}
        if isinstance(message.get("name"), str):
            new["name"] = message["name"]
        if all(p["type"] == "text" for p in parts):
            new["content"] = "".join(p["text"] for p in parts)
        else:
            merged: list[dict] = []  # adjacent text parts joined
            for p in parts:
                if p["type"] == "text" and merged and merged[-1]["type"] == "text":
                    merged[-1] = {"type": "text", "text": merged[-1]["text"] + p["text"]}
                else:
                    merged.append(p)
            new["content"] = merged
        out.append(new)
    dropped += len(pending)  # images with no placeholder to go to
    return out, sent, dropped


def join_reasoning(message: Mapping) -> str:
    """``<think>{reasoning}</think>{content}`` when the server split the thinking out, else the content."""
    content = message.get("content") or ""
    if not isinstance(content, str):  # a list of parts (unusual in a reply)
        content = "".join(p.get("text", "") for p in content if isinstance(p, Mapping))
    reasoning = message.get("reasoning_content")
    if reasoning is None:
        reasoning = message.get("reasoning")
    if isinstance(reasoning, str) and reasoning and not content.lstrip().startswith("<think>"):
        return f"<think>{reasoning}</think>{content}"
    return content


# ------------------------------------------------------------------------------------------------------ client


class _HTTPStatus(Exception):
    def __init__(self, status: int, message: str, retry_after: float | None = None):
        super().__init__(f"HTTP {status}: {message}")
        self.status = status
        self.retry_after = retry_after


class _BadReply(Exception):
    pass


@dataclass
class _Outcome:
    texts: list[str] | None  # None: failed
    error: str | None = None
    status: int | None = None  # the final HTTP status of a non-retryable failure


def chat_completions_url(url: str) -> str:
    base = url.rstrip("/")
    if base.endswith("/chat/completions"):
        return base
    if base.endswith("/v1"):
        return base + "/chat/completions"
    return base + "/v1/chat/completions"


class OnlineTeacher:
    """Fetches teacher responses from an OpenAI-compatible server; see the module docstring for the contract."""

    def __init__(self, config: OnlineTeacherConfig):
        if not isinstance(config, OnlineTeacherConfig):
            config = OnlineTeacherConfig.from_dict(config)
        if not config.url or not config.model:
            raise TeacherConfigError(f"{CONFIG_PREFIX}.url and .model must be set to use the online teacher")
        self.config = config
        self.endpoint = chat_completions_url(config.url)
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if config.api_key_env is not None:
            key = os.environ.get(config.api_key_env)
            if not key:
                raise TeacherConfigError(
                    f"{CONFIG_PREFIX}.api_key_env: environment variable {config.api_key_env} is not set or empty"
                )
            self._headers["Authorization"] = f"Bearer {key}"
        self.question_budget_s = config.timeout_s * (config.max_retries + 1) + BUDGET_SLACK_S
        self._lock = threading.Lock()
        self._cache: OrderedDict[str, list[str]] = OrderedDict()
        self._n_supported: bool | None = None if config.num_responses > 1 else True
        self._counters = dict.fromkeys(
            ("questions", "requests", "cache_hits", "failures", "timeouts", "retries", "n_fallbacks", "partial",
             "images_sent", "images_dropped"), 0)

    # ---- public

    def responses(self, requests: Sequence[TeacherRequest]) -> list[TeacherResult]:
        """One result per request, in order. Never raises for server trouble; see the module docstring."""
        results: dict[str, TeacherResult] = {}
        todo: dict[str, TeacherRequest] = {}
        for req in requests:
            qid = str(req.question_id)
            if qid in results or qid in todo:
                continue
            texts = self._cache_get(qid)
            if texts is not None:
                self._count("cache_hits")
                results[qid] = TeacherResult(qid, list(texts), None, cached=True)
            else:
                todo[qid] = req
        if todo:
            results.update(self._fetch_all(todo))
        return [self._copy(results[str(req.question_id)]) for req in requests]

    def stats(self) -> dict[str, int]:
        """Counters since construction: questions (asked of the server), requests (HTTP attempts, retries and
        single-response fallbacks included), cache_hits, failures (questions ending without a text), timeouts
        (HTTP attempts), retries, n_fallbacks, partial, images_sent, images_dropped; cache_entries now."""
        with self._lock:
            out = dict(self._counters)
            out["cache_entries"] = len(self._cache)
        return out

    def state_dict(self) -> dict:
        with self._lock:
            return {"cache": [[qid, list(texts)] for qid, texts in self._cache.items()],
                    "n_supported": self._n_supported}

    def load_state_dict(self, state: Mapping) -> None:
        with self._lock:
            self._cache.clear()
            for qid, texts in state.get("cache", []):
                self._cache[str(qid)] = list(texts)
            while self.config.cache_size and len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)
            if not self.config.cache_size:
                self._cache.clear()
            self._n_supported = state.get("n_supported", self._n_supported)

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # ---- internals

    @staticmethod
    def _copy(result: TeacherResult) -> TeacherResult:
        return TeacherResult(result.question_id, list(result.texts), result.error, result.cached)

    def _count(self, key: str, by: int = 1) -> None:
        with self._lock:
            self._counters[key] += by

    def _cache_get(self, qid: str) -> list[str] | None:
        with self._lock:
            texts = self._cache.get(qid)
            if texts is not None:
                self._cache.move_to_end(qid)
            return texts

    def _cache_put(self, qid: str, texts: list[str]) -> None:
        if not self.config.cache_size:
            return
        with self._lock:
            self._cache[qid] = list(texts)
            self._cache.move_to_end(qid)
            while len(self._cache) > self.config.cache_size:
                self._cache.popitem(last=False)

    def _fetch_all(self, todo: dict[str, TeacherRequest]) -> dict[str, TeacherResult]:
        workers = min(self.config.max_concurrency, len(todo))
        waves = math.ceil(len(todo) / workers)
        deadline = time.monotonic() + waves * self.question_budget_s + CALL_SLACK_S
        pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="zppo-teacher")
        futures = {pool.submit(self._fetch_one, req): qid for qid, req in todo.items()}
        results: dict[str, TeacherResult] = {}
        pending = set(futures)
        try:
            while pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                done, pending = wait(pending, timeout=left, return_when=FIRST_COMPLETED)
                for fut in done:
                    qid = futures[fut]
                    try:
                        results[qid] = fut.result()
                    except Exception as error:  # a bug in this module must not stop training
                        self._count("failures")
                        results[qid] = TeacherResult(qid, [], f"teacher client error: {error!r}")
        finally:
            pool.shutdown(wait=False, cancel_futures=True)
        for fut in pending:
            qid = futures[fut]
            self._count("failures")
            self._count("timeouts")
            results[qid] = TeacherResult(qid, [], f"no answer within the client deadline of "
                                                  f"{waves * self.question_budget_s + CALL_SLACK_S:.1f} s")
        return results

    def _fetch_one(self, req: TeacherRequest) -> TeacherResult:
        qid = str(req.question_id)
        self._count("questions")
        deadline = time.monotonic() + self.question_budget_s
        messages, sent, dropped = to_openai_messages(req.messages, req.images, send_images=self.config.send_images)
        self._count("images_sent", sent)
        self._count("images_dropped", dropped)
        n = self.config.num_responses
        texts: list[str] = []
        error: str | None = None
        if n > 1 and self._n_supported is not False:
            outcome = self._post(messages, n, deadline)
            if outcome.texts is not None:
                texts.extend(outcome.texts[:n])
                self._n_supported = True if len(outcome.texts) >= n else self._n_supported
            elif outcome.status in N_REJECTED_STATUS:
                error = outcome.error  # maybe n>1 is refused: try single responses below
            else:
                self._count("failures")
                return TeacherResult(qid, [], outcome.error)
        single = False
        while len(texts) < n:
            outcome = self._post(messages, 1, deadline)
            if not outcome.texts:
                error = outcome.error or "the server returned no choices"
                break
            if error is not None and not texts and self._n_supported is None:
                self._n_supported = False  # n>1 was refused, n=1 works: ask one by one from now on
            single = True
            texts.extend(outcome.texts[: n - len(texts)])
        if single and n > 1:
            self._count("n_fallbacks")
        if not texts:
            self._count("failures")
            return TeacherResult(qid, [], error)
        if len(texts) < n:
            self._count("partial")
        self._cache_put(qid, texts)
        return TeacherResult(qid, texts, None)

    def _post(self, messages: list[dict], n: int, deadline: float) -> _Outcome:
        """One logical request with retries and backoff inside ``deadline``."""
        cfg = self.config
        body = json.dumps({"model": cfg.model, "messages": messages, "n": n, "max_tokens": cfg.max_tokens,
                           "temperature": cfg.temperature}).encode("utf-8")
        last = "not attempted"
        attempts = 0
        for attempt in range(cfg.max_retries + 1):
            left = deadline - time.monotonic()
            if left <= 0.05:
                last = f"{last}; question budget of {self.question_budget_s:.1f} s used up"
                break
            if attempt:
                self._count("retries")
            attempts += 1
            self._count("requests")
            backoff: float | None = min(BACKOFF_CAP_S, BACKOFF_BASE_S * 2 ** attempt)
            timeout = min(cfg.timeout_s, left)
            try:
                return _Outcome(self._post_once(body, timeout, deadline))
            except _HTTPStatus as error:
                last = str(error)
                if not (error.status in RETRYABLE_STATUS or 500 <= error.status < 600):
                    return _Outcome(None, f"{last} (not retried)", error.status)
                if error.retry_after is not None:
                    backoff = min(BACKOFF_CAP_S, max(backoff, error.retry_after))
            except TimeoutError as error:
                self._count("timeouts")
                detail = str(error)
                last = f"timed out after {timeout:.1f} s" + (f" ({detail})" if detail not in ("", "timed out") else "")
                backoff = None  # it already waited its full timeout
            except _BadReply as error:
                last = f"malformed reply: {error}"
            except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as error:
                reason = getattr(error, "reason", error)
                if isinstance(reason, (TimeoutError, socket.timeout)):
                    self._count("timeouts")
                    last = f"timed out connecting after {timeout:.1f} s"
                    backoff = None
                else:
                    last = f"connection failed: {reason!r}"
            if backoff and attempt < cfg.max_retries:
                sleep = backoff * (1 + 0.25 * random.random())
                time.sleep(max(0.0, min(sleep, deadline - time.monotonic() - 0.05)))
        return _Outcome(None, f"{last} (after {attempts} attempt{'s' if attempts != 1 else ''} to {self.endpoint})")

    def _post_once(self, body: bytes, timeout: float, deadline: float) -> list[str]:
        request = urllib.request.Request(self.endpoint, data=body, headers=self._headers, method="POST")
        attempt_deadline = min(deadline, time.monotonic() + timeout)
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = _read_until(response, attempt_deadline)
        except urllib.error.HTTPError as error:
            try:
                detail = _read_until(error, attempt_deadline, limit=64 * 1024).decode("utf-8", "replace")
                message = json.loads(detail).get("error", {}).get("message") or detail
            except Exception:
                message = error.reason
            retry_after = None
            try:
                retry_after = float(error.headers.get("Retry-After")) if error.headers else None
            except (TypeError, ValueError):
                pass
            raise _HTTPStatus(error.code, str(message)[:500], retry_after) from None
        try:
            payload = json.loads(raw)
            choices = sorted(payload["choices"], key=lambda c: c.get("index", 0))
            return [join_reasoning(choice["message"]) for choice in choices]
        except (ValueError, KeyError, TypeError, AttributeError) as error:
            raise _BadReply(f"{type(error).__name__}: {error}; body starts {raw[:200]!r}") from None


def _read_until(response, deadline: float, limit: int = MAX_BODY_BYTES) -> bytes:
    """Read a body in chunks, raising TimeoutError past ``deadline`` (a server trickling bytes)."""
    chunks, size = [], 0
    read = getattr(response, "read1", None) or response.read
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("reply body not finished within the timeout")
        sock = getattr(getattr(getattr(response, "fp", None), "raw", None), "_sock", None)
        if sock is not None:
            sock.settimeout(max(0.01, left))
        chunk = read(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise _BadReply(f"reply body larger than {limit} bytes")
