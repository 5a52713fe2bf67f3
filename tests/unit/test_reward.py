"""The reward as the paper grades (recipe.zppo.reward): mathruler's boxed grader and its degree/percent retry (App.
D.1), our choices where the paper is silent (choice letters, tolerances, number lists), the routing table, the time
bound on pathological answers, the metrics, and verl 0.9.1's own reward plumbing calling ``compute_score`` by path.
The judge's protocol is in test_reward_judge.py (fake server) and test_reward_judge_live.py (a served model)."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipe.zppo.reward import (
    GRADER_BUDGET_S,
    RESULT_KEYS,
    ROUTES,
    compute_score,
    route_shares,
    sandbox,
    verdict_cache,
)
from recipe.zppo.reward.grader import boxed_answer, choice_letter, exact_number, grade, quick_grade, split_items
from recipe.zppo.reward.routing import ROUTING, resolve_reward_type, tolerance_of

T = "<think>I looked at the image and worked it out.</think>\n"


def boxed(answer: str) -> str:
    return T + f"The final answer is \\boxed{{{answer}}}."


def check_shape(result: dict) -> None:
    """The contract verl relies on: same keys every time, float-or-str values, binary score."""
    assert tuple(result) == RESULT_KEYS
    assert result["score"] in (0.0, 1.0) and isinstance(result["score"], float)
    assert result["acc"] == result["score"] and isinstance(result["acc"], float)
    assert result["route"] in ROUTES
    for key in ("route", "reason", "pred", "reward_type"):
        assert isinstance(result[key], str)


pytestmark = pytest.mark.usefixtures("fresh_judge")  # tests/unit/conftest.py: no judge from the environment


@pytest.fixture(scope="module", autouse=True)
def grader_workers():
    """Started once (about 2 s each on a quiet machine): the cases below test verdicts, not a cold start."""
    assert sandbox.pool().wait_ready(180), "the grader's worker processes did not start"
    yield


def score(response, gold, reward_type=None, **extra):
    info = dict(extra, reward_type=reward_type) if reward_type else (extra or None)
    result = compute_score("src", response, gold, info)
    check_shape(result)
    return result


# ------------------------------------------------------------------------------------------------ App. D.1's grader
@pytest.mark.parametrize("response, gold, acc, reason", [
    # the LAST box of the response decides (mathruler's extract_boxed_content)
    (T + "\\boxed{3} no wait \\boxed{4}", "4", 1.0, "grade_answer"),
    (T + "\\boxed{4} no wait \\boxed{3}", "4", 0.0, "grade_answer"),
    # nested boxes: the innermost last opening brace is the last box
    (T + "\\boxed{\\boxed{4}}", "4", 1.0, "grade_answer"),
    (T + "\\boxed{\\frac{1}{\\boxed{2}}}", "2", 1.0, "grade_answer"),
    (T + "\\boxed{\\frac{\\sqrt{3}}{2}}", "\\frac{\\sqrt{3}}{2}", 1.0, "grade_answer"),
    # LaTeX and numerical equivalences (App. D.1's examples: 1/2 vs 0.5, \frac{1}{2} vs 0.5)
    (boxed("1/2"), "0.5", 1.0, "grade_answer"),
    (boxed("\\frac{1}{2}"), "0.5", 1.0, "grade_answer"),
    (boxed("\\dfrac{3}{4}"), "\\frac{3}{4}", 1.0, "grade_answer"),
    (boxed("\\sqrt{3}/2"), "\\frac{\\sqrt{3}}{2}", 1.0, "grade_answer"),
    (boxed("x^2+2x+1"), "(x+1)^2", 1.0, "grade_answer"),
    (boxed("12.50"), "12.5", 1.0, "grade_answer"),
    (boxed("1,234"), "1234", 1.0, "grade_answer"),
    (boxed("x = 5"), "5", 1.0, "grade_answer"),
    (boxed("\\text{Paris}"), "paris", 1.0, "grade_answer"),
    (boxed("13"), "12", 0.0, "grade_answer"),
    (boxed("-7"), "7", 0.0, "grade_answer"),
    (boxed("\\frac{2}{4}"), "\\frac{1}{2}", 0.0, "grade_answer"),  # mathruler refuses unreduced fractions
    (boxed("2/4"), "1/2", 0.0, "grade_answer"),
    # the second pass: degree and percent marks stripped from both sides (App. D.1)
    (boxed("45°"), "45", 1.0, "grade_answer_stripped"),
    (boxed("45"), "45°", 1.0, "grade_answer_stripped"),
    (boxed("30∘"), "30", 1.0, "grade_answer_stripped"),
    (boxed("30\\circ"), "30", 1.0, "grade_answer_stripped"),
    (boxed("12.5\\%"), "12.5", 1.0, "grade_answer"),  # mathruler drops \% itself
    (boxed("45^\\circ"), "45", 1.0, "grade_answer"),
    (boxed("46°"), "45°", 0.0, "grade_answer"),
])
def test_the_grader_is_mathruler_with_the_degree_percent_retry(response, gold, acc, reason):
    result = score(response, gold, "math")
    assert (result["acc"], result["route"], result["reason"]) == (acc, "grader", reason), result


@pytest.mark.parametrize("response, reason", [
    (T + "The answer is 4.", "no_box"),  # the paper's reward needs a box: lenient extractors are not used
    (T + "Answer: 4", "no_box"),
    (T + "<answer>4</answer>", "no_box"),
    (T + "4", "no_box"),
    (T + "\\boxed{4} and then \\boxed{4", "no_box"),  # the last box never closes: no box (mathruler's "None")
    (T + "\\boxed{", "no_box"),
    ("", "empty_response"),
    ("   \n", "empty_response"),
    (None, "empty_response"),
])
def test_no_closed_last_box_scores_zero(response, reason):
    result = score(response, "4", "numeric")
    assert (result["acc"], result["route"], result["reason"], result["pred"]) == (0.0, "unparseable", reason, "")


def test_the_box_is_looked_for_in_the_whole_response_as_mathruler_does():
    # App. D.1: "the last \boxed{...} span of the response": a cut-off answer whose reasoning boxed it is graded
    assert score("<think>so it is \\boxed{4} and", "4", "numeric")["acc"] == 1.0
    assert score("no think block at all, \\boxed{4}", "4", "numeric")["acc"] == 1.0


def test_a_literal_none_box_is_an_answer_but_no_box_never_matches_none():
    # mathruler returns the string "None" when there is no box; that must not match a gold "None"
    assert score(boxed("None"), "None", "string_match")["acc"] == 1.0
    assert (score(T + "None of them.", "None", "string_match")["route"]) == "unparseable"
    assert score(T + "\\boxed{None", "None", "string_match")["acc"] == 0.0


def test_ground_truths_of_any_shape():
    assert score(boxed("4"), 4, "numeric")["acc"] == 1.0
    assert score(boxed("4"), 4.0, "numeric")["acc"] == 1.0
    assert score(boxed("0.25"), 0.25, "numeric")["acc"] == 1.0
    assert score(boxed("4"), np.int64(4), "numeric")["acc"] == 1.0
    assert score(boxed("four"), ["4", "four"], "numeric")["acc"] == 1.0  # a list: any item
    assert score(boxed("B"), np.array(["B"]), "multiple_choice")["acc"] == 1.0
    for gold in (None, "", "  ", float("nan"), [], [None]):
        result = score(boxed("4"), gold, "numeric")
        assert (result["acc"], result["route"], result["reason"]) == (0.0, "unsupported", "no_ground_truth")


def test_pred_is_the_box_capped_and_overlong_boxes_are_not_graded():
    assert score(boxed("\\frac{1}{2}"), "0.5", "numeric")["pred"] == "\\frac{1}{2}"
    result = score(boxed("a" * 3000), "a", "string_match")
    assert (result["acc"], result["reason"], len(result["pred"])) == (0.0, "box_too_long", 512)


# ------------------------------------------------------------------------------------------------ ours: letters
@pytest.mark.parametrize("answer, gold, acc", [
    ("B", "B", 1.0), ("b", "B", 1.0), ("(B)", "B", 1.0), ("[B]", "B", 1.0), ("B.", "B", 1.0), ("B)", "B", 1.0),
    ("\\text{B}", "B", 1.0), ("\\text{(B)}", "B", 1.0), ("$B$", "B", 1.0), ("B. dog", "B", 1.0),
    ("(B) dog", "B", 1.0), ("B", "(B)", 1.0), ("B", "B.", 1.0), ("C) dog", "(B) dog", 0.0),
    ("A", "B", 0.0), ("A or B", "B", 0.0), ("A, B", "B", 0.0), ("AB", "B", 0.0), ("dog", "B", 0.0),
    ("a cat", "A", 0.0),  # lower-case text is not an option letter
    ("dog", "dog", 1.0),  # a gold that is option text: plain grade_answer
])
def test_multiple_choice_letters(answer, gold, acc):
    result = score(boxed(answer), gold, "multiple_choice")
    assert (result["acc"], result["route"]) == (acc, "grader"), result


def test_choice_letter_reading():
    assert [choice_letter(s) for s in ("B", " (c) ", "\\textbf{D}", "E.", "A: yes", "x", "AB", "", "a dog")] == [
        "B", "C", "D", "E", "A", "X", None, None, None]


# ------------------------------------------------------------------------------------------------ ours: tolerance
@pytest.mark.parametrize("answer, gold, tolerance, acc, reason", [
    ("101", "100", 0.05, 1.0, "tolerance"), ("106", "100", 0.05, 0.0, "grade_answer"),
    ("-99", "-100", 0.05, 1.0, "tolerance"), ("0.004", "0", 0.01, 1.0, "tolerance"),  # absolute at gold 0
    ("101", "100", "5%", 1.0, "tolerance"), ("104\\%", "100", 0.05, 1.0, "tolerance"),
    ("\\frac{201}{2}", "100", 0.01, 1.0, "tolerance"), ("1.01 \\times 10^{3}", "1000", 0.02, 1.0, "tolerance"),
    ("1,010", "1000", 0.02, 1.0, "tolerance"), ("101", "100", None, 0.0, "grade_answer"),
    ("101", "100", 10**400, 0.0, "grade_answer"),  # does not fit a float: ignored, no error
    ("101", "100", "bad", 0.0, "grade_answer"), ("101", "100", -1, 0.0, "grade_answer"),
    ("101", "100", float("nan"), 0.0, "grade_answer"),
    ("1e5 \\times 10^{400}", "1e405", 0.01, 1.0, "tolerance"),  # exact arithmetic: no overflow
    ("1e5 \\times 10^{400}", "1e405", None, 0.0, "grade_answer"),
])
def test_numeric_tolerance_is_relative(answer, gold, tolerance, acc, reason):
    result = score(boxed(answer), gold, "numeric", tolerance=tolerance)
    assert (result["acc"], result["route"], result["reason"]) == (acc, "grader", reason), result


def test_tolerance_and_exact_number_reading():
    assert [tolerance_of({"tolerance": t}) for t in (0.1, "0.1", "10%", 0, None, True, "x", 10**400)] == [
        0.1, 0.1, 0.1, None, None, None, None, None]
    assert exact_number("1{,}234.5") == exact_number("1234.5") == exact_number("2469/2")
    assert exact_number("-\\frac{3}{4}") == exact_number("-0.75")
    assert exact_number("2.5e-3") == exact_number("2.5 \\times 10^{-3}")
    for text in ("x", "1/0", "\\frac{1}{0}", "9" * 2000, "1e99999", "1 2", "3!"):
        assert exact_number(text) is None, text


# ------------------------------------------------------------------------------------------------ ours: lists
@pytest.mark.parametrize("answer, gold, acc, reason", [
    ("1, 2, 3", "[1, 2, 3]", 1.0, "number_list"), ("[1, 2, 3]", [1, 2, 3], 1.0, "grade_answer"),
    ("(1; 2; 3)", "1, 2, 3", 1.0, "number_list"), ("\\left(1, 2, 3\\right)", np.array([1, 2, 3]), 1.0, "number_list"),
    ("1, \\frac{1}{2}, 3", "1, 0.5, 3", 1.0, "number_list"), ("3, 2, 1", "[1, 2, 3]", 0.0, "grade_answer"),
    ("1, 2", "[1, 2, 3]", 0.0, "grade_answer"), ("1, 2, 3, 4", "[1, 2, 3]", 0.0, "grade_answer"),
    ("4, 5", [[1, 2], [4, 5]], 1.0, "number_list"),  # a list of lists: alternatives
])
def test_number_lists_in_order(answer, gold, acc, reason):
    result = score(boxed(answer), gold, "number_list")
    assert (result["acc"], result["reason"]) == (acc, reason), result


def test_number_list_items_with_tolerance():
    assert score(boxed("1.01, 2"), "[1, 2]", "number_list", tolerance=0.02)["acc"] == 1.0
    assert split_items("[1, (2, 3), 4]") == ["1", "(2, 3)", "4"]
    assert split_items("1,,2") is None and split_items(",".join("1" * 200)) is None


def test_list_string_match_accepts_any_listed_answer():
    gold = "['body butter', 'coconut body butter']"
    assert score(boxed("Coconut Body Butter"), gold, "list_string_match")["acc"] == 1.0
    assert score(boxed("body butter"), ["body butter", "lotion"], "list_string_match")["acc"] == 1.0
    assert score(boxed("lotion"), gold, "list_string_match")["acc"] == 0.0


# ------------------------------------------------------------------------------------------------ routing
def test_routing_table_covers_every_vero_type():
    grader_only = {"multiple_choice", "numeric", "counting", "number_list"}
    judged = {"string_match", "list_string_match", "math", "llm_judge"}
    unsupported = {"grounding", "clicking", "web_action", "ordering", "instruction_following"}
    assert set(ROUTING) == grader_only | judged | unsupported
    assert {t for t, r in ROUTING.items() if r is not None and not r.judge} == grader_only
    assert {t for t, r in ROUTING.items() if r is not None and r.judge} == judged
    assert {t for t, r in ROUTING.items() if r is None} == unsupported
    assert {t for t, r in ROUTING.items() if r is not None and r.tolerance} == {"numeric", "counting", "number_list"}


@pytest.mark.parametrize("reward_type", ["grounding", "clicking", "web_action", "ordering", "instruction_following"])
def test_unsupported_types_score_zero_without_grading(reward_type):
    result = score(boxed("4"), "4", reward_type)
    assert (result["acc"], result["route"], result["reason"]) == (0.0, "unsupported", "unsupported_reward_type")


def test_reward_type_aliases_and_a_missing_type():
    assert resolve_reward_type({"reward_type": " Multiple_Choice "}) == "multiple_choice"
    assert resolve_reward_type({"reward_type": "search"}) == "string_match"
    assert resolve_reward_type({"reward_type": "count"}) == "counting"
    # missing or unknown: from the gold (*ours*)
    assert [resolve_reward_type(None, g) for g in ("B", "(C)", "12", "-1.5", "\\sqrt{2}", "Paris", None)] == [
        "multiple_choice", "multiple_choice", "numeric", "numeric", "string_match", "string_match", "string_match"]
    assert resolve_reward_type({"reward_type": "no_such_type"}, "7") == "numeric"
    assert score(boxed("(B)"), "B")["acc"] == 1.0  # no extra_info at all


# ------------------------------------------------------------------------------------------------ bounded in time
# (response, gold, extra_info, expected acc): the issue's pathological answers and their neighbours. The expected acc
# is what a correct grader says, or 0 where an input is beyond the grader's bounds (noted).
PATHOLOGICAL = [
    (boxed("answer" + " " * 300 + "1"), "B", {"reward_type": "multiple_choice"}, 0.0),
    (boxed("answer" + " " * 300 + "1"), "B", {"reward_type": "string_match"}, 0.0),
    (boxed("9^{9^{9^{9}}}"), ["1", "2", "3"], {"reward_type": "math"}, 0.0),
    (boxed("9**9**9**9"), ["2.5", "x", "y+1"], {"reward_type": "math"}, 0.0),
    (boxed("((((((9^9)^9)^9)^9)^9)^9)^9"), "2.5", {"reward_type": "numeric"}, 0.0),
    (boxed("10**10**8"), "x", {"reward_type": "math"}, 0.0),
    (boxed("101"), "100", {"reward_type": "numeric", "tolerance": 10**400}, 0.0),  # tolerance unreadable: exact
    (boxed("1e5 \\times 10^{400}"), "1e405", {"reward_type": "numeric", "tolerance": 0.01}, 1.0),
    (boxed("1e5 \\times 10^{400}"), "2", {"reward_type": "numeric"}, 0.0),
    (boxed("9" * 5000), "9" * 5000, {"reward_type": "numeric"}, 0.0),  # a box over 2,000 characters: not graded
    (boxed("7" * 1500), "7" * 1499 + "8", {"reward_type": "numeric", "tolerance": 0.1}, 0.0),  # over 1,000 digits
    (boxed("123"), "9" * 5000, {"reward_type": "numeric", "tolerance": 0.1}, 0.0),
    (boxed("[" + ", ".join(["9**9**9"] * 50) + "]"), "[" + ", ".join(["2.5"] * 50) + "]",
     {"reward_type": "number_list"}, 0.0),
    (T + "\\boxed{" * 50_000, "4", {"reward_type": "numeric"}, 0.0),
    ("<think>" + "blah " * 400_000 + "</think>" + "blah " * 400_000 + "\\boxed{9}", "9", {"reward_type": "numeric"},
     1.0),
]


@pytest.mark.parametrize("response, gold, extra, acc", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_every_call_returns_within_five_seconds(response, gold, extra, acc):
    # A correctness bound (the issue's 5 s per call), not a benchmark: the grader's own budget is 4.5 s.
    start = time.monotonic()
    result = compute_score("src", response, gold, extra)
    elapsed = time.monotonic() - start
    check_shape(result)
    assert elapsed < 5.0, (elapsed, result)
    assert not result["reason"].startswith("internal_error"), result
    assert result["acc"] == acc, result
    assert result["route"] in ("grader", "grader_failed", "unparseable"), result


def test_a_worker_stuck_past_its_deadline_is_killed_and_replaced():
    pool = sandbox.pool()
    assert pool.wait_ready(180)
    kills = pool.kills
    # Work stuck in C code never returns to the worker's own timer; a stopped process behaves the same way.
    workers = list(pool.idle.queue)
    for worker in workers:
        os.kill(worker.proc.pid, signal.SIGSTOP)
    start = time.monotonic()
    try:
        correct, reason = pool.run({"given": "x+1", "golds": ["1+x"], "mode": "plain", "tolerance": None},
                                   deadline=time.monotonic() + 1.0, limit_s=0.5)
        elapsed = time.monotonic() - start
    finally:
        for worker in workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker.proc.pid, signal.SIGCONT)
    assert (correct, reason) == (None, sandbox.TIMEOUT)
    assert elapsed < 2.0 and pool.kills == kills + 1
    assert pool.wait_ready(180)  # a replacement started by itself
    verdict_cache.clear()
    calls = pool.calls
    assert score(boxed("x+1"), "1+x", "math")["reason"] == "grade_answer"
    assert pool.calls == calls + 1  # graded by a worker again


def test_a_dead_worker_is_replaced_and_the_answer_still_graded():
    pool = sandbox.pool()
    assert pool.wait_ready(180)
    victim = pool.idle.queue[-1]  # the next one lent (LIFO)
    os.kill(victim.proc.pid, signal.SIGKILL)
    victim.proc.wait(timeout=10)
    verdict_cache.clear()
    result = score(boxed("x+1"), "1+x", "math")
    assert (result["route"], result["reason"]) == ("grader", "grade_answer")
    assert pool.wait_ready(180)  # the dead one was replaced


def test_worker_verdicts_are_cached_but_timeouts_are_not():
    pool = sandbox.pool()
    verdict_cache.clear()
    calls = pool.calls
    for _ in range(3):  # the 8 rollouts of a question often box the same answer: one worker call
        assert score(boxed("\\sqrt{8}"), "2\\sqrt{2}", "math")["acc"] == 1.0
    assert pool.calls == calls + 1 and verdict_cache.hits == 2
    for _ in range(2):
        assert score(boxed("9**9**9**9"), "2.5", "numeric")["route"] == "grader_failed"
    assert pool.calls == calls + 3


def test_a_slow_grading_in_a_worker_is_stopped_by_its_own_timer():
    pool = sandbox.pool()
    kills = pool.kills
    correct, reason = pool.run({"given": "10**10**8", "golds": ["x"], "mode": "plain", "tolerance": None},
                               deadline=time.monotonic() + GRADER_BUDGET_S, limit_s=0.5)
    assert (correct, reason) == (None, sandbox.TIMEOUT) and pool.kills == kills  # the worker lives on


def test_answers_are_graded_from_executor_threads():
    """verl calls the reward from executor threads (no signals there): the workers do the timing."""
    jobs = [(boxed("\\frac{\\sqrt{2}}{2}"), "\\sqrt{2}/2", "math", 1.0), (boxed("x^2"), "x^3", "math", 0.0),
            (boxed("B"), "B", "multiple_choice", 1.0), (boxed("2\\sqrt{2}"), "2.828", "numeric", 0.0),
            (boxed("9**9**9**9"), "2.5", "numeric", 0.0)] * 3
    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(lambda j: compute_score("src", j[0], j[1], {"reward_type": j[2]}), jobs))
    assert [r["acc"] for r in results] == [j[3] for j in jobs]


# ------------------------------------------------------------------------------------------------ quick == full
_NUMBERS = st.one_of(st.integers(-10**6, 10**6).map(str), st.decimals(-1000, 1000, places=3).map(str),
                     st.integers(0, 99).map(lambda i: f".{i}"), st.integers(0, 99).map(lambda i: f"0{i}"),
                     st.integers(0, 99).map(lambda i: f"+{i}.0"))
_LETTERS = st.sampled_from(["B", "b", "(B)", "[C]", "A.", "\\text{D}", "$B$", "B. dog", "(C) cow", "A or B", "AB",
                            "a cat", "12", "x", "(B) dog"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pred=_NUMBERS, golds=st.lists(_NUMBERS, min_size=1, max_size=2),
       tolerance=st.sampled_from([None, 0.01, 0.5]))
def test_the_in_process_shortcut_agrees_with_the_full_grader_on_numbers(pred, golds, tolerance):
    quick = quick_grade(pred, golds, "plain", tolerance)
    assert quick is None or quick[0] == grade(pred, golds, "plain", tolerance)[0]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pred=_LETTERS, golds=st.lists(_LETTERS, min_size=1, max_size=2))
def test_the_in_process_shortcut_agrees_with_the_full_grader_on_letters(pred, golds):
    quick = quick_grade(pred, golds, "choice")
    assert quick is None or quick[0] == grade(pred, golds, "choice")[0]


def test_boxed_answer_is_mathrulers():
    assert boxed_answer("a \\boxed{1} b \\boxed{2}") == "2"
    assert boxed_answer("\\boxed{ {x} }") == "{x}"
    assert boxed_answer("\\boxed{1} \\boxed{2") is None
    assert boxed_answer("\\boxed{None}") == "None" and boxed_answer("no box") is None


# ------------------------------------------------------------------------------------------------ robustness
WEIRD = [None, "", "   ", 0, 1.5, float("nan"), float("inf"), True, [], [None], {}, {"a": 1}, b"\xff\xfe", np.array([]),
         np.array([1, 2]), ["A", 3, None], "x" * 200_000, object()]


@pytest.mark.parametrize("reward_type", [None, "multiple_choice", "numeric", "number_list", "list_string_match",
                                         "counting", "math", "string_match", "llm_judge", 17, ["numeric"]])
def test_never_raises_on_odd_inputs(reward_type):
    responses = [None, "", boxed("4"), "<think>", "\\boxed{", boxed("}{"), boxed("\\frac{1}{0}"), boxed("1/0"),
                 boxed("1e999"), boxed("9" * 400), T + "Answer: " * 1000, 12345, b"\\boxed{3}"]
    for gold in WEIRD:
        for response in responses:
            result = compute_score("src", response, gold,
                                   {"reward_type": reward_type, "tolerance": "bad", "choices": 5})
            check_shape(result)
            assert not result["reason"].startswith("internal_error"), (response, gold, result)
    for extra in (None, "not a dict", {"reward_type": None}, {"choices": None, "question": None}):
        check_shape(compute_score(None, boxed("4"), "4", extra))


_TYPES = st.sampled_from([None, "multiple_choice", "numeric", "number_list", "list_string_match", "counting",
                          "math", "string_match", "web_action"])
_GOLDS = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(),
                   st.lists(st.text(max_size=8), max_size=3), st.lists(st.integers(), max_size=4))
_PIECES = st.sampled_from(["<think>", "</think>", "\\boxed{", "}", "{", "Answer:", "(B)", "\n", " ", "1,234",
                           "\\frac{1}{2}", "%", "-", "A", "x^2", "\u2212", "e5", "B.", "°", "\\circ", "**", "^"])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=25), gold=_GOLDS, rtype=_TYPES)
def test_random_responses_always_give_a_well_formed_result(pieces, gold, rtype):
    result = compute_score("src", "".join(pieces), gold, {"reward_type": rtype, "tolerance": 0.1})
    check_shape(result)
    assert not result["reason"].startswith("internal_error"), result


# ------------------------------------------------------------------------------------------------ metrics
def test_route_shares_count_each_route_and_the_judge_calls():
    results = ([{"route": "grader"}] * 4 + [{"route": "judge"}, {"route": "judge_cached"}, {"route": "unparseable"}]
               + ["judge_failed"])
    shares = route_shares(results)
    assert shares["reward/route_grader"] == 0.5 and shares["reward/route_grader_count"] == 4.0
    assert shares["reward/route_judge_failed"] == 1 / 8 and shares["reward/n_scored"] == 8.0
    assert shares["reward/judge_calls"] == 2.0  # a cached verdict is not a call
    assert shares["reward/judge_share"] == 3 / 8
    assert sum(shares[f"reward/route_{r}"] for r in ROUTES) == pytest.approx(1.0)
    columns = {"route": np.array(["grader", "judge"], dtype=object), "acc": np.array([1.0, 0.0])}
    assert route_shares(columns, prefix="val/")["val/route_judge"] == 0.5
    assert route_shares([])["reward/route_grader"] == 0.0 and route_shares([])["reward/judge_share"] == 0.0


def test_route_metrics_option_adds_one_flag_per_route():
    result = compute_score("src", boxed("4"), "4", {"reward_type": "numeric"}, route_metrics=True)
    assert result["route_grader"] == 1.0 and result["route_judge"] == 0.0
    assert set(result) == set(RESULT_KEYS) | {f"route_{r}" for r in ROUTES}


# ------------------------------------------------------------------------------------------------ verl's plumbing
class _FakeTokenizer:
    """Decodes the token ids of the test: id i -> self.texts[i] (one 'token' per response)."""

    def __init__(self, texts):
        self.texts = texts

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.texts[int(i)] for i in ids)


@pytest.mark.parametrize("path", ["pkg://recipe.zppo.reward", "recipe/zppo/reward/__init__.py"])
def test_verl_loads_and_calls_the_reward(path):
    import asyncio

    import torch
    from omegaconf import OmegaConf
    from verl import DataProto
    from verl.trainer.ppo.metric_utils import process_validation_metrics
    from verl.trainer.ppo.reward import get_custom_reward_fn, load_reward_manager

    if not path.startswith("pkg://"):
        path = os.path.join(os.path.dirname(__file__), "..", "..", path)
    config = OmegaConf.create({"reward": {
        "custom_reward_function": {"path": path, "name": "compute_score", "reward_kwargs": {"route_metrics": False}},
        "reward_manager": {"source": "register", "name": "naive", "module": {"path": None, "name": "x"}},
    }})
    fn = get_custom_reward_fn(config)
    assert fn("src", boxed("B"), "B", {"reward_type": "multiple_choice"})["acc"] == 1.0

    texts = [boxed("B"), boxed("45°"), "<think>cut off", T + "it is the dog", boxed("\\frac{\\sqrt{3}}{2}")]
    golds = ["B", "45", "3", "dog", "\\sqrt{3}/2"]
    types = ["multiple_choice", "numeric", "numeric", "string_match", "math"]
    manager = load_reward_manager(config, _FakeTokenizer(texts))
    loop = asyncio.new_event_loop()
    manager.loop = loop
    outputs = []
    try:
        for i in range(len(texts)):
            data = DataProto.from_dict(
                tensors={"responses": torch.tensor([[i, 0]]), "attention_mask": torch.tensor([[1, 1, 1, 0]]),
                         "prompts": torch.tensor([[7, 7]])},
                non_tensors={"data_source": np.array(["src"], dtype=object),
                             "reward_model": np.array([{"ground_truth": golds[i]}], dtype=object),
                             "extra_info": np.array([{"reward_type": types[i]}], dtype=object)},
            )
            outputs.append(loop.run_until_complete(manager.run_single(data)))
    finally:
        loop.close()
    assert [o["reward_score"] for o in outputs] == [1.0, 1.0, 0.0, 0.0, 1.0]
    # what RewardLoopManager.compute_rm_score does with the extra info: columns from the FIRST sample's keys
    infos = [o["reward_extra_info"] for o in outputs]
    keys = list(infos[0].keys())
    columns = {k: np.array([info[k] for info in infos]) for k in keys}
    assert [str(r) for r in columns["route"]] == ["grader", "grader", "unparseable", "unparseable", "grader"]
    assert columns["acc"].dtype == np.float64
    # validation: numeric keys are averaged per data source, strings skipped, pred used for majority votes
    metrics = process_validation_metrics(["src"] * 5, ["u1", "u1", "u2", "u2", "u3"],
                                         {k: list(v) for k, v in columns.items()})
    assert set(metrics["src"]) == {"score", "acc"}
    assert route_shares(columns)["reward/route_unparseable"] == 0.4


def test_the_trainer_keeps_the_routes_of_the_teacher_responses_it_scores():
    """Teacher responses are scored in the trainer's process (the judge's calls for them are logged per step as
    zppo/reward/teacher_judge_calls and teacher_judge_share)."""
    from recipe.zppo.trainer.zppo_trainer import ZPPOTrainer

    trainer = object.__new__(ZPPOTrainer)  # only what _teacher_correct reads
    trainer._score_fn, trainer._teacher_routes = compute_score, []
    row = {"data_source": "src", "reward_model": {"ground_truth": "dog"}, "extra_info": {"reward_type": "string_match"}}
    assert trainer._teacher_correct(boxed("Dog"), row) is True
    assert trainer._teacher_correct(T + "a cat", row) is False
    assert trainer._teacher_routes == ["grader", "unparseable"]
