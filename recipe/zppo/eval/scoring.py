"""Per-benchmark scoring of the evaluation suite, as App. B.2 and Tabs 5-7 say: one pure dispatch on the row's
``extra_info["scoring"]`` (written by ``data_prep.benchmarks``), called by the eval reward (``evaluate.py``).

================ ==============================================================================================
scoring          how one answer is scored
================ ==============================================================================================
exact_judge      "Exact+Judge": the project's reward (mathruler's boxed grader and the routing table,
rule_judge       ``recipe.zppo.reward``) first; "Rule+Judge": the same, the converter's per-benchmark rule
                 living in the row (reward_type, choices, tolerance). What the rule cannot resolve goes to the
                 shared judge (Fig. 9) with the full response, which looks inside the reasoning: no final box
                 (none after ``</think>``), a box that names no option, and a TRUNCATED answer (it hit the
                 response-length limit, or its ``<think>`` block never closes) whatever box its reasoning holds
                 (*ours*: a truncated response has no committed final answer, Fig. 9's "look inside thinking").
det              "Det.": the official metric, no judge. ``metric="anls"`` (InfoVQA): ANLS with its 0.5
                 threshold; ``metric="ocrbench_v2"``: OCRBench v2's official per-task scoring (``ocr_task``,
                 ``ocr_eval``, ``ocr_meta``), ``recipe.zppo.eval.ocrbench_v2``. The prediction is the final
                 ``\\boxed{}`` (else the text after ``</think>``; a truncated answer predicts nothing).
benchjudge       "BenchJudge": the benchmark's official judge prompt (Figs 10-15, ``reward/bench_judges.py``)
                 on the full response, asked of the same judge endpoint, parsed by the official rule.
(absent)         the project's reward exactly as in training (old files, training data).
================ ==============================================================================================

Row fields read (``data_prep.benchmarks`` writes them; docs/evaluation.md "Row fields"): ``scoring``; Det.:
``metric``, the gold list ``gold_answers`` (else ``reward_model.ground_truth``) and for OCRBench v2 ``ocr_task``,
``ocr_eval``, ``ocr_meta`` and the question (``judge_question``, else ``question``); BenchJudge: ``judge`` and the
fields of ``bench_judges.REQUIRED_FIELDS``; Exact/Rule+Judge: the reward's (``reward_type``, ``choices``,
``tolerance``, ``question``).

Scores are in [0, 1]: binary for most, graded for ANLS, most OCRBench v2 task types and MM-Vet (the benchmark's
metric is then their mean, which ``evaluate.score_benchmarks`` takes). Every result has the reward's keys
(``recipe.zppo.reward.RESULT_KEYS``) plus ``judge_calls`` (0/1) and ``truncated`` (0/1).
"""

from __future__ import annotations

import logging

from recipe.zppo.eval.ocrbench_v2 import ocrbench_v2_score, similarity

logger = logging.getLogger(__name__)

SCORINGS = ("exact_judge", "rule_judge", "det", "benchjudge")
ANLS_THRESHOLD = 0.5  # ANLS (Biten et al. 2019; InfographicVQA's official metric): NL >= 0.5 scores 0

_warned: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _warned and len(_warned) < 100:
        _warned.add(message)
        logger.warning(message)


# ------------------------------------------------------------------------------------------------ edit distance


def normalized_levenshtein(a: str, b: str) -> float:
    """Edit distance over the longer length (0 for two empty strings): OCRBench v2's, the same cut."""
    return 1.0 - similarity(a, b)


def _anls_text(text) -> str:
    return " ".join(str(text).lower().split())


def anls(prediction: str, golds: list[str], threshold: float = ANLS_THRESHOLD) -> float:
    """ANLS of one answer: max over the gold answers of ``1 - NL`` where the normalised Levenshtein distance NL of the
    lower-cased, whitespace-normalised strings is below ``threshold``, else 0."""
    pred = _anls_text(prediction)
    best = 0.0
    for gold in golds:
        nl = normalized_levenshtein(pred, _anls_text(gold))
        if nl < threshold:
            best = max(best, 1.0 - nl)
    return best


# ------------------------------------------------------------------------------------------------ answers


def is_truncated(text: str, extra_info: dict) -> bool:
    """Whether a response has no committed final answer because it was cut: it hit the response-length limit (the
    eval agent loop's ``response_truncated``, ``decoding.py``) or its ``<think>`` block never closes."""
    from recipe.zppo.algo.answer_format import split_think

    if bool(extra_info.get("response_truncated")):
        return True
    reasoning, _ = split_think(text)
    return reasoning is None


def final_prediction(text: str, truncated: bool) -> str:
    """The prediction a deterministic metric compares: the last ``\\boxed{}`` after the reasoning, else the text after
    ``</think>`` (the concluding sentence, Fig. 9); "" for a truncated answer."""
    from recipe.zppo.algo.answer_format import split_think
    from recipe.zppo.reward.grader import boxed_answer

    if truncated:
        return ""
    _, answer_part = split_think(text)
    box = boxed_answer(answer_part)
    return (box if box is not None else answer_part).strip()


def _golds(ground_truth, info: dict) -> list[str]:
    """The row's acceptable gold answers: ``extra_info["gold_answers"]`` (the converter's list, kept as listed: an
    answer that reads like a list stays one answer), else the ground truth (a JSON list for several answers)."""
    from recipe.zppo.reward.routing import gold_answers

    listed = info.get("gold_answers")
    if listed is not None and not isinstance(listed, str):
        items = listed.tolist() if hasattr(listed, "tolist") else list(listed)
        golds = [str(g) for g in items if g is not None and str(g).strip()]
        if golds:
            return golds
    return gold_answers(ground_truth, "list_string_match")


def _result(score: float, route: str, reason: str, pred: str, reward_type: str, judge_calls: int = 0,
            truncated: bool = False) -> dict:
    from recipe.zppo.reward import MAX_PRED_CHARS

    score = float(min(1.0, max(0.0, score)))
    return {"score": score, "acc": score, "route": route, "reason": reason, "pred": (pred or "")[:MAX_PRED_CHARS],
            "reward_type": reward_type, "judge_calls": float(judge_calls), "truncated": float(truncated)}


JUDGE_ROUTES = ("judge", "judge_cached", "judge_failed")


def score_answer(data_source, solution_str, ground_truth, extra_info, **kwargs) -> dict:
    """Score one evaluation answer by its row's ``extra_info["scoring"]`` (see the module docstring). Never raises:
    a bad row scores 0 with the reason."""
    from recipe.zppo.reward import compute_score

    info = extra_info if isinstance(extra_info, dict) else {}
    scoring = str(info.get("scoring") or "").strip().lower()
    text = solution_str if isinstance(solution_str, str) else str(solution_str or "")
    truncated = is_truncated(text, info) if text.strip() else False
    if not scoring:
        result = dict(compute_score(data_source, text, ground_truth, info, **kwargs))
        result["judge_calls"] = float(result.get("route") in JUDGE_ROUTES and result.get("route") != "judge_cached")
        result["truncated"] = float(truncated)
        return result
    try:
        if scoring in ("exact_judge", "rule_judge"):
            return _score_rule_then_judge(data_source, text, ground_truth, info, truncated, kwargs)
        if scoring == "det":
            return _score_det(text, ground_truth, info, truncated)
        if scoring == "benchjudge":
            return _score_benchjudge(text, ground_truth, info, truncated, kwargs)
    except Exception as exc:  # a scoring bug must not stop an evaluation; the reason says what happened
        _warn_once(f"eval scoring: internal error on a {scoring} row ({type(exc).__name__}: {exc}); scored 0")
        return _result(0.0, "unsupported", f"internal_error:{type(exc).__name__}", "", str(info.get("reward_type")),
                       truncated=truncated)
    _warn_once(f"eval scoring: unknown extra_info['scoring'] {scoring!r} (known: {', '.join(SCORINGS)}); scored 0")
    return _result(0.0, "unsupported", "unknown_scoring", "", str(info.get("reward_type") or ""), truncated=truncated)


def _score_rule_then_judge(data_source, text: str, ground_truth, info: dict, truncated: bool, kwargs: dict) -> dict:
    """Exact+Judge / Rule+Judge: the rule first; the shared judge (Fig. 9) on what it cannot resolve."""
    from recipe.zppo.algo.answer_format import split_think
    from recipe.zppo.reward import compute_score
    from recipe.zppo.reward.grader import boxed_answer
    from recipe.zppo.reward.judge import get_judge, judge_config_from
    from recipe.zppo.reward.routing import gold_answers, options_text, resolve_reward_type

    args = {**kwargs, "judge_unresolved": True}
    # A box only inside the reasoning is no final answer either (Fig. 9: the final answer is the last box or the
    # concluding sentence AFTER </think>).
    reasoning_only_box = not truncated and boxed_answer(split_think(text)[1]) is None and boxed_answer(text) is not None
    if not (truncated or reasoning_only_box):
        result = dict(compute_score(data_source, text, ground_truth, info, **args))
        result["judge_calls"] = float(result.get("route") in ("judge", "judge_failed"))
        result["truncated"] = 0.0
        return result
    # Truncated, or boxed only in the reasoning: whatever box the reasoning holds is no committed answer; the rule gets
    # no box, the judge the whole response (it looks inside the reasoning).
    reward_type = resolve_reward_type(info, ground_truth)
    golds = gold_answers(ground_truth, reward_type)
    config = judge_config_from(args)
    if config is None or not golds:
        _warn_once("eval scoring: an answer without a final box needs the judge (judge_url, judge_model); scored 0 "
                   "without it")
        return _result(0.0, "unparseable", "truncated" if truncated else "no_final_box", "", reward_type,
                       truncated=truncated)
    question = next((info.get(k) for k in ("question", "problem", "prompt") if isinstance(info.get(k), str)), "")
    gold_text = golds[0] if len(golds) == 1 else "any of: " + "; ".join(golds)
    verdict = get_judge(config).judge(question or "", options_text(info), text, gold_text)
    route = {"verdict": "judge", "malformed": "judge", "cached": "judge_cached", "failed": "judge_failed"}
    return _result(float(verdict.correct), route[verdict.outcome], verdict.reason, "", reward_type,
                   judge_calls=int(verdict.outcome != "cached"), truncated=truncated)


def _score_det(text: str, ground_truth, info: dict, truncated: bool) -> dict:
    metric = str(info.get("metric") or "").strip().lower()
    golds = _golds(ground_truth, info)
    prediction = final_prediction(text, truncated)
    reward_type = str(info.get("reward_type") or "")
    if not golds:
        return _result(0.0, "unsupported", "no_ground_truth", prediction, reward_type, truncated=truncated)
    if metric == "anls":
        return _result(anls(prediction, golds) if prediction else 0.0, "det", "anls", prediction, reward_type,
                       truncated=truncated)
    if metric == "ocrbench_v2":
        question = next((info.get(k) for k in ("judge_question", "question") if isinstance(info.get(k), str)), "")
        score, how = ocrbench_v2_score(info.get("ocr_task"), prediction, golds, variant=info.get("ocr_eval"),
                                       meta=info.get("ocr_meta"), question=question)
        if score is None:
            _warn_once(f"eval scoring: OCRBench v2 task type {info.get('ocr_task')!r} / eval "
                       f"{info.get('ocr_eval')!r} is unknown; scored 0")
            return _result(0.0, "unsupported", how, prediction, reward_type, truncated=truncated)
        return _result(score if prediction else 0.0, "det", how, prediction, reward_type, truncated=truncated)
    _warn_once(f"eval scoring: det row with unknown metric {metric!r} (anls, ocrbench_v2); scored 0")
    return _result(0.0, "unsupported", "unknown_metric", prediction, reward_type, truncated=truncated)


def _score_benchjudge(text: str, ground_truth, info: dict, truncated: bool, kwargs: dict) -> dict:
    from recipe.zppo.reward.bench_judges import parser_for, render
    from recipe.zppo.reward.judge import get_judge, judge_config_from
    from recipe.zppo.reward.routing import options_text

    name = str(info.get("judge") or "").strip()
    reward_type = str(info.get("reward_type") or "")
    golds = _golds(ground_truth, info)
    config = judge_config_from(kwargs)
    if config is None:
        _warn_once("eval scoring: BenchJudge rows need the judge (judge_url, judge_model); they score 0 without it")
        return _result(0.0, "judge_failed", "no_judge", "", reward_type, truncated=truncated)
    if not text.strip():
        return _result(0.0, "unparseable", "empty_response", "", reward_type, truncated=truncated)
    gold = golds[0] if len(golds) == 1 else " <OR> ".join(golds) if name == "mm_vet" else "; ".join(golds)
    if name == "multichallenge":
        gold = gold or str(info.get("pass_criteria") or "")
    response = text[-config.response_chars:]
    prompt = render(name, info, response, gold, options_text(info))
    verdict = get_judge(config).ask(prompt, parser_for(name, info))
    route = {"verdict": "benchjudge", "malformed": "benchjudge", "cached": "benchjudge_cached",
             "failed": "judge_failed"}[verdict.outcome]
    return _result(verdict.value if verdict.outcome in ("verdict", "cached") else 0.0, route, verdict.reason, "",
                   reward_type, judge_calls=int(verdict.outcome != "cached"), truncated=truncated)
