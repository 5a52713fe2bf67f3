"""The reward: verifiers per answer type, routes, judge fallback (real loopback HTTP servers), metrics, and
verl 0.9.1's own reward plumbing calling ``recipe.zppo.reward.compute_score`` by path and name."""

from __future__ import annotations

import json
import math
import os
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from fractions import Fraction
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recipe.zppo.reward import RESULT_KEYS, compute_score, route_shares
from recipe.zppo.reward import judge as judge_mod
from recipe.zppo.reward.judge import JudgeConfig, judge_config_from, parse_verdict
from recipe.zppo.reward.verifiers import auto_type, options_of, resolve_reward_type

T = "<think>I looked at the image and worked it out.</think>\n"


def boxed(answer: str) -> str:
    return T + f"The final answer is \\boxed{{{answer}}}."


def check_shape(result: dict) -> None:
    """The contract verl relies on: same keys every time, float-or-str values, score in [0, 1]."""
    assert tuple(result) == RESULT_KEYS
    assert isinstance(result["score"], float) and 0.0 <= result["score"] <= 1.0
    assert result["acc"] in (0.0, 1.0) and isinstance(result["acc"], float)
    assert result["route"] in ("parser", "judge", "unparseable", "judge_unavailable")
    for key in ("route", "reason", "pred", "reward_type"):
        assert isinstance(result[key], str)


pytestmark = pytest.mark.usefixtures("fresh_judge")  # tests/unit/conftest.py


MC_QUESTION = "What animal is shown?\nA. cat\nB. dog\nC. cow\nD. hen"

# (reward_type or None, response, ground truth, extra_info, expected acc, expected route)
CASES = [
    # --- multiple_choice: letter or option text, options from extra_info or the question text
    ("multiple_choice", boxed("B"), "B", {}, 1.0, "parser"),
    ("multiple_choice", boxed("(B)"), "B", {}, 1.0, "parser"),
    ("multiple_choice", boxed("b"), "B", {}, 1.0, "parser"),
    ("multiple_choice", boxed("\\text{B. dog}"), "B", {"question": MC_QUESTION}, 1.0, "parser"),
    ("multiple_choice", boxed("Option C"), "C", {}, 1.0, "parser"),
    ("multiple_choice", boxed("dog"), "B", {"question": MC_QUESTION}, 1.0, "parser"),
    ("multiple_choice", boxed("A dog"), "B", {"question": MC_QUESTION}, 1.0, "parser"),  # article dropped
    ("multiple_choice", boxed("cat"), "B", {"question": MC_QUESTION}, 0.0, "parser"),
    ("multiple_choice", boxed("B"), "dog", {"choices": ["cat", "dog", "cow"]}, 1.0, "parser"),
    ("multiple_choice", boxed("B"), "dog", {"choices": {"A": "cat", "B": "dog"}}, 1.0, "parser"),
    ("multiple_choice", boxed("C"), "dog", {"choices": np.array(["cat", "dog", "cow"])}, 0.0, "parser"),
    ("multiple_choice", boxed("B"), "(B) dog", {}, 1.0, "parser"),
    ("multiple_choice", boxed("A"), "B", {}, 0.0, "parser"),
    ("multiple_choice", boxed("A or B"), "B", {}, 0.0, "parser"),  # hedging between letters is wrong
    ("multiple_choice", boxed("A, B, C, D"), "B", {}, 0.0, "parser"),
    ("multiple_choice", T + "Answer: B", "B", {}, 1.0, "parser"),
    ("multiple_choice", T + "(B)", "B", {}, 1.0, "parser"),
    ("multiple_choice", T + "B.", "B", {}, 1.0, "parser"),
    ("multiple_choice", boxed("a horse"), "B", {"question": MC_QUESTION}, 0.0, "unparseable"),  # no choice named
    # --- numeric: units, percent, separators, fractions vs decimals, scientific, unicode minus, tolerance
    ("numeric", boxed("1,234"), "1234", {}, 1.0, "parser"),
    ("numeric", boxed("1{,}234.50"), "1234.5", {}, 1.0, "parser"),
    ("numeric", boxed("12 cm"), "12", {}, 1.0, "parser"),
    ("numeric", boxed("\\$5"), "5", {}, 1.0, "parser"),
    ("numeric", boxed("45^\\circ"), "45", {}, 1.0, "parser"),
    ("numeric", boxed("50\\%"), "0.5", {}, 1.0, "parser"),
    ("numeric", boxed("0.5"), "50%", {}, 1.0, "parser"),
    ("numeric", boxed("\\frac{3}{4}"), "0.75", {}, 1.0, "parser"),
    ("numeric", boxed("0.33"), "1/3", {}, 1.0, "parser"),  # decimal of >= 2 places rounds the fraction
    ("numeric", boxed("0.3"), "1/3", {}, 0.0, "parser"),
    ("numeric", boxed("1.5e3"), "1500", {}, 1.0, "parser"),
    ("numeric", boxed("1.5 \\times 10^{3}"), "1500", {}, 1.0, "parser"),
    ("numeric", boxed("\u22127"), "-7", {}, 1.0, "parser"),  # unicode minus
    ("numeric", boxed("7"), "-7", {}, 0.0, "parser"),
    ("numeric", boxed("x = 3.0"), "3", {}, 1.0, "parser"),
    ("numeric", boxed("78"), "78.5", {"tolerance": 0.01}, 1.0, "parser"),
    ("numeric", boxed("77"), "78.5", {"tolerance": 0.01}, 0.0, "parser"),
    ("numeric", boxed("78"), "78.5", {"tolerance": "1%"}, 1.0, "parser"),
    ("numeric", boxed("78"), "78.5", {}, 0.0, "parser"),
    ("numeric", boxed("0.04"), "0", {"tolerance": 0.05}, 1.0, "parser"),  # absolute when gold is 0
    ("numeric", boxed("2\\sqrt{3}"), "3.4641", {"tolerance": 0.001}, 1.0, "parser"),  # via math-verify
    ("numeric", boxed("five"), "5", {}, 1.0, "parser"),
    ("numeric", boxed("3 or 4"), "3", {}, 0.0, "parser"),
    ("numeric", boxed("1,2"), "12", {}, 0.0, "parser"),  # not a thousands separator
    # --- counting
    ("counting", boxed("3"), "3", {}, 1.0, "parser"),
    ("counting", boxed("three apples"), 3, {}, 1.0, "parser"),
    ("counting", boxed("4"), 3, {}, 0.0, "parser"),
    ("counting", boxed("several"), "3", {}, 0.0, "unparseable"),
    # --- number_list: ordered
    ("number_list", boxed("[1, 2, 3]"), "[1, 2, 3]", {}, 1.0, "parser"),
    ("number_list", boxed("1, 2, 3"), [1, 2, 3], {}, 1.0, "parser"),
    ("number_list", boxed("(1; 2; 3)"), "1,2,3", {}, 1.0, "parser"),
    ("number_list", boxed("3, 2, 1"), "[1, 2, 3]", {}, 0.0, "parser"),
    ("number_list", boxed("1, 2"), "[1, 2, 3]", {}, 0.0, "parser"),
    ("number_list", boxed("0.5, -2"), np.array([0.5, -2.0]), {}, 1.0, "parser"),
    ("number_list", boxed("one two"), "[1, 2]", {}, 1.0, "parser"),
    ("number_list", boxed("left, right"), "[1, 2]", {}, 0.0, "unparseable"),
    # --- list_string_match: any acceptable answer
    ("list_string_match", boxed("Coconut body-butter"), "['body butter', 'coconut body butter']", {}, 1.0, "parser"),
    ("list_string_match", boxed("body butter"), ["body butter", "lotion"], {}, 1.0, "parser"),
    ("list_string_match", boxed("soap"), '["body butter", "lotion"]', {}, 0.0, "parser"),
    # --- string_match
    ("string_match", boxed("\\text{The Eiffel Tower}"), "eiffel tower", {}, 1.0, "parser"),
    ("string_match", boxed("Yes, it is."), "yes", {}, 1.0, "parser"),
    ("string_match", boxed("No"), "yes", {}, 0.0, "parser"),
    ("string_match", boxed("Café"), "cafe", {}, 1.0, "parser"),
    ("string_match", boxed("-3"), "3", {}, 0.0, "parser"),  # the sign is not punctuation
    ("string_match", boxed("C++"), "C", {}, 0.0, "parser"),
    ("string_match", boxed("5.0"), "5", {}, 1.0, "parser"),
    ("string_match", boxed("12 cm"), "12", {}, 1.0, "parser"),
    ("string_match", boxed("3 Idiots"), "3 Musketeers", {}, 0.0, "parser"),  # same number, other words
    ("string_match", boxed("Seven Eleven"), "Seven Up", {}, 0.0, "parser"),
    ("exact_match", boxed("red"), "Red", {}, 1.0, "parser"),  # alias
    # --- math (math-verify for expressions)
    ("math", boxed("\\frac{\\sqrt{3}}{2}"), "\\sqrt{3}/2", {}, 1.0, "parser"),
    ("math", boxed("(x+1)^2"), "x^2+2x+1", {}, 1.0, "parser"),
    ("math", boxed("x^2+1"), "x^2+2x+1", {}, 0.0, "parser"),
    ("math", boxed("\\dfrac{1}{2}"), "\\frac{1}{2}", {}, 1.0, "parser"),
    ("math", boxed("0.5"), "\\frac12", {}, 1.0, "parser"),
    ("math", boxed("[1, 3)"), "[1,3)", {}, 1.0, "parser"),
    # --- missing / unknown reward type: chosen from the gold
    (None, boxed("C"), "C", {"question": "Pick one.\n(A) x\n(B) y\n(C) z"}, 1.0, "parser"),
    (None, boxed("1,000"), "1000", None, 1.0, "parser"),
    (None, boxed("2\\pi"), "2\\pi", {}, 1.0, "parser"),
    (None, boxed("\\frac{\\pi}{2}"), "\\pi/2", {}, 1.0, "parser"),
    (None, boxed("blue"), "Blue", {}, 1.0, "parser"),
    ("grounding", boxed("blue"), "Blue", {}, 1.0, "parser"),  # unsupported type: auto
    # --- adversarial: format
    ("numeric", T + "\\boxed{3} no wait \\boxed{4}", "4", {}, 1.0, "parser"),  # several boxes: the last
    ("numeric", T + "\\boxed{4} no wait \\boxed{3}", "4", {}, 0.0, "parser"),
    ("numeric", "<think>\\boxed{4}</think>\nI am not sure.\nMaybe later I will know.", "4", {}, 0.0, "unparseable"),
    ("numeric", "<think>it is \\boxed{4} and", "4", {}, 0.0, "unparseable"),  # unclosed think
    ("numeric", "", "4", {}, 0.0, "unparseable"),
    ("numeric", None, "4", {}, 0.0, "unparseable"),
    ("numeric", boxed("4"), None, {}, 0.0, "parser"),  # no gold: never correct
    ("numeric", boxed("4"), "", {}, 0.0, "parser"),
    ("numeric", boxed("4"), float("nan"), {}, 0.0, "parser"),
    # --- non-string ground truths
    ("numeric", boxed("4"), 4, {}, 1.0, "parser"),
    ("numeric", boxed("0.25"), 0.25, {}, 1.0, "parser"),
    ("numeric", boxed("4"), np.int64(4), {}, 1.0, "parser"),
    ("numeric", boxed("4"), ["4", "four"], {}, 1.0, "parser"),
    ("string_match", boxed("True"), True, {}, 1.0, "parser"),
    (None, boxed("4"), 4, {}, 1.0, "parser"),
]


@pytest.mark.parametrize("reward_type, response, gold, extra, acc, route", CASES)
def test_each_reward_type_scores_the_documented_cases(reward_type, response, gold, extra, acc, route):
    if reward_type is not None:
        extra = dict(extra or {}, reward_type=reward_type)
    result = compute_score("src", response, gold, extra)
    check_shape(result)
    assert (result["acc"], result["route"]) == (acc, route), result
    assert result["score"] == result["acc"]


WEIRD = [None, "", "   ", 0, 1.5, float("nan"), float("inf"), True, [], [None], {}, {"a": 1}, b"\xff\xfe", np.array([]),
         np.array([1, 2]), ["A", 3, None], "x" * 200_000, object()]


@pytest.mark.parametrize("reward_type", [None, "multiple_choice", "numeric", "number_list", "list_string_match",
                                         "counting", "math", "string_match", 17, ["numeric"]])
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


def test_two_megabyte_responses_are_scored_like_short_ones():
    # How long these take is measured by benchmarks/bench_reward.py (goal: under 5 s), not asserted here.
    filler = "The figure shows many things. " * 70_000  # ~2 MB
    result = compute_score("src", "<think>" + filler + "</think>" + filler + "\\boxed{7}", "7",
                           {"reward_type": "numeric"})
    assert result["acc"] == 1.0
    result = compute_score("src", "<think>" + filler, "7", {"reward_type": "numeric"})
    assert (result["acc"], result["reason"]) == (0.0, "unclosed_think")
    result = compute_score("src", T + filler, "7", {"reward_type": "string_match"})
    assert result["route"] == "unparseable"


def test_pred_is_capped():
    result = compute_score("src", boxed("a" * 3000), "a", {"reward_type": "string_match"})
    assert len(result["pred"]) <= 512 and result["acc"] == 0.0


def test_math_verify_timeout_is_bounded(monkeypatch):
    monkeypatch.setenv("ZPPO_MATH_VERIFY_TIMEOUT_S", "0.5")
    start = time.perf_counter()
    result = compute_score("src", boxed("9^{9^{9^{9}}}"), "1", {"reward_type": "math"})
    assert result["acc"] == 0.0 and result["reason"] == "math_verify_timeout"
    assert time.perf_counter() - start < 10.0
    # the pool recovers: the next comparison works
    assert compute_score("src", boxed("\\sqrt{4}"), "2", {"reward_type": "math"})["acc"] == 1.0


def test_math_answers_are_scored_from_executor_threads():
    """verl calls the reward function from executor threads (math-verify's signals do not work there)."""
    jobs = [(boxed("\\frac{\\sqrt{2}}{2}"), "\\sqrt{2}/2", "math", 1.0), (boxed("x^2"), "x^3", "math", 0.0),
            (boxed("B"), "B", "multiple_choice", 1.0), (boxed("2\\sqrt{2}"), "2.828", "numeric", 0.0)] * 3
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda j: compute_score("src", j[0], j[1], {"reward_type": j[2]}), jobs))
    assert [r["acc"] for r in results] == [j[3] for j in jobs]


def test_reward_type_is_normalised_or_inferred_from_the_gold():
    assert resolve_reward_type({"reward_type": " Multiple_Choice "}) == "multiple_choice"
    assert resolve_reward_type({"reward_type": "search"}) == "string_match"
    assert resolve_reward_type({"reward_type": "web_action"}) == "auto"
    assert resolve_reward_type(None) == "auto"
    assert [auto_type(g) for g in ("B", "(C)", "12", "\\sqrt{2}", "Paris", None)] == [
        "multiple_choice", "multiple_choice", "numeric", "math", "string_match", "string_match"]


def test_options_are_read_from_the_question_or_the_choices_field():
    assert options_of({"question": MC_QUESTION}) == {"A": "cat", "B": "dog", "C": "cow", "D": "hen"}
    assert options_of({"question": "Choose: (A) red (B) blue (C) green"}) == {"A": "red", "B": "blue", "C": "green"}
    assert options_of({"choices": "['x', 'y']"}) == {"A": "x", "B": "y"}
    assert options_of({"question": "I. think so.\nWhat is it?"}) == {}  # prose is not options
    assert options_of({"choices": ["A. cat", "B. dog"]}) == {"A": "cat", "B": "dog"}


# ---------------------------------------------------------------------------------------------------------
# Property-based: numerically equal answers in different spellings score 1, clearly different ones 0
# ---------------------------------------------------------------------------------------------------------
def _spellings(value: int) -> list[str]:
    sign = "-" if value < 0 else ""
    mag = abs(value)
    out = [str(value), f"{value:,}", f"{value}.0", f"{value} units", f"\\text{{{value}}}", f"${value}$",
           f"{sign}{mag:,}".replace(",", "{,}"), f"x = {value}"]
    if value < 0:
        out.append("\u2212" + str(mag))
    if mag != 0 and mag % 1000 == 0:
        out.append(f"{value // 1000}e3")
        out.append(f"{value // 1000}.0 \\times 10^{{3}}")
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.integers(min_value=-10**9, max_value=10**9), data=st.data())
def test_equal_numbers_any_spelling_score_one(value, data):
    pred = data.draw(st.sampled_from(_spellings(value)))
    gold = data.draw(st.sampled_from([str(value), value, float(value)]))
    rtype = data.draw(st.sampled_from(["numeric", None, "counting", "math"]))
    result = compute_score("src", boxed(pred), gold, {"reward_type": rtype} if rtype else None)
    assert result["acc"] == 1.0, (pred, gold, rtype, result)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(num=st.integers(-999, 999), den=st.integers(1, 64), data=st.data())
def test_a_fraction_and_its_decimal_spellings_score_one(num, den, data):
    frac = Fraction(num, den)
    spelled = data.draw(st.sampled_from([f"{frac.numerator}/{frac.denominator}",
                                         f"\\frac{{{frac.numerator}}}{{{frac.denominator}}}",
                                         f"{float(frac):.10f}"]))
    gold = data.draw(st.sampled_from([f"{frac.numerator}/{frac.denominator}", repr(float(frac))]))
    assert compute_score("src", boxed(spelled), gold, {"reward_type": "numeric"})["acc"] == 1.0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(a=st.floats(-1e6, 1e6, allow_nan=False), b=st.floats(-1e6, 1e6, allow_nan=False),
       rtype=st.sampled_from(["numeric", None, "math"]))
def test_clearly_different_numbers_score_zero(a, b, rtype):
    if abs(a - b) <= 1e-3 * max(1.0, abs(a), abs(b)):
        return
    result = compute_score("src", boxed(repr(a)), repr(b), {"reward_type": rtype} if rtype else None)
    assert result["acc"] == 0.0, (a, b, result)


@settings(max_examples=100, deadline=None)
@given(gold=st.floats(-1e4, 1e4, allow_nan=False).filter(lambda g: abs(g) > 1e-3),
       tol=st.sampled_from([0.01, 0.05, 0.1]), frac=st.floats(0, 0.98))
def test_tolerance_is_relative(gold, tol, frac):
    inside = gold * (1 + tol * frac)
    outside = gold * (1 + tol * 1.5)
    extra = {"reward_type": "numeric", "tolerance": tol}
    assert compute_score("src", boxed(repr(inside)), repr(gold), extra)["acc"] == 1.0
    assert compute_score("src", boxed(repr(outside)), repr(gold), extra)["acc"] == 0.0


# ---------------------------------------------------------------------------------------------------------
# Judge fallback against real loopback HTTP servers
# ---------------------------------------------------------------------------------------------------------
class _OpenAIHandler(BaseHTTPRequestHandler):
    """Answers like an OpenAI chat-completions endpoint; says CORRECT when the gold text is in the response."""

    def log_message(self, *args):
        pass

    def do_POST(self):
        server = self.server
        counted = True
        with server.lock:
            server.requests.append(self.path)
            server.in_flight += 1
            server.max_in_flight = max(server.max_in_flight, server.in_flight)
        try:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            server.bodies.append(body)
            server.auth.append(self.headers.get("Authorization"))
            if server.delay:
                time.sleep(server.delay)
            # Out of flight before the reply is sent: once the client has the reply it may send its next request
            # at once, and counting both would report one more in flight than the client ever had.
            with server.lock:
                server.in_flight -= 1
                counted = False
            if server.status != 200:
                self.send_response(server.status)
                self.end_headers()
                return
            user = body["messages"][-1]["content"]
            gold = user.split("Gold answer:\n", 1)[1].split("\n", 1)[0].strip()
            tail = user.split("End of the student's response:\n", 1)[1]
            verdict = server.reply or ("CORRECT" if gold.lower() in tail.lower() else "INCORRECT")
            payload = {"id": "x", "object": "chat.completion", "model": body["model"],
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": verdict},
                                    "finish_reason": "stop"}]}
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        finally:
            if counted:
                with server.lock:
                    server.in_flight -= 1


@pytest.fixture
def judge_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OpenAIHandler)
    server.daemon_threads = True
    server.lock = threading.Lock()
    server.requests, server.bodies, server.auth = [], [], []
    server.in_flight = server.max_in_flight = 0
    server.delay, server.status, server.reply = 0.0, 200, None
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    yield server
    server.shutdown()
    server.server_close()


def judge_kwargs(url: str, **extra) -> dict:
    kw = {"judge_url": url, "judge_model": "tiny-judge", "judge_timeout_s": 2, "judge_max_retries": 1}
    kw.update(extra)
    return kw


UNPARSEABLE = T + "The object on the left is larger than the one on the right,\nso it must be the dog."


def test_judge_decides_only_unparseable_answers(judge_server):
    kw = judge_kwargs(judge_server.url)
    extra = {"reward_type": "string_match", "question": "What animal?"}
    result = compute_score("src", UNPARSEABLE, "dog", extra, **kw)
    check_shape(result)
    assert (result["route"], result["acc"], result["reason"]) == ("judge", 1.0, "judge")
    result = compute_score("src", UNPARSEABLE, "cat", extra, **kw)
    assert (result["route"], result["acc"]) == ("judge", 0.0)
    assert judge_server.requests == ["/v1/chat/completions"] * 2
    body = judge_server.bodies[0]
    assert body["model"] == "tiny-judge" and body["temperature"] == 0.0
    assert "What animal?" in body["messages"][-1]["content"]
    # a parseable answer never reaches the judge; nor does a cut-off or empty response
    assert compute_score("src", boxed("dog"), "dog", extra, **kw)["route"] == "parser"
    assert compute_score("src", "<think>the dog", "dog", extra, **kw)["route"] == "unparseable"
    assert compute_score("src", "", "dog", extra, **kw)["route"] == "unparseable"
    # an answer the verifier cannot read (no number for a numeric type) does
    assert compute_score("src", boxed("many"), "7", {"reward_type": "counting"}, **kw)["route"] == "judge"
    assert len(judge_server.requests) == 3


def test_judge_is_off_by_default(judge_server):
    result = compute_score("src", UNPARSEABLE, "dog", {"reward_type": "string_match"})
    assert (result["route"], result["reason"]) == ("unparseable", "no_answer")
    assert judge_server.requests == []
    off = judge_kwargs(judge_server.url, judge_enable=False)
    assert compute_score("src", UNPARSEABLE, "dog", {}, **off)["route"] == "unparseable"
    assert judge_server.requests == []


def test_judge_verdict_is_cached_per_question_and_answer(judge_server):
    kw = judge_kwargs(judge_server.url)
    first = compute_score("src", UNPARSEABLE, "dog", {"question": "Q"}, **kw)
    second = compute_score("src", UNPARSEABLE, "dog", {"question": "Q"}, **kw)
    assert (first["reason"], second["reason"]) == ("judge", "judge_cached")
    assert first["acc"] == second["acc"] == 1.0
    assert len(judge_server.requests) == 1
    compute_score("src", UNPARSEABLE, "dog", {"question": "another question"}, **kw)
    assert len(judge_server.requests) == 2


def test_judge_is_configured_from_the_environment_with_its_api_key(judge_server, monkeypatch):
    monkeypatch.setenv("ZPPO_JUDGE_URL", judge_server.url + "/chat/completions")
    monkeypatch.setenv("ZPPO_JUDGE_MODEL", "env-judge")
    monkeypatch.setenv("ZPPO_JUDGE_API_KEY_ENV", "MY_JUDGE_KEY")
    monkeypatch.setenv("MY_JUDGE_KEY", "sekret")
    result = compute_score("src", UNPARSEABLE, "dog", {})
    assert result["route"] == "judge"
    assert judge_server.bodies[-1]["model"] == "env-judge"
    assert judge_server.auth[-1] == "Bearer sekret"


def test_judge_config_is_read_from_reward_kwargs_with_defaults_for_bad_values():
    from omegaconf import OmegaConf

    assert judge_config_from({}, environ={}) is None
    assert judge_config_from({"judge_url": "http://h:1"}, environ={}) is None  # model missing: off
    cfg = judge_config_from({"judge": OmegaConf.create({"url": "http://h:1/", "model": "m", "timeout_s": "5",
                                                         "extra_body": {"chat_template_kwargs": {
                                                             "enable_thinking": False}}})},
                            environ={"ZPPO_JUDGE_MAX_RETRIES": "4"})
    assert cfg.endpoint == "http://h:1/v1/chat/completions"
    assert (cfg.timeout_s, cfg.max_retries) == (5.0, 4)
    assert json.loads(cfg.extra_body) == {"chat_template_kwargs": {"enable_thinking": False}}
    assert JudgeConfig(url="http://h/v1/chat/completions", model="m").endpoint == "http://h/v1/chat/completions"
    assert judge_config_from({"judge_url": "u", "judge_model": "m", "judge_timeout_s": "oops"},
                             environ={}).timeout_s == 30.0


@pytest.mark.parametrize("content, verdict", [
    ("CORRECT", True), ("INCORRECT", False), ("correct.", True), ("<think>maybe CORRECT</think>INCORRECT", False),
    ("The answer is NOT CORRECT", False), ("Incorrect. Wait, actually it is CORRECT", True), ("dunno", None),
    (None, None), ("<think>CORRECT", None),
])
def test_judge_verdict_is_parsed_from_its_reply(content, verdict):
    assert parse_verdict(content) == verdict


def test_judge_reply_without_a_verdict_is_unavailable_and_scores_zero(judge_server):
    judge_server.reply = "I would rather not say."
    result = compute_score("src", UNPARSEABLE, "dog", {}, **judge_kwargs(judge_server.url))
    assert (result["route"], result["reason"], result["score"]) == ("judge_unavailable", "judge_bad_reply", 0.0)


def test_judge_server_errors_are_retried_boundedly(judge_server):
    judge_server.status = 500
    result = compute_score("src", UNPARSEABLE, "dog", {}, **judge_kwargs(judge_server.url, judge_max_retries=2))
    assert (result["route"], result["reason"]) == ("judge_unavailable", "judge_http_500")
    assert len(judge_server.requests) == 3
    judge_server.status = 404  # a client error is not retried
    judge_mod.reset_clients()
    compute_score("src", UNPARSEABLE, "dog", {}, **judge_kwargs(judge_server.url, judge_max_retries=2))
    assert len(judge_server.requests) == 4


def test_judge_hanging_server_times_out():
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(16)  # accepts connections (kernel backlog) and never answers
    try:
        url = f"http://127.0.0.1:{hang.getsockname()[1]}/v1"
        start = time.perf_counter()
        result = compute_score("src", UNPARSEABLE, "dog", {},
                               **judge_kwargs(url, judge_timeout_s=0.3, judge_max_retries=1))
        elapsed = time.perf_counter() - start
        assert (result["route"], result["reason"], result["score"]) == ("judge_unavailable", "judge_timeout", 0.0)
        assert elapsed < 3.0
    finally:
        hang.close()


def test_judge_closed_port_is_a_connection_error_then_the_circuit_opens():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()  # nothing listens there now
    kw = judge_kwargs(f"http://127.0.0.1:{port}/v1", judge_max_retries=0, judge_fail_threshold=2, judge_cooldown_s=60)
    reasons = [compute_score("src", UNPARSEABLE, "dog", {}, **kw)["reason"] for _ in range(4)]
    # That these fail at once (no timeout waited) is measured by benchmarks/bench_reward.py.
    assert reasons == ["judge_connection_error", "judge_connection_error", "judge_circuit_open", "judge_circuit_open"]
    shares = route_shares([compute_score("src", UNPARSEABLE, "dog", {}, **kw),
                           compute_score("src", boxed("dog"), "dog", {}, **kw)])
    assert shares["reward/route_judge_unavailable"] == 0.5 and shares["reward/route_judge_unavailable_count"] == 1.0


def test_judge_requests_in_flight_never_exceed_the_limit(judge_server):
    judge_server.delay = 0.15
    kw = judge_kwargs(judge_server.url, judge_max_concurrency=2)
    responses = [T + f"I think it is probably the animal number {i}.\nHard to say more than that." for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda r: compute_score("src", r, "dog", {}, **kw), responses))
    assert all(r["route"] == "judge" for r in results)
    assert len(judge_server.requests) == 8
    assert judge_server.max_in_flight <= 2


# ---------------------------------------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------------------------------------
def test_route_shares_are_fractions_of_the_scored_answers():
    results = [{"route": "parser"}] * 3 + [{"route": "judge"}, {"route": "unparseable"}] + ["judge_unavailable"] * 3
    shares = route_shares(results)
    assert shares["reward/route_parser"] == 3 / 8 and shares["reward/route_judge_unavailable"] == 3 / 8
    assert shares["reward/route_parser_count"] == 3.0 and shares["reward/n_scored"] == 8.0
    routes = ("parser", "judge", "unparseable", "judge_unavailable")
    assert math.isclose(sum(shares[f"reward/route_{r}"] for r in routes), 1.0)
    columns = {"route": np.array(["parser", "judge"], dtype=object), "acc": np.array([1.0, 0.0])}
    assert route_shares(columns, prefix="val/")["val/route_judge"] == 0.5
    assert route_shares([])["reward/route_parser"] == 0.0


def test_route_metrics_option_adds_one_flag_per_route():
    result = compute_score("src", boxed("4"), "4", {"reward_type": "numeric"}, route_metrics=True)
    assert result["route_parser"] == 1.0 and result["route_judge"] == 0.0
    assert set(result) == set(RESULT_KEYS) | {
        "route_parser", "route_judge", "route_unparseable", "route_judge_unavailable"}


# ---------------------------------------------------------------------------------------------------------
# verl 0.9.1's own plumbing: load by path/name, call through the naive reward manager, build the batch
# ---------------------------------------------------------------------------------------------------------
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

    texts = [boxed("B"), boxed("12 cm"), "<think>cut off", UNPARSEABLE, boxed("\\frac{\\sqrt{3}}{2}")]
    golds = ["B", "12", "3", "dog", "\\sqrt{3}/2"]
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
    assert [str(r) for r in columns["route"]] == ["parser", "parser", "unparseable", "unparseable", "parser"]
    assert columns["acc"].dtype == np.float64
    # validation: numeric keys are averaged per data source, strings skipped, pred used for majority votes
    metrics = process_validation_metrics(["src"] * 5, ["u1", "u1", "u2", "u2", "u3"],
                                         {k: list(v) for k, v in columns.items()})
    assert set(metrics["src"]) == {"score", "acc"}
    assert route_shares(columns)["reward/route_unparseable"] == 0.4


_TYPES = st.sampled_from([None, "multiple_choice", "numeric", "number_list", "list_string_match", "counting",
                          "math", "string_match", "web_action"])
_GOLDS = st.one_of(st.none(), st.text(max_size=30), st.integers(), st.floats(),
                   st.lists(st.text(max_size=8), max_size=3),
                   st.lists(st.integers(), max_size=4))
_PIECES = st.sampled_from(["<think>", "</think>", "\\boxed{", "}", "{", "Answer:", "(B)", "<answer>", "</answer>",
                           "\n", " ", "1,234", "\\frac{1}{2}", "%", "-", "A", "x^2", "\u2212", "e5", "B."])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(st.one_of(_PIECES, st.text(max_size=5)), max_size=25), gold=_GOLDS, rtype=_TYPES)
def test_random_responses_always_give_a_well_formed_result(pieces, gold, rtype):
    old = os.environ.get("ZPPO_MATH_VERIFY_TIMEOUT_S")
    os.environ["ZPPO_MATH_VERIFY_TIMEOUT_S"] = "0.5"
    try:
        result = compute_score("src", "".join(pieces), gold, {"reward_type": rtype, "question": MC_QUESTION})
        check_shape(result)
        assert not result["reason"].startswith("internal_error"), result
    finally:
        if old is None:
            os.environ.pop("ZPPO_MATH_VERIFY_TIMEOUT_S", None)
        else:
            os.environ["ZPPO_MATH_VERIFY_TIMEOUT_S"] = old
