"""The reward's LLM judge (recipe.zppo.reward.judge; App. D.1, App. B.2, Fig. 9) against the fake OpenAI-compatible
servers of tests/fake_openai.py: the Fig. 9 prompt, the request (temperature 0, top-p 1, 512 new tokens), the strict
JSON verdict, the cache, the concurrency limit, timeouts and outages (scored 0 and counted), and which answers reach
it. Every wait is bounded."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from recipe.zppo.reward import RESULT_KEYS, compute_score, route_shares, sandbox
from recipe.zppo.reward.judge import (
    FIG9_TEMPLATE,
    JudgeConfig,
    get_judge,
    judge_config_from,
    judge_stats,
    parse_verdict,
    render_prompt,
)
from recipe.zppo.reward.routing import options_text

from ..fake_openai import FakeOpenAIServer, SilentServer, closed_port, completion_body

T = "<think>I looked at the image and worked it out.</think>\n"
QUESTION = "What animal is shown?"
STRING = {"reward_type": "string_match", "question": QUESTION}

pytestmark = pytest.mark.usefixtures("fresh_judge")  # tests/unit/conftest.py


@pytest.fixture(scope="module", autouse=True)
def grader_workers():
    assert sandbox.pool().wait_ready(180)
    yield


def boxed(answer: str) -> str:
    return T + f"The final answer is \\boxed{{{answer}}}."


def section(prompt: str, title: str) -> str:
    """The text of one "## <title>" section of a rendered Fig. 9 prompt."""
    body = prompt.split(f"## {title}\n", 1)[1]
    for end in ("\n## ", "\nOutput ONLY"):
        body = body.split(end, 1)[0]
    return body


def comparator(body: dict):
    """A judge that compares like the paper asks: correct iff the ground truth's words are in the model response."""
    prompt = body["messages"][-1]["content"]
    gold = section(prompt, "Ground Truth Answer").strip().lower()
    verdict = "correct" if gold in section(prompt, "Model Response").lower() else "wrong"
    return 200, completion_body(json.dumps({"verdict": verdict}))


@pytest.fixture
def fake():
    servers = []

    def make(**kwargs) -> FakeOpenAIServer:
        servers.append(FakeOpenAIServer(**{"respond": comparator, **kwargs}))
        return servers[-1]

    yield make
    for server in servers:
        server.close()


def kw(url: str, **extra) -> dict:
    return {"judge_url": url, "judge_model": "judge-model", "judge_timeout_s": 5, "judge_max_retries": 0, **extra}


# ------------------------------------------------------------------------------------------------ Fig. 9
def test_the_prompt_is_figure_9():
    # the paper's sentences, in the paper's order (Fig. 9), then the four slots
    lines = ["You are an expert judge evaluating whether a model’s response is correct according to the ground truth.",
             "## Your Role (READ FIRST)",
             "You are a COMPARATOR, not a solver. Your ONLY job is to decide how well the model’s response matches the "
             "provided GROUND TRUTH.",
             "• Do NOT attempt to solve the problem yourself.",
             "• Do NOT infer or derive what the “real” answer should be.",
             "• Do NOT second-guess the ground truth, even if it seems wrong.",
             "• If the final answer is missing due to answer format error, truncation, or other reasons, look inside "
             "thinking or reasoning.",
             "## Question", "## Model Response", "## Ground Truth Answer",
             "Output ONLY a valid JSON object with exactly this format (no prose, no code fences, no trailing "
             "commentary): {\"verdict\": \"correct\" or \"wrong\"}"]
    prompt = render_prompt("Q?", "A. cat\nB. dog", "\\boxed{B}", "B")
    positions = [prompt.index(line) for line in lines]
    assert positions == sorted(positions)
    assert (section(prompt, "Question"), section(prompt, "Answer Options")) == ("Q?", "A. cat\nB. dog")
    assert (section(prompt, "Model Response"), section(prompt, "Ground Truth Answer")) == ("\\boxed{B}", "B")
    # the options section is rendered only when a row has options (the figure's note)
    assert "## Answer Options" not in render_prompt("Q?", "", "x", "y")
    assert render_prompt("Q?", "", "x", "y").endswith(lines[-1])
    # values are text, not template code
    assert section(render_prompt("{{ 7 * 7 }}", "", "{% raw %}", "y"), "Question") == "{{ 7 * 7 }}"
    assert "{{" in FIG9_TEMPLATE and "{% if options %}" in FIG9_TEMPLATE


@pytest.mark.parametrize("reply, verdict", [
    ('{"verdict": "correct"}', True), ('{"verdict": "wrong"}', False), ('  {"verdict":"correct"}\n', True),
    ('<think>the response says dog</think>{"verdict": "correct"}', True),  # reasoning joined back by the client
    ('{"verdict": "Correct"}', None), ('{"verdict": "maybe"}', None), ('{"verdict": true}', None),
    ('{"verdict": "correct", "why": "same"}', None), ('```json\n{"verdict": "correct"}\n```', None),
    ('The verdict is {"verdict": "correct"}', None), ("correct", None), ('["correct"]', None), ("", None),
    ('<think>still thinking {"verdict": "correct"}', None), (None, None),
])
def test_only_a_strict_json_verdict_counts(reply, verdict):
    assert parse_verdict(reply) is verdict


# ------------------------------------------------------------------------------------------------ the request
def test_the_request_is_the_papers(fake):
    server = fake()
    result = compute_score("src", boxed("Dog"), "cat", STRING, **kw(server.url))
    assert tuple(result) == RESULT_KEYS
    assert (result["route"], result["reason"], result["score"]) == ("judge", "judge", 0.0)
    body = server.bodies[0]
    assert body["model"] == "judge-model"
    assert (body["temperature"], body["top_p"], body["max_tokens"]) == (0.0, 1.0, 512)  # App. B.2
    assert body["chat_template_kwargs"] == {"enable_thinking": False}  # ours: 512 tokens hold no reasoning trace
    # one user turn: Fig. 9 with the extracted answer (the snippet form) and the gold
    assert [m["role"] for m in body["messages"]] == ["user"]
    assert body["messages"][0]["content"] == render_prompt(QUESTION, "", "Dog", "cat")


def test_verdicts_decide_free_form_answers_the_grader_missed(fake):
    server = fake()
    right = compute_score("src", boxed("a big brown dog"), "dog", STRING, **kw(server.url))
    wrong = compute_score("src", boxed("a cat"), "dog", STRING, **kw(server.url))
    assert (right["route"], right["score"], wrong["route"], wrong["score"]) == ("judge", 1.0, "judge", 0.0)
    assert right["pred"] == "a big brown dog"
    # the grader's own match is final: no request
    assert compute_score("src", boxed("Dog"), "dog", STRING, **kw(server.url))["route"] == "grader"
    assert server.requests == 2


@pytest.mark.parametrize("reply", ['{"verdict": "Correct"}', '```json\n{"verdict": "correct"}\n```', "correct",
                                   '{"verdict": "correct", "confidence": 1}', "<think>cut off"])
def test_a_malformed_verdict_scores_zero_and_is_not_cached(fake, reply):
    server = fake(respond=lambda body: (200, completion_body(reply)))
    for _ in range(2):
        result = compute_score("src", boxed("a big dog"), "dog", STRING, **kw(server.url))
        assert (result["route"], result["reason"], result["score"]) == ("judge", "judge_malformed", 0.0)
    assert server.requests == 2  # asked again: only verdicts are cached


def test_verdicts_are_cached(fake):
    server = fake()
    first = compute_score("src", boxed("a big dog"), "dog", STRING, **kw(server.url))
    # a rollout with the same final answer (another reasoning) is the same Fig. 9 prompt: the cache answers
    second = compute_score("src", "<think>other words</think> \\boxed{a big dog}", "dog", STRING, **kw(server.url))
    assert (first["route"], second["route"], second["reason"]) == ("judge", "judge_cached", "judge_cached")
    assert first["score"] == second["score"] == 1.0 and server.requests == 1
    compute_score("src", boxed("a big dog"), "dog", dict(STRING, question="Another question?"), **kw(server.url))
    assert server.requests == 2
    assert judge_stats()["cache_hits"] == 1.0 and judge_stats()["requests"] == 2.0


def test_without_a_box_the_judge_sees_the_whole_response_even_cut_off(fake):
    server = fake()
    unboxed = T + "The object on the left is larger,\nso it must be the dog."
    result = compute_score("src", unboxed, "dog", STRING, **kw(server.url))
    assert (result["route"], result["score"], result["pred"]) == ("judge", 1.0, "")
    assert section(server.bodies[-1]["messages"][0]["content"], "Model Response") == unboxed
    truncated = "<think>It has four legs and barks, a dog, so the answer is"
    result = compute_score("src", truncated, "dog", STRING, **kw(server.url))
    assert (result["route"], result["score"]) == ("judge", 1.0)  # Fig. 9: look inside the reasoning
    assert section(server.bodies[-1]["messages"][0]["content"], "Model Response") == truncated
    assert compute_score("src", "  ", "dog", STRING, **kw(server.url))["reason"] == "empty_response"
    assert server.requests == 2


def test_a_long_response_is_shown_by_its_tail(fake):
    server = fake()
    long = "<think>" + "x" * 50_000 + " so it is a dog"
    compute_score("src", long, "dog", STRING, **kw(server.url, judge_response_chars=1000))
    assert section(server.bodies[-1]["messages"][0]["content"], "Model Response") == long[-1000:]


@pytest.mark.parametrize("reward_type, judged", [
    ("multiple_choice", False), ("numeric", False), ("counting", False), ("number_list", False),
    ("string_match", True), ("list_string_match", True), ("math", True), ("llm_judge", True),
])
def test_which_misses_go_to_the_judge(fake, reward_type, judged):
    server = fake()
    extra = {"reward_type": reward_type, "question": QUESTION}
    missed = compute_score("src", boxed("seven dogs"), "7", extra, **kw(server.url))
    unboxed = compute_score("src", T + "seven dogs", "7", extra, **kw(server.url))
    assert server.requests == (2 if judged else 0)
    if judged:
        assert (missed["route"], unboxed["route"]) == ("judge", "judge")
    else:
        assert (missed["route"], unboxed["route"]) == ("grader", "unparseable")


def test_unresolved_answers_go_to_the_judge_when_asked(fake):
    """judge_unresolved (ours, off by default): App. B.2's evaluation protocol, the judge "only after deterministic
    parsing fails" and "when a strict \\boxed{} cannot be parsed", for every type."""
    server = fake()
    extra = {"reward_type": "multiple_choice", "question": QUESTION, "choices": ["cat", "dog"]}
    on = kw(server.url, judge_unresolved=True)
    # no box: the judge reads the whole response
    result = compute_score("src", T + "It is B, the dog.", "B", extra, **on)
    assert (result["route"], result["score"]) == ("judge", 1.0)
    assert section(server.bodies[-1]["messages"][0]["content"], "Answer Options") == "A. cat\nB. dog"
    # a box that names no letter (the option text): the judge, shown the options
    result = compute_score("src", boxed("the dog, B"), "B", extra, **on)
    assert (result["route"], result["score"]) == ("judge", 1.0)
    # a boxed letter is resolved by the rule, right or wrong
    assert compute_score("src", boxed("A"), "B", extra, **on)["route"] == "grader"
    numeric = compute_score("src", T + "seven", "7", {"reward_type": "numeric"}, **on)
    assert numeric["route"] == "judge"
    assert server.requests == 3
    # off (training, App. D.1): the same answers score 0 by the rule, no request; "false" from a config is off
    for response in (T + "It is B, the dog.", boxed("the dog, B")):
        assert compute_score("src", response, "B", extra, **kw(server.url))["route"] in ("unparseable", "grader")
        assert compute_score("src", response, "B", extra, **kw(server.url, judge_unresolved="false"))["score"] == 0.0
    assert server.requests == 3


def test_options_for_the_judge():
    assert options_text({"choices": ["cat", "B. dog", "(C) cow"]}) == "A. cat\nB. dog\n(C) cow"
    assert options_text({"options": {"A": "x", "B": "y"}}) == "A. x\nB. y"
    assert options_text({"question": "A. cat B. dog"}) == ""  # the question itself already shows its options


def test_a_list_gold_is_shown_as_alternatives(fake):
    server = fake()
    compute_score("src", boxed("lotion"), "['body butter', 'shea butter']",
                  {"reward_type": "list_string_match"}, **kw(server.url))
    prompt = server.bodies[-1]["messages"][0]["content"]
    assert section(prompt, "Ground Truth Answer") == "any of: body butter; shea butter"


def test_without_a_judge_the_grader_decides_alone(fake):
    server = fake()
    result = compute_score("src", boxed("a big dog"), "dog", STRING)
    assert (result["route"], result["reason"], result["score"]) == ("grader", "grade_answer", 0.0)
    result = compute_score("src", T + "a big dog", "dog", STRING)
    assert (result["route"], result["reason"]) == ("unparseable", "no_box")
    off = kw(server.url, judge_enable=False)
    assert compute_score("src", boxed("a big dog"), "dog", STRING, **off)["route"] == "grader"
    assert server.requests == 0


# ------------------------------------------------------------------------------------------------ failures
def test_a_hung_judge_times_out_scores_zero_and_is_counted():
    with SilentServer() as server:
        start = time.monotonic()
        result = compute_score("src", boxed("a big dog"), "dog", STRING,
                               **kw(server.url, judge_timeout_s=0.3, judge_fail_threshold=10))
        elapsed = time.monotonic() - start
    assert (result["route"], result["reason"], result["score"]) == ("judge_failed", "judge_timeout", 0.0)
    assert elapsed < 3.0
    assert route_shares([result])["reward/route_judge_failed_count"] == 1.0
    assert route_shares([result])["reward/judge_calls"] == 1.0
    assert judge_stats()["failures"] == 1.0


def test_a_down_judge_fails_fast_then_the_circuit_opens():
    url = f"http://127.0.0.1:{closed_port()}"
    settings = kw(url, judge_fail_threshold=2, judge_cooldown_s=60)
    reasons = [compute_score("src", boxed("a big dog"), "dog", STRING, **settings)["reason"] for _ in range(4)]
    assert reasons == ["judge_connection_error", "judge_connection_error", "judge_circuit_open", "judge_circuit_open"]
    # answers the grader decides are untouched by the outage
    assert compute_score("src", boxed("dog"), "dog", STRING, **settings)["route"] == "grader"


def test_server_errors_are_failures_with_their_status(fake):
    server = fake(respond=lambda body: (500, {"error": {"message": "boom"}}))
    result = compute_score("src", boxed("a big dog"), "dog", STRING, **kw(server.url))
    assert (result["route"], result["reason"], result["score"]) == ("judge_failed", "judge_http_500", 0.0)


def test_requests_in_flight_never_exceed_the_limit(fake):
    server = fake(delay_s=0.15)
    settings = kw(server.url, judge_max_concurrency=2)
    answers = [boxed(f"animal number {i}") for i in range(8)]
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda a: compute_score("src", a, "dog", STRING, **settings), answers))
    assert [r["route"] for r in results] == ["judge"] * 8
    assert server.requests == 8 and server.max_active <= 2


# ------------------------------------------------------------------------------------------------ configuration
def test_configuration_from_kwargs_and_environment(fake, monkeypatch):
    from omegaconf import OmegaConf

    assert judge_config_from({}, environ={}) is None
    assert judge_config_from({"judge_url": "http://h:1"}, environ={}) is None  # no model: off
    cfg = judge_config_from({"judge": OmegaConf.create({"url": "http://h:1/", "model": "m", "timeout_s": "5",
                                                        "thinking": "true"})},
                            environ={"ZPPO_JUDGE_MAX_RETRIES": "4"})
    assert (cfg.url, cfg.model, cfg.timeout_s, cfg.max_retries, cfg.thinking) == ("http://h:1/", "m", 5.0, 4, True)
    assert (cfg.max_tokens, cfg.max_concurrency) == (512, 8)
    bad = judge_config_from({"judge_url": "u", "judge_model": "m", "judge_timeout_s": "oops", "judge_max_tokens": 0},
                            environ={})
    assert (bad.timeout_s, bad.max_tokens) == (JudgeConfig.timeout_s, 1)
    server = fake()
    monkeypatch.setenv("ZPPO_JUDGE_URL", server.url + "/v1/chat/completions")
    monkeypatch.setenv("ZPPO_JUDGE_MODEL", "env-judge")
    monkeypatch.setenv("ZPPO_JUDGE_API_KEY_ENV", "MY_JUDGE_KEY")
    monkeypatch.setenv("MY_JUDGE_KEY", "sekret")
    assert compute_score("src", boxed("a big dog"), "dog", STRING)["route"] == "judge"
    assert server.bodies[-1]["model"] == "env-judge"
    assert server.headers[-1]["authorization"] == "Bearer sekret"
    assert get_judge(judge_config_from({})).client.base_url == server.url + "/v1"
