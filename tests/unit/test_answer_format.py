"""The single answer format: closer wording and final-answer extraction (documented results, adversarial)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.zppo.algo.answer_format import (
    ANSWER_CLOSER,
    MAX_BOX_CHARS,
    extract_answer,
    extract_boxed,
    extract_final_answer,
    split_think,
)

T = "<think>some reasoning</think>\n"


def test_closer_is_fig_8_verbatim():
    # arXiv 2606.18216, Fig. 8 (App. B.2): the RL closer, copied from the paper character for character.
    fig_8 = ("You FIRST think about the reasoning process as an internal monologue and then provide the final answer. "
             "The reasoning process MUST BE enclosed within <think> </think> tags. "
             "The final answer MUST BE put in \\boxed{}.")
    assert ANSWER_CLOSER == fig_8


@pytest.mark.parametrize(
    "text, expected",
    [
        ("no tags at all", ("", "no tags at all")),
        ("<think>r</think>answer", ("r", "answer")),
        ("r</think>answer", ("r", "answer")),  # the template put <think> in the prompt
        ("<think>r", (None, "")),  # cut off inside the think block
        ("<think>a</think>b<think>c", (None, "")),  # a second think block never closed
        ("<think>a</think><think>b</think>c", ("a</think><think>b", "c")),
        (None, (None, "")),
        ("", ("", "")),
    ],
)
def test_think_block_is_split_off_and_an_unclosed_one_leaves_no_answer(text, expected):
    assert split_think(text) == expected


@pytest.mark.parametrize(
    "text, expected",
    [
        ("\\boxed{5}", "5"),
        ("\\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
        ("\\boxed{3} then \\boxed{4}", "4"),  # several boxes: the last
        ("\\boxed{3} and \\boxed{4", "3"),  # the last box never closes: the previous one
        ("\\boxed {7}", "7"),
        ("\\fbox{8}", "8"),
        ("\\boxed{\\{1, 2\\}}", "\\{1, 2\\}"),  # escaped braces do not count
        ("\\boxed{\\boxed{5}}", "5"),
        ("\\boxed{5} \\boxed{}", "5"),  # an empty box is no box
        ("\\boxedfoo{3}", None),
        ("no box", None),
        ("", None),
        (None, None),
        ("\\boxed{" + "x" * (MAX_BOX_CHARS + 10) + "}", None),  # too long to be an answer
    ],
)
def test_the_last_closed_nonempty_box_is_the_boxed_answer(text, expected):
    assert extract_boxed(text) == expected


@pytest.mark.parametrize(
    "response, answer, method, reason",
    [
        # the closer's format
        (T + "So \\boxed{42}.", "42", "boxed", "ok"),
        (T + "\\boxed{\\text{(B)}}", "\\text{(B)}", "boxed", "ok"),
        (T + "first \\boxed{1}, corrected: \\boxed{2}", "2", "boxed", "ok"),
        ("<think>maybe \\boxed{1}</think> final \\boxed{2}", "2", "boxed", "ok"),
        # a box only inside the think block is ignored
        ("<think>so \\boxed{1}</think>", None, "none", "empty_answer"),
        ("<think>so \\boxed{1}</think>\nI have thought about it.\nIt was a hard question to answer well.", None,
         "none", "no_answer"),
        # cut off inside the think block: no answer, whatever follows the box
        ("<think>so \\boxed{1} and", None, "none", "unclosed_think"),
        ("<think>a</think>\\boxed{2}<think>again", None, "none", "unclosed_think"),
        # <answer> tags
        (T + "<answer>B</answer>", "B", "answer_tag", "ok"),
        (T + "<answer> \\boxed{7} </answer>", "7", "boxed", "ok"),  # a box inside the tags is a box
        (T + "<answer>1</answer> <answer>3</answer>", "3", "answer_tag", "ok"),
        # markers
        (T + "The reasoning is done.\nAnswer: B", "B", "marker", "ok"),
        (T + "Long text here.\n**Answer:** (C).", "(C)", "marker", "ok"),
        (T + "Thus.\nThe final answer is $42$.", "42", "marker", "ok"),
        (T + "Thus.\nThe correct option is D", "D", "marker", "ok"),
        # short answer parts and bare last lines
        (T + "(B)", "(B)", "short", "ok"),
        (T + "B.", "B", "short", "ok"),
        (T + "42", "42", "short", "ok"),
        ("7", "7", "short", "ok"),
        (T + "I compared every option in the figure.\nThe second one fits best.\nB", "B", "last_line", "ok"),
        (T + "Adding the parts gives a total.\nSo we get:\n-12.5", "-12.5", "last_line", "ok"),
        # nothing to take
        (T + "I could not work it out from the picture.\nThe picture is too blurry.", None, "none", "no_answer"),
        ("", None, "none", "empty_response"),
        ("   \n", None, "none", "empty_response"),
        (None, None, "none", "empty_response"),
    ],
)
def test_answer_comes_from_box_tag_marker_or_last_line_outside_the_think_block(response, answer, method, reason):
    got = extract_answer(response)
    assert (got.answer, got.method, got.reason) == (answer, method, reason)
    assert extract_final_answer(response) == answer


def test_non_string_inputs_do_not_raise():
    assert extract_answer(b"<think>x</think>\\boxed{3}").answer == "3"
    assert extract_answer(12).answer == "12"
    assert extract_answer(["not", "text"]).reason in {"ok", "no_answer"}


def test_huge_and_unclosed_outputs_are_parsed_without_raising():
    # How long these take is measured by benchmarks/bench_reward.py (goal: under 5 s), not asserted here.
    filler = "blah " * 400_000  # 2 MB
    assert extract_answer("<think>" + filler + "</think>" + filler + "\\boxed{9}").answer == "9"
    assert extract_answer("<think>" + filler).reason == "unclosed_think"
    assert extract_answer(T + filler + "\\boxed{" + filler).answer is None  # an unclosed giant box
    assert extract_answer(T + "\\boxed{" * 200_000).answer is None  # many unclosed boxes
    assert extract_answer(T + "Answer: " * 100_000).reason in {"ok", "no_answer"}  # bounded, never raises


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_extraction_never_raises(text):
    got = extract_answer(text)
    assert got.answer is None or (isinstance(got.answer, str) and got.answer)


@settings(max_examples=200, deadline=None)
@given(
    reasoning=st.text(alphabet=st.characters(blacklist_characters="<>"), max_size=200),
    answer=st.text(alphabet=st.characters(blacklist_characters="{}\\<>\n\r", blacklist_categories=("Cs",)),
                   min_size=1, max_size=40),
)
def test_boxed_answer_round_trips(reasoning, answer):
    if not answer.strip():
        return
    response = f"<think>{reasoning}</think>\nTherefore \\boxed{{{answer}}}"
    assert extract_final_answer(response) == answer.strip()
