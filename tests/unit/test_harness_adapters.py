"""Harness adapters, without the harnesses installed: prompts end with the project's closer and scoring is the
project's reward, so a harness task scores answers exactly as training and recipe.zppo.eval.evaluate do."""

from __future__ import annotations

import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.eval.harness_adapters import (
    FinalAnswerFilter,
    make_doc_to_text,
    make_process_results,
    register_lm_eval_filter,
)


def test_doc_to_text_appends_options_and_the_closer():
    doc_to_text = make_doc_to_text("question", choices_field="options")
    text = doc_to_text({"question": "Which is a prime?", "options": ["4", "6", "7"]}, {"pre_prompt": ""})
    assert text == "Which is a prime?\nA. 4\nB. 6\nC. 7\n\n" + ANSWER_CLOSER


def test_process_results_grades_with_the_project_reward():
    process = make_process_results("answer", "multiple_choice", choices_field="options", answer_is_index=True)
    doc = {"question": "Which is a prime?", "options": ["4", "6", "7"], "answer": 2}
    assert process(doc, ["<think>7 is prime</think> \\boxed{C}"]) == {"zppo_acc": 1.0}
    # the option text: the paper's grader reads letters (the judge reads it under reward kwarg judge_unresolved)
    assert process(doc, ["<think>7 is prime</think> \\boxed{7}"]) == {"zppo_acc": 0.0}
    assert process(doc, ["<think>hm</think> \\boxed{A}"]) == {"zppo_acc": 0.0}
    assert process(doc, ["<think>cut off before the answer"]) == {"zppo_acc": 0.0}
    numeric = make_process_results("answer", "numeric", tolerance=0.05)
    assert numeric({"answer": "100"}, ["<think>x</think> \\boxed{103}"]) == {"zppo_acc": 1.0}
    assert numeric({"answer": "100"}, ["<think>x</think> \\boxed{110}"]) == {"zppo_acc": 0.0}


def test_filter_extracts_final_answers():
    resps = [["<think>a</think> \\boxed{42}", "<think>never closed"], ["The answer is (B)."]]
    assert FinalAnswerFilter().apply(resps, [{}, {}]) == [["42", ""], ["(B)"]]


def test_registering_with_lm_eval_needs_the_harness():
    try:
        import lm_eval  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match="lm-evaluation-harness"):
            register_lm_eval_filter()
    else:  # pragma: no cover - only where the harness is installed
        assert register_lm_eval_filter("zppo_test_filter") is not None
