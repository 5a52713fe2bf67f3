"""The LLM judge for free-form answers (App. D.1 "LLM-as-a-judge for free-form rewards", App. B.2, Fig. 9).

The paper: the judge is the teacher model (Qwen3.5-27B-FP8) on a sidecar pool, at temperature 0.0, top-p 1.0 and
at most 512 new tokens, prompted with the shared Jinja2 template of Fig. 9, "parsing only a strict JSON
{"verdict": "correct" | "wrong"} from the response (any malformed or out-of-vocabulary verdict is conservatively
scored as 0, i.e. wrong)"; when the final answer is missing (format error, truncation) it looks inside the reasoning.
Which answers reach it is ``routing.py``'s table.

Here the judge is asked through the project's one OpenAI-compatible client (``recipe.zppo.teacher.client``:
openai's timeouts and retries, a pool of ``max_concurrency`` requests), so it runs on the teacher's server (or any
endpoint). Around it: an LRU cache of verdicts, and a circuit breaker (after ``fail_threshold`` failed calls in a
row, calls fail at once for ``cooldown_s``), so that a judge outage scores 0 and is counted (route
"judge_failed") but never holds up a training step for long.

Configuration: keyword arguments of ``compute_score`` (verl's ``reward.custom_reward_function.reward_kwargs``; flat
``judge_<key>`` or nested ``judge: {<key>: ...}``), else the environment variable ``ZPPO_JUDGE_<KEY>``, else:

=============== =================================================================================================
key             meaning (default)
=============== =================================================================================================
url             the server (``http://host:8000``, ``.../v1`` or ``.../v1/chat/completions``); the judge is on iff
                url and model are set (none)
model           the served model name (none; the paper: the teacher, Qwen/Qwen3.5-27B-FP8)
enable          false switches a configured judge off (true)
timeout_s       seconds per HTTP attempt (60; *ours*)
max_retries     attempts after the first, by openai (1; *ours*)
max_concurrency requests in flight per process (8; *ours*; verl runs ``reward.num_workers`` reward processes)
cache_size      verdicts kept per process, keyed by the exact prompt (100000; *ours*)
max_tokens      new tokens (512: App. B.2)
response_chars  tail of a full response shown when it has no boxed answer (32000 characters; *ours*)
thinking        the chat template's thinking mode (false; *ours*: 512 tokens cannot hold a Qwen3.5 reasoning trace
                and the JSON verdict)
fail_threshold  failed calls in a row that open the circuit breaker (3; *ours*)
cooldown_s      how long it stays open (30; *ours*)
api_key_env     NAME of the environment variable with the API key (ZPPO_TEACHER_API_KEY, the teacher's)
=============== =================================================================================================
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field, fields

logger = logging.getLogger(__name__)

# Fig. 9, verbatim (the paper's typographic quotes and bullets kept), as a Jinja2 template as in the paper. The figure
# labels the options section "(rendered only when non-empty)": that label is the figure's note on the template, so
# the section (heading and options) is rendered only for a row with options.
FIG9_TEMPLATE = (
    "You are an expert judge evaluating whether a model’s response is correct according to the ground truth.\n"
    "## Your Role (READ FIRST)\n"
    "You are a COMPARATOR, not a solver. Your ONLY job is to decide how well the model’s response matches the "
    "provided GROUND TRUTH.\n"
    "• Do NOT attempt to solve the problem yourself.\n"
    "• Do NOT infer or derive what the “real” answer should be.\n"
    "• Do NOT second-guess the ground truth, even if it seems wrong.\n"
    "• The “Model Response” section below MAY be either (a) the model’s full trajectory including any "
    "<think>...</think> reasoning and a concluding \\boxed{...} answer, OR (b) a short EXTRACTED snippet that was "
    "already pulled out as the candidate final answer (e.g. a bare letter like B, a number like 42, an expression "
    "like x = 5/3). Treat both forms uniformly: the snippet (when given) IS the model’s committed final answer, and a "
    "full trajectory’s final answer is the content inside the last \\boxed{...} or the concluding sentence AFTER any "
    "</think> tag.\n"
    "• If the final answer is missing due to answer format error, truncation, or other reasons, look inside thinking "
    "or reasoning.\n"
    "• You should OUTPUT JSON with the format {\"verdict\": \"correct\" or \"wrong\"} based on the model’s response "
    "and the ground truth.\n"
    "## Question\n"
    "{{ question }}\n"
    "{% if options %}## Answer Options\n"
    "{{ options }}\n"
    "{% endif %}## Model Response\n"
    "{{ model_response }}\n"
    "## Ground Truth Answer\n"
    "{{ ground_truth }}\n"
    "Output ONLY a valid JSON object with exactly this format (no prose, no code fences, no trailing commentary): "
    "{\"verdict\": \"correct\" or \"wrong\"}"
)
MAX_NEW_TOKENS = 512  # App. B.2: max-new-tokens=512
TEMPERATURE = 0.0  # App. B.2
TOP_P = 1.0  # App. B.2
MAX_QUESTION_CHARS = 16_000  # *ours*: a question longer than this is cut (its head kept)

_template = None
_template_lock = threading.Lock()


def render_prompt(question: str, options: str, model_response: str, ground_truth: str) -> str:
    """The Fig. 9 prompt for one answer (Jinja2; no autoescaping: the values are plain text)."""
    global _template
    with _template_lock:
        if _template is None:
            import jinja2

            environment = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False,
                                             keep_trailing_newline=True)
            _template = environment.from_string(FIG9_TEMPLATE)
    return _template.render(question=question, options=options, model_response=model_response,
                            ground_truth=ground_truth)


def parse_verdict(text) -> bool | None:
    """True for ``{"verdict": "correct"}``, False for ``{"verdict": "wrong"}``, None for anything else.

    Strict as App. B.2: the reply (after a closed reasoning block, which the client joins back as
    ``<think>...</think>``) must be exactly one JSON object with the one key "verdict" and one of the two values;
    prose, code fences, other keys or values, a reasoning block that never closes are all malformed."""
    if not isinstance(text, str):
        return None
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    elif "<think>" in text:
        return None
    try:
        reply = json.loads(text.strip())
    except ValueError:
        return None
    if not isinstance(reply, dict) or list(reply) != ["verdict"]:
        return None
    return {"correct": True, "wrong": False}.get(reply["verdict"]) if isinstance(reply["verdict"], str) else None


# ------------------------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class JudgeConfig:
    url: str
    model: str
    timeout_s: float = 60.0
    max_retries: int = 1
    max_concurrency: int = 8
    cache_size: int = 100_000
    max_tokens: int = MAX_NEW_TOKENS
    response_chars: int = 32_000
    thinking: bool = False
    fail_threshold: int = 3
    cooldown_s: float = 30.0
    api_key_env: str = "ZPPO_TEACHER_API_KEY"


JUDGE_KEYS = tuple(f.name for f in fields(JudgeConfig)) + ("enable",)
_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned and len(_warned) < 100:
        _warned.add(message)
        logger.warning(message)


def _truthy(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() not in ("0", "false", "no", "off", "")
    return bool(value)


def judge_unresolved(kwargs: dict | None = None, environ=None) -> bool:
    """The reward kwarg ``judge_unresolved`` (else ``ZPPO_JUDGE_UNRESOLVED``; default false): answers the rule cannot
    resolve go to the judge for every type (App. B.2's evaluation protocol; ``recipe.zppo.reward``)."""
    environ = os.environ if environ is None else environ
    value = (kwargs or {}).get("judge_unresolved")
    if value is None:
        value = environ.get("ZPPO_JUDGE_UNRESOLVED", "")
    return _truthy(value)


def judge_config_from(kwargs: dict | None = None, environ=None) -> JudgeConfig | None:
    """The judge configuration from compute_score's kwargs and the environment; None when the judge is off."""
    kwargs = dict(kwargs or {})
    environ = os.environ if environ is None else environ
    nested = kwargs.get("judge")
    if hasattr(nested, "items"):  # a dict or an OmegaConf DictConfig
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
            _warn_once("zppo judge: both judge_url and judge_model are needed; the judge stays off")
        return None
    values = {}
    for f in fields(JudgeConfig):
        if f.name in ("url", "model"):
            continue
        raw = get(f.name)
        if raw is None:
            continue
        try:
            values[f.name] = _truthy(raw) if f.type in ("bool", bool) else type(f.default)(raw)
        except (TypeError, ValueError):
            _warn_once(f"zppo judge: bad value {raw!r} for {f.name}; using {f.default!r}")
    config = JudgeConfig(url=str(url), model=str(model), **values)
    minimums = {"timeout_s": 0.05, "max_retries": 0, "max_concurrency": 1, "cache_size": 0, "max_tokens": 1,
                "response_chars": 200, "fail_threshold": 1, "cooldown_s": 0.0}
    fixed = {key: max(getattr(config, key), low) for key, low in minimums.items()}
    return JudgeConfig(**{**config.__dict__, **fixed})


# ------------------------------------------------------------------------------------------------ the judge
@dataclass(frozen=True)
class JudgeResult:
    """``outcome``: "verdict" (the judge said correct/wrong), "cached" (the same prompt was judged before),
    "malformed" (it answered, not in the strict format: scored 0, App. B.2), "failed" (no answer: timeout,
    connection, HTTP error, busy, circuit open; scored 0). ``correct`` is False unless the judge said correct."""

    correct: bool
    outcome: str
    reason: str
    value: float = 0.0  # the parsed score: 1.0 / 0.0 for a verdict, a graded judge's number (MM-Vet) in [0, 1]


@dataclass
class JudgeStats:
    requests: int = 0  # calls sent to the server (openai's retries inside one call not counted)
    verdicts: int = 0
    malformed: int = 0
    failures: int = 0
    cache_hits: int = 0
    circuit_rejections: int = 0
    failure_reasons: dict = field(default_factory=dict)


def _failure_reason(error: str | None) -> str:
    """The client's one-line error (``TeacherClient._describe``) as a short reason."""
    error = error or ""
    if error.startswith("timed out"):
        return "judge_timeout"
    if error.startswith("connection failed"):
        return "judge_connection_error"
    if error.startswith("HTTP "):
        return "judge_http_" + error[5:8]
    if error.startswith("malformed reply"):
        return "judge_bad_reply"
    return "judge_error"


class Judge:
    """One endpoint: the teacher client, the cache, the circuit breaker and the counters (per process)."""

    def __init__(self, config: JudgeConfig):
        from recipe.zppo.teacher.client import TeacherClient, TeacherClientConfig

        self.config = config
        self.client = TeacherClient(config.url, config.model, TeacherClientConfig(
            timeout_s=float(config.timeout_s), max_retries=int(config.max_retries),
            max_concurrency=int(config.max_concurrency), api_key_env=config.api_key_env, send_images=False))
        self._cache: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()
        self._failures_in_a_row = 0
        self._open_until = 0.0
        self.stats = JudgeStats()
        # A caller waits for its request (queue included) at most this long: every attempt's timeout, openai's
        # backoff between attempts (at most 8 s each), and one request's worth of queueing.
        self.wait_s = (config.max_retries + 1) * (config.timeout_s + 8.0) + config.timeout_s

    def _count(self, name: str, reason: str | None = None) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)
            if reason:
                self.stats.failure_reasons[reason] = self.stats.failure_reasons.get(reason, 0) + 1

    def judge(self, question: str, options: str, response: str, ground_truth: str) -> JudgeResult:
        """Ask the Fig. 9 question for one answer. Never raises; returns within about ``wait_s``."""
        cfg = self.config
        prompt = render_prompt((question or "")[:MAX_QUESTION_CHARS], options or "",
                               (response or "")[-cfg.response_chars:], ground_truth)
        return self.ask(prompt, parse_verdict)

    def ask(self, prompt: str, parse) -> JudgeResult:
        """Send one rendered judge prompt (Fig. 9, or a benchmark's official prompt, ``bench_judges.py``) and read the
        reply with ``parse`` (text -> bool, or a float in [0, 1] for graded judges such as MM-Vet's; None when
        malformed). ``JudgeResult.value`` carries that number. Never raises; returns within about ``wait_s``."""
        cfg = self.config
        key = hashlib.sha256(json.dumps([cfg.model, cfg.thinking, cfg.max_tokens, prompt]).encode()).hexdigest()
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                self.stats.cache_hits += 1
                value = float(self._cache[key])
                return JudgeResult(value >= 1.0, "cached", "judge_cached", value)
            if time.monotonic() < self._open_until:
                self.stats.circuit_rejections += 1
                return JudgeResult(False, "failed", "judge_circuit_open")
        self._count("requests")
        future = self.client.submit([{"role": "user", "content": prompt}], max_tokens=cfg.max_tokens,
                                    temperature=TEMPERATURE, top_p=TOP_P, thinking=cfg.thinking)
        try:
            reply = future.result(timeout=self.wait_s)
        except Exception:  # still queued or running after the wait: given up (it ends by its own timeout)
            future.cancel()
            reply, reason = None, "judge_busy"
        else:
            reason = None if reply.completion is not None else _failure_reason(reply.error)
        if reason is not None:
            return self._failed(reason)
        with self._lock:
            self._failures_in_a_row = 0
        verdict = parse(reply.completion.text)
        if verdict is None:
            self._count("malformed")
            return JudgeResult(False, "malformed", "judge_malformed")
        self._count("verdicts")
        value = float(verdict)
        if cfg.cache_size > 0:
            with self._lock:
                self._cache[key] = value
                while len(self._cache) > cfg.cache_size:
                    self._cache.popitem(last=False)
        return JudgeResult(value >= 1.0, "verdict", "judge", value)

    def _failed(self, reason: str) -> JudgeResult:
        self._count("failures", reason)
        cfg = self.config
        with self._lock:
            self._failures_in_a_row += 1
            if self._failures_in_a_row >= cfg.fail_threshold:
                self._open_until = time.monotonic() + cfg.cooldown_s
                self._failures_in_a_row = 0
                opened = True
            else:
                opened = False
        if opened:
            _warn_once(f"zppo judge: {self.client.base_url} keeps failing ({reason}); answers that need it score 0 "
                       f"for {cfg.cooldown_s:g} s at a time (route judge_failed)")
        return JudgeResult(False, "failed", reason)

    def close(self) -> None:
        self.client.close()


_judges: dict[JudgeConfig, Judge] = {}
_judges_lock = threading.Lock()


def get_judge(config: JudgeConfig) -> Judge:
    with _judges_lock:
        judge = _judges.get(config)
        if judge is None:
            judge = _judges[config] = Judge(config)
        return judge


def judge_stats() -> dict[str, float]:
    """This process's judge counters, summed over its endpoints (cumulative)."""
    out: dict[str, float] = {}
    with _judges_lock:
        judges = list(_judges.values())
    for judge in judges:
        for name in ("requests", "verdicts", "malformed", "failures", "cache_hits", "circuit_rejections"):
            out[name] = out.get(name, 0.0) + getattr(judge.stats, name)
    return out


def reset_clients() -> None:
    """Forget every judge (clients, caches, circuit breakers, counters); for tests."""
    with _judges_lock:
        judges = list(_judges.values())
        _judges.clear()
    for judge in judges:
        judge.close()
