"""ZPPO's reward: one answer format, deterministic verifiers per answer type, optional judge fallback.

verl wiring (0.9.1)::

    reward.custom_reward_function.path=pkg://recipe.zppo.reward
    reward.custom_reward_function.name=compute_score
    +reward.custom_reward_function.reward_kwargs.judge_url=http://judge:8000/v1      # optional
    +reward.custom_reward_function.reward_kwargs.judge_model=Qwen/Qwen3.5-27B          # optional

verl (``verl.trainer.ppo.reward.get_custom_reward_fn``) imports the function and merges ``reward_kwargs``
into every call; its reward manager (``naive``) calls it from an executor thread as
``compute_score(data_source=..., solution_str=..., ground_truth=..., extra_info=...)`` and puts every key of
the returned dict into ``reward_extra_info`` (the ``score`` key becomes the token-level reward).

See ``docs/rewards.md`` for the routes, reward types and metrics.
"""

from __future__ import annotations

import logging

from recipe.zppo.algo.answer_format import extract_answer
from recipe.zppo.reward.judge import get_client, judge_config_from
from recipe.zppo.reward.metrics import ROUTES, route_shares
from recipe.zppo.reward.verifiers import gold_items, resolve_reward_type, verify

__all__ = ["compute_score", "route_shares", "ROUTES", "RESULT_KEYS", "MAX_PRED_CHARS"]

logger = logging.getLogger(__name__)

ROUTE_PARSER, ROUTE_JUDGE, ROUTE_UNPARSEABLE, ROUTE_JUDGE_UNAVAILABLE = ROUTES
RESULT_KEYS = ("score", "acc", "route", "reason", "pred", "reward_type")
MAX_PRED_CHARS = 512  # the pred kept in the result (and in verl's batch / dumps)

# Responses with these extraction reasons are never sent to the judge: they have no final answer by rule.
_NO_JUDGE = frozenset({"empty_response", "unclosed_think", "empty_answer"})
_warned_error = False


def _result(correct: float, route: str, reason: str, pred: str | None, reward_type: str, route_metrics: bool) -> dict:
    acc = 1.0 if correct >= 1.0 else 0.0
    out = {
        "score": float(acc),
        "acc": acc,
        "route": route,
        "reason": reason,
        "pred": (pred or "")[:MAX_PRED_CHARS],
        "reward_type": reward_type,
    }
    if route_metrics:
        for name in ROUTES:
            out[f"route_{name}"] = 1.0 if route == name else 0.0
    return out


def _question_of(extra_info: dict) -> str:
    for key in ("question", "problem", "original_question", "prompt"):
        value = extra_info.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _gold_text(ground_truth) -> str:
    items = gold_items(ground_truth)
    if len(items) == 1:
        return str(items[0])
    return "any of: " + " | ".join(str(g) for g in items)


def compute_score(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
    """Score one response against its gold answer; verl's custom-reward contract. Never raises.

    Returns a dict with always the same keys (``RESULT_KEYS``; verl builds its batch columns from the first
    sample's keys), every value a float or a str:

    - ``score``: float in {0.0, 1.0} (binary), the reward;
    - ``acc``: float in {0.0, 1.0}, the binary correctness ZPPO's hardness and replay buffer use;
    - ``route``: "parser" (deterministic verifier decided), "judge" (judge decided), "unparseable" (no
      answer could be read; score 0), "judge_unavailable" (judge needed but failed; score 0);
    - ``reason``: how (verifier detail such as "letter", "number", "math_verify") or why not ("no_answer",
      "unclosed_think", "empty_response", "no_ground_truth", "judge_timeout", ...);
    - ``pred``: the extracted answer ("" if none), at most ``MAX_PRED_CHARS`` characters;
    - ``reward_type``: the verifier used ("auto" when the row has no known reward_type).

    With ``route_metrics=True`` (a reward kwarg) the dict also carries ``route_<route>`` 0/1 floats, which
    verl's validation averages per data source (at a cost: each numeric key adds bootstrap statistics).
    Judge settings: see ``recipe.zppo.reward.judge`` (``judge_url``, ``judge_model``, ... or ZPPO_JUDGE_*).
    """
    route_metrics = bool(kwargs.get("route_metrics", False))
    try:
        return _compute_score(solution_str, ground_truth, extra_info, kwargs, route_metrics)
    except Exception as exc:  # a reward bug must not kill a training run
        global _warned_error
        if not _warned_error:
            _warned_error = True
            logger.exception("zppo reward: internal error (returning score 0)")
        return _result(0.0, ROUTE_UNPARSEABLE, f"internal_error:{type(exc).__name__}", "", "auto", route_metrics)


def _compute_score(solution_str, ground_truth, extra_info, kwargs: dict, route_metrics: bool) -> dict:
    extra_info = extra_info if isinstance(extra_info, dict) else {}
    reward_type = resolve_reward_type(extra_info)
    extraction = extract_answer(solution_str)
    pred = extraction.answer

    if not gold_items(ground_truth):
        route = ROUTE_PARSER if pred else ROUTE_UNPARSEABLE
        return _result(0.0, route, "no_ground_truth", pred, reward_type, route_metrics)

    if pred is not None:
        verdict = verify(reward_type, pred, ground_truth, extra_info)
        if verdict.correct is not None:
            return _result(float(verdict.correct), ROUTE_PARSER, verdict.detail, pred, reward_type, route_metrics)
        why = verdict.detail
    else:
        why = extraction.reason

    config = judge_config_from(kwargs) if extraction.reason not in _NO_JUDGE else None
    if config is None:
        return _result(0.0, ROUTE_UNPARSEABLE, why, pred, reward_type, route_metrics)
    verdict = get_client(config).judge(_question_of(extra_info), _gold_text(ground_truth), extraction.answer_part)
    if verdict.verdict is None:
        return _result(0.0, ROUTE_JUDGE_UNAVAILABLE, verdict.reason, pred, reward_type, route_metrics)
    return _result(float(verdict.verdict), ROUTE_JUDGE, verdict.reason, pred, reward_type, route_metrics)
