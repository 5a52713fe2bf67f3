"""ZPPO's reward as the paper grades (Tab. 8 "Reward", App. D.1, App. B.2, Fig. 9): binary, mathruler's boxed
grader, the LLM judge for free-form answers, every grading bounded in time.

verl wiring (0.9.1)::

    reward.custom_reward_function.path=pkg://recipe.zppo.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.judge_url=http://teacher-host:8000/v1      # the judge (optional)
    +reward.custom_reward_function.reward_kwargs.judge_model=Qwen/Qwen3.5-27B-FP8

verl (``verl.trainer.ppo.reward.get_custom_reward_fn``) imports the function and merges ``reward_kwargs`` into
every call; its reward manager calls it from executor threads as ``compute_score(data_source=...,
solution_str=..., ground_truth=..., extra_info=...)`` and puts every key of the returned dict into
``reward_extra_info`` (``score`` is the reward).

One answer, in order:

1. the row's route (``routing.py``: which reward types the grader decides alone, which go to the judge on a miss,
   which cannot be scored);
2. the grader (``grader.py``, App. D.1): mathruler's ``extract_boxed_content`` takes the LAST ``\\boxed{...}`` of
   the whole response (an unclosed last box is no box), ``grade_answer`` compares it with each gold answer, then the
   degree/percent strip and ``grade_answer`` once more; *ours*: choice letters, the row's tolerance, number lists.
   No box scores 0 (route "unparseable"): the paper's lenient extractors are not used (see docs/rewards.md);
3. the judge (``judge.py``, Fig. 9) for a free-form row the grader did not find correct, also when there is no box
   (then it is shown the whole response and looks inside the reasoning). With ``judge_unresolved=True`` (a reward
   kwarg, off by default; *ours*: App. B.2's evaluation protocol, "the shared LLM-as-judge only after deterministic
   parsing fails", "the look-inside-reasoning fallback used when a strict \\boxed{} cannot be parsed") what the rule
   cannot resolve goes to the judge for EVERY type: a response without a box, and a multiple-choice box that names
   no option letter (option text). Training (App. D.1: "the reward is 1 iff either pass succeeds") leaves it off.

Time: everything that may reach sympy runs in worker processes (``sandbox.py``) under one deadline per call, so
the grader part of a call ends within ``GRADER_BUDGET_S`` (4.5 s) whatever the response; a judge call is bounded by
its own timeout and retries (``judge.py``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict

from recipe.zppo.reward import sandbox
from recipe.zppo.reward.grader import MAX_BOX_CHARS, boxed_answer, choice_letter, quick_grade
from recipe.zppo.reward.judge import get_judge, judge_config_from, judge_unresolved
from recipe.zppo.reward.metrics import ROUTES, route_shares
from recipe.zppo.reward.routing import ROUTING, gold_answers, options_text, resolve_reward_type, tolerance_of

__all__ = ["compute_score", "grade_bounded", "route_shares", "verdict_cache", "ROUTES", "RESULT_KEYS", "MAX_PRED_CHARS",
           "GRADER_BUDGET_S"]

logger = logging.getLogger(__name__)

(ROUTE_GRADER, ROUTE_GRADER_FAILED, ROUTE_UNPARSEABLE, ROUTE_JUDGE, ROUTE_JUDGE_CACHED, ROUTE_JUDGE_FAILED,
 ROUTE_UNSUPPORTED) = ROUTES
RESULT_KEYS = ("score", "acc", "route", "reason", "pred", "reward_type")
MAX_PRED_CHARS = 512  # the pred kept in the result (and in verl's batch / dumps)
GRADER_BUDGET_S = 4.5  # the grader part of one call ends by then (the project's bound: a call within 5 s)
GRADE_LIMIT_S = 2.0  # *ours*: a worker's own timer stops one grading after this (sympy grinding in Python)
VERDICT_CACHE_SIZE = 100_000  # *ours*: grader verdicts kept per process

_warned: set[str] = set()


def _warn_once(message: str, exc_info: bool = False) -> None:
    if message not in _warned:
        _warned.add(message)
        logger.warning(message, exc_info=exc_info)


def _result(correct: bool, route: str, reason: str, pred: str, reward_type: str, route_metrics: bool) -> dict:
    acc = 1.0 if correct else 0.0
    out = {"score": acc, "acc": acc, "route": route, "reason": reason, "pred": (pred or "")[:MAX_PRED_CHARS],
           "reward_type": reward_type}
    if route_metrics:
        for name in ROUTES:
            out[f"route_{name}"] = 1.0 if route == name else 0.0
    return out


class _VerdictCache:
    """The grader's verdicts by (answer, golds, mode, tolerance), LRU (*ours*): ``grade`` is a pure function, and the
    8 rollouts of a question often box the same (right or wrong) answer, which then costs one worker call."""

    def __init__(self, size: int):
        self.size = size
        self._entries: OrderedDict[tuple, tuple[bool, str]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    def get(self, key: tuple) -> tuple[bool, str] | None:
        with self._lock:
            verdict = self._entries.get(key)
            if verdict is not None:
                self._entries.move_to_end(key)
                self.hits += 1
            return verdict

    def put(self, key: tuple, verdict: tuple[bool, str]) -> None:
        with self._lock:
            self._entries[key] = verdict
            if len(self._entries) > self.size:
                self._entries.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self.hits = 0


verdict_cache = _VerdictCache(VERDICT_CACHE_SIZE)


def grade_bounded(given: str, golds: list[str], mode: str = "plain", tolerance: float | None = None,
                  deadline: float | None = None) -> tuple[bool | None, str]:
    """``grader.grade`` by ``deadline`` (time.monotonic(); default now + GRADER_BUDGET_S): (correct, how), or
    (None, why) when it could not be decided in time (grader_timeout, grader_busy, grader_unavailable, grader_error).
    What string operations decide is decided here; a verdict graded before comes from the cache; the rest goes to a
    worker process."""
    quick = quick_grade(given, golds, mode, tolerance)
    if quick is not None:
        return quick
    key = (given, tuple(golds), mode, tolerance)
    cached = verdict_cache.get(key)
    if cached is not None:
        return cached
    deadline = time.monotonic() + GRADER_BUDGET_S if deadline is None else deadline
    args = {"given": given, "golds": list(golds), "mode": mode, "tolerance": tolerance}
    correct, how = sandbox.pool().run(args, deadline, GRADE_LIMIT_S)
    if correct is not None:  # timeouts are not cached: a busy moment must not fix a verdict
        verdict_cache.put(key, (correct, how))
    return correct, how


def _as_text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def _question_of(extra_info: dict) -> str:
    # judge_question: an evaluation row's question as a judge should see it (no image/frame markers, no options
    # block: options_text() adds those), written by data_prep.benchmarks
    for key in ("judge_question", "question", "problem", "original_question", "prompt"):
        value = extra_info.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
    """Score one response against its gold answer; verl's custom-reward contract. Never raises.

    Returns a dict with always the same keys (``RESULT_KEYS``; verl builds its batch columns from the first
    sample's keys), every value a float or a str:

    - ``score`` and ``acc``: 1.0 or 0.0 (binary reward, Tab. 8);
    - ``route``: who decided (``ROUTES``): "grader", "grader_failed" (no verdict in time: 0), "unparseable" (no
      boxed answer and no judge for it: 0), "judge", "judge_cached", "judge_failed" (judge needed, no answer: 0),
      "unsupported" (a type nothing here scores, or no gold answer: 0);
    - ``reason``: how or why ("grade_answer", "grade_answer_stripped", "choice_letter", "tolerance", "number_list",
      "no_box", "empty_response", "box_too_long", "grader_timeout", "judge", "judge_malformed", "judge_timeout", ...);
    - ``pred``: the boxed answer ("" when none), at most ``MAX_PRED_CHARS`` characters;
    - ``reward_type``: the row's type after aliases (``routing.ROUTING``'s keys).

    Reward kwargs: the judge's (``judge_url``, ``judge_model``, ...: ``judge.py``), ``judge_unresolved`` (see the
    module docstring) and ``route_metrics=True`` (adds ``route_<route>`` 0/1 floats, which verl's validation
    averages per data source).
    """
    route_metrics = bool(kwargs.get("route_metrics", False))
    try:
        return _compute_score(solution_str, ground_truth, extra_info, kwargs, route_metrics)
    except Exception as exc:  # a reward bug must not kill a training run
        _warn_once("zppo reward: internal error (returning score 0)", exc_info=True)
        return _result(False, ROUTE_UNSUPPORTED, f"internal_error:{type(exc).__name__}", "", "", route_metrics)


def _compute_score(solution_str, ground_truth, extra_info, kwargs: dict, route_metrics: bool) -> dict:
    deadline = time.monotonic() + GRADER_BUDGET_S
    sandbox.pool().warm()  # the first call starts the worker processes in the background (no wait)
    extra_info = extra_info if isinstance(extra_info, dict) else {}
    text = _as_text(solution_str)
    reward_type = resolve_reward_type(extra_info, ground_truth)
    route = ROUTING[reward_type]

    def result(correct: bool, route_name: str, reason: str, pred: str = "") -> dict:
        return _result(correct, route_name, reason, pred, reward_type, route_metrics)

    if route is None:
        return result(False, ROUTE_UNSUPPORTED, "unsupported_reward_type")
    golds = gold_answers(ground_truth, reward_type)
    if not golds:
        return result(False, ROUTE_UNSUPPORTED, "no_ground_truth")
    unresolved_to_judge = judge_unresolved(kwargs)
    box = boxed_answer(text) if text else None
    if box is not None:
        if len(box) > MAX_BOX_CHARS:
            correct, why = False, "box_too_long"
        else:
            tolerance = tolerance_of(extra_info) if route.tolerance else None
            correct, why = grade_bounded(box, golds, route.mode, tolerance, deadline)
        if correct:
            return result(True, ROUTE_GRADER, why, box)
        fallback = ROUTE_GRADER_FAILED if correct is None else ROUTE_GRADER
        unresolved = unresolved_to_judge and route.mode == "choice" and choice_letter(box) is None
        if not (route.judge or unresolved):
            return result(False, fallback, why, box)
    else:
        if not text.strip():
            return result(False, ROUTE_UNPARSEABLE, "empty_response")
        if not (route.judge or unresolved_to_judge):
            return result(False, ROUTE_UNPARSEABLE, "no_box")
        fallback, why = ROUTE_UNPARSEABLE, "no_box"

    config = judge_config_from(kwargs)
    if config is None:
        _warn_once("zppo reward: no judge configured (judge_url, judge_model): free-form answers the grader does "
                   "not find correct score 0")
        return result(False, fallback, why, box or "")
    # Fig. 9 takes the extracted final answer (form b) or the full trajectory (form a): the box when there is one
    # (*ours*: short prompts, and the 8 rollouts of a question that agree share one cached verdict), the whole
    # response when there is none, so that the judge can look inside the reasoning.
    gold_text = golds[0] if len(golds) == 1 else "any of: " + "; ".join(golds)
    verdict = get_judge(config).judge(_question_of(extra_info), options_text(extra_info),
                                      box if box is not None else text, gold_text)
    route_name = {"verdict": ROUTE_JUDGE, "malformed": ROUTE_JUDGE, "cached": ROUTE_JUDGE_CACHED,
                  "failed": ROUTE_JUDGE_FAILED}[verdict.outcome]
    return result(verdict.correct, route_name, verdict.reason, box or "")
