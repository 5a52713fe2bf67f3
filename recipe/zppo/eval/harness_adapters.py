"""Adapters that let lm-evaluation-harness (LLM tasks) and lmms-eval (image/video tasks) score with ZPPO's answer
format: the same closer appended to every question and the same reward (the boxed grader) as training.

Neither harness is a dependency; this module imports neither at load time. The pieces are plain functions a task
YAML points at (``!function``), so a task written for the harness keeps its data loading and only swaps prompt
ending and scoring:

lm-evaluation-harness (``my_task.yaml`` next to a ``utils.py`` that re-exports these)::

    doc_to_text: !function utils.doc_to_text            # = make_doc_to_text("question", choices_field="options")
    process_results: !function utils.process_results    # = make_process_results("answer", "multiple_choice", ...)
    generation_kwargs: {until: [], max_gen_toks: 4096, do_sample: false}
    metric_list: [{metric: zppo_acc, aggregation: mean, higher_is_better: true}]

or keep the task's own scoring and only extract the final answer: call ``register_lm_eval_filter()`` once (e.g. in
``utils.py``) and use ``filter_list: [{name: zppo, filter: [{function: zppo_final_answer}]}]``.

lmms-eval (``utils.py`` of an image or video task)::

    lmms_eval_specific_kwargs: {default: {pre_prompt: "", post_prompt: <POST_PROMPT>}}   # or doc_to_text below
    doc_to_text: !function utils.doc_to_text
    process_results: !function utils.process_results
    metric_list: [{metric: zppo_acc, aggregation: mean, higher_is_better: true}]

``process_results(doc, results)`` works for both (a list of generated strings; the first is scored). Scores are
those of ``recipe.zppo.reward.compute_score`` (0/1 ``acc``), so harness numbers and this project's own evaluation
(``python -m recipe.zppo.eval``) agree on the same answers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_final_answer

POST_PROMPT = "\n\n" + ANSWER_CLOSER
METRIC = "zppo_acc"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def with_closer(question: str) -> str:
    """The question as the student sees it everywhere: question, blank line, the project's answer closer."""
    return question.rstrip() + POST_PROMPT


def format_question(question: str, choices: Sequence[Any] | None = None) -> str:
    """Question text with lettered options ("A. ...") when given, and the closer."""
    text = str(question).strip()
    if choices:
        text += "\n" + "\n".join(f"{LETTERS[i]}. {str(c).strip()}" for i, c in enumerate(choices))
    return with_closer(text)


def make_doc_to_text(question_field: str = "question", choices_field: str | None = None) -> Callable:
    """A ``doc_to_text(doc, lmms_eval_specific_kwargs=None)`` reading the question (and options) from a doc."""

    def doc_to_text(doc: dict, lmms_eval_specific_kwargs: dict | None = None) -> str:
        choices = doc.get(choices_field) if choices_field else None
        return format_question(doc[question_field], list(choices) if choices is not None else None)

    return doc_to_text


def score_response(response: str, gold: Any, reward_type: str | None = None, extra_info: dict | None = None,
                   data_source: str = "harness") -> dict:
    """``recipe.zppo.reward.compute_score`` of one response (dict with score, acc, route, pred, ...)."""
    from recipe.zppo.reward import compute_score

    info = dict(extra_info or {})
    if reward_type:
        info["reward_type"] = reward_type
    return compute_score(data_source, response, gold, info)


def make_process_results(answer_field: str = "answer", reward_type: str | None = None,
                         choices_field: str | None = None, tolerance: float | None = None,
                         answer_is_index: bool = False, metric: str = METRIC) -> Callable:
    """A ``process_results(doc, results) -> {metric: 0.0 | 1.0}`` scoring the first generation of a doc.

    ``answer_is_index``: the doc's answer is an option index (0-based), turned into its letter.
    """

    def process_results(doc: dict, results: Sequence[str]) -> dict:
        response = results[0] if results else ""
        gold = doc[answer_field]
        if answer_is_index:
            gold = LETTERS[int(gold)]
        info: dict = {}
        if choices_field and doc.get(choices_field) is not None:
            info["choices"] = [str(c) for c in doc[choices_field]]
        if tolerance is not None:
            info["tolerance"] = tolerance
        return {metric: float(score_response(response, gold, reward_type, info)["acc"])}

    return process_results


class FinalAnswerFilter:
    """lm-evaluation-harness filter interface (``apply(resps, docs)``): each response becomes its final answer
    (the project's extraction rules; "" when there is none, e.g. a cut-off think block)."""

    def __init__(self, **kwargs):
        pass

    def apply(self, resps, docs):
        return [[extract_final_answer(r) or "" for r in doc_resps] for doc_resps in resps]


def register_lm_eval_filter(name: str = "zppo_final_answer"):
    """Register ``FinalAnswerFilter`` with lm-evaluation-harness under ``name`` (needs ``lm_eval`` installed)."""
    try:
        from lm_eval.api.filter import Filter
        from lm_eval.api.registry import register_filter
    except ImportError as error:
        raise ImportError("register_lm_eval_filter needs lm-evaluation-harness (pip install lm-eval)") from error

    @register_filter(name)
    class _ZPPOFinalAnswer(FinalAnswerFilter, Filter):
        pass

    return _ZPPOFinalAnswer
