"""The reward's judge against a REAL OpenAI-compatible server on loopback: ``transformers serve`` of the tiny text
model (started and stopped by this module through ``TeacherService``), asked through the project's teacher client,
plus the hung (timeout) and down cases.

The tiny model is random apart from the answer format, so its greedy reply to the Fig. 9 prompt is not expected to
be a strict JSON verdict. What ``recipe.zppo.reward.judge`` then does is exact and documented (App. B.2): route
``judge``, reason ``judge_malformed``, score 0, and nothing cached (only verdicts are). The expected outcome is
computed from the server's own reply to the same request (``parse_verdict``), so the verdict path (``judge`` then
``judge_cached``) is asserted instead if the reply ever parses.

``transformers serve`` has no request counter: the requests it served are counted from its access log (one
``POST /v1/chat/completions ... <status>`` line each). Its model name is the model's path (it has no
``--served-model-name``), and it answers an unknown model name with HTTP 400 (vLLM: 404).

Tests run in file order; the last one stops the server. Every wait is bounded.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
import urllib.request
from pathlib import Path

import pytest

from recipe.zppo.reward import RESULT_KEYS, compute_score
from recipe.zppo.reward.judge import get_judge, judge_config_from, parse_verdict, render_prompt
from recipe.zppo.teacher.client import join_reasoning
from recipe.zppo.teacher.service import TeacherService

from ..conftest import start_teacher_server

MAX_TOKENS = 16  # the judge's max new tokens here (the paper's 512 would be seconds per call on a CPU)
UNBOXED = ("<think>I looked at the image and worked it out.</think>\n"
           "The object on the left is larger than the one on the right,\nso it must be the dog.")
EXTRA = {"reward_type": "string_match", "question": "What animal is shown?"}
_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
_ACCESS = re.compile(r'"POST /v1/chat/completions HTTP/[\d.]+" (\d{3})')


class LiveServer:
    def __init__(self, service: TeacherService, v1: str, model: str, log: Path):
        self.service, self.v1, self.model, self.log = service, v1, model, log
        self.pid = service.process.pid

    @property
    def port(self) -> int:
        return int(self.v1.rsplit(":", 1)[1].split("/", 1)[0])

    def _count(self) -> dict:
        statuses = [int(code) for code in _ACCESS.findall(self.log.read_text(errors="replace"))]
        return {"requests": len(statuses), "ok": sum(code == 200 for code in statuses),
                "errors": sum(code != 200 for code in statuses)}

    def stats(self, settle_s: float = 0.3, timeout_s: float = 10.0) -> dict:
        """Requests served so far, from the access log, once it stops changing (a line lands just after its reply)."""
        assert self.service.process is not None and self.service.process.poll() is None, (
            f"the judge server is not running:\n{self.log.read_text()[-2000:]}")
        deadline = time.monotonic() + timeout_s
        last, since = self._count(), time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.05)
            now = self._count()
            if now != last:
                last, since = now, time.monotonic()
            elif time.monotonic() - since >= settle_s:
                break
        return last

    def chat(self, payload: dict) -> dict:
        request = urllib.request.Request(self.v1 + "/chat/completions", data=json.dumps(payload).encode(),
                                         headers={"Content-Type": "application/json"})
        with _NO_PROXY.open(request, timeout=30) as response:
            return json.loads(response.read())

    def stop(self) -> None:
        if self.service.process is not None:
            os.kill(self.pid, signal.SIGCONT)  # in case a test left it stopped
        self.service.stop()


@pytest.fixture(scope="module")
def server(tiny_text_model, tmp_path_factory):
    """``transformers serve`` with the tiny text model on a free loopback port."""
    log = tmp_path_factory.mktemp("judge_server") / "server.log"
    service, v1, model = start_teacher_server(tiny_text_model, log)
    live = LiveServer(service, v1, model, log)
    try:
        yield live
    finally:
        live.stop()


pytestmark = pytest.mark.usefixtures("fresh_judge")  # tests/unit/conftest.py


def judge_kwargs(server: LiveServer, **extra) -> dict:
    return {"judge_url": server.v1, "judge_model": server.model, "judge_timeout_s": 20, "judge_max_retries": 0,
            "judge_max_tokens": MAX_TOKENS, **extra}


def delta(before: dict, after: dict) -> dict:
    return {key: after[key] - before[key] for key in before}


def _own_verdict(server, question: str, response: str, gold: str):
    """The tiny model's own greedy verdict on exactly the request the judge sends (deterministic)."""
    reply = server.chat({"model": server.model, "max_tokens": MAX_TOKENS, "temperature": 0.0, "top_p": 1.0,
                         "messages": [{"role": "user", "content": render_prompt(question, "", response, gold)}],
                         "chat_template_kwargs": {"enable_thinking": False}})
    return parse_verdict(join_reasoning(reply["choices"][0]["message"]))


def test_free_form_answer_is_judged_by_the_live_server(server):
    # without a judge, a free-form answer without a box is scored 0 by the rule alone
    assert compute_score("src", UNBOXED, "dog", EXTRA)["route"] == "unparseable"

    # the tiny model's own reply to exactly the request the judge sends (greedy: deterministic)
    verdict = _own_verdict(server, EXTRA["question"], UNBOXED, "dog")

    kw = judge_kwargs(server)
    before = server.stats()
    first = compute_score("src", UNBOXED, "dog", EXTRA, **kw)
    after_first = server.stats()
    second = compute_score("src", UNBOXED, "dog", EXTRA, **kw)
    after_second = server.stats()

    for result in (first, second):
        assert tuple(result) == RESULT_KEYS and result["pred"] == ""
        assert result["score"] == result["acc"] and result["score"] in (0.0, 1.0)
    # the request reached the live server and was answered (a wrong model name would be an HTTP error)
    assert delta(before, after_first) == {"requests": 1, "ok": 1, "errors": 0}
    stats = get_judge(judge_config_from(kw, environ={})).stats
    if verdict is None:  # what the tiny model does: a malformed verdict scores 0, not cached, asked again
        assert (first["route"], first["reason"], first["score"]) == ("judge", "judge_malformed", 0.0)
        assert (second["route"], second["reason"], second["score"]) == ("judge", "judge_malformed", 0.0)
        assert delta(after_first, after_second)["requests"] == 1
        assert (stats.requests, stats.malformed, stats.cache_hits) == (2, 2, 0)
    else:  # a reply that parses: the verdict decides, and the identical second call is served from the cache
        assert (first["route"], first["reason"], first["score"]) == ("judge", "judge", float(verdict))
        assert (second["route"], second["reason"], second["score"]) == ("judge_cached", "judge_cached", float(verdict))
        assert delta(after_first, after_second)["requests"] == 0
        assert (stats.requests, stats.verdicts, stats.cache_hits) == (1, 1, 1)


def test_unknown_model_name_is_a_failure_not_retried(server):
    before = server.stats()
    result = compute_score("src", UNBOXED, "dog", EXTRA, **judge_kwargs(server, judge_model="no-such-model",
                                                                        judge_max_retries=2))
    # transformers serve: 400 ("Server is pinned to <model>"); vLLM would answer 404. Either is final for openai.
    assert (result["route"], result["reason"], result["score"]) == ("judge_failed", "judge_http_400", 0.0)
    assert delta(before, server.stats()) == {"requests": 1, "ok": 0, "errors": 1}


def test_answers_the_grader_decides_never_reach_the_judge(server):
    kw = judge_kwargs(server)
    before = server.stats()
    right = compute_score("src", "<think>hmm</think> The answer is \\boxed{dog}.", "dog", EXTRA, **kw)
    letter = compute_score("src", "<think>hmm</think> \\boxed{A}", "B", {"reward_type": "multiple_choice"}, **kw)
    empty = compute_score("src", "", "dog", EXTRA, **kw)
    assert (right["route"], right["score"], letter["route"], letter["score"]) == ("grader", 1.0, "grader", 0.0)
    assert (empty["route"], empty["reason"]) == ("unparseable", "empty_response")
    assert delta(before, server.stats())["requests"] == 0
    # control: the same settings do reach the server for a free-form answer the grader misses
    assert compute_score("src", "<think>hmm</think> \\boxed{a cat}", "dog", EXTRA, **kw)["route"] == "judge"
    assert delta(before, server.stats())["requests"] == 1


def test_eval_sends_a_truncated_answer_to_the_live_judge_with_its_reasoning(server):
    """Evaluation (App. B.2): a truncated answer has no committed final answer, so the judge is consulted on the full
    response (Fig. 9's look-inside-reasoning) even though the rule alone would grade the box in its reasoning."""
    from recipe.zppo.eval.evaluate import compute_score_with_ids

    info = {"scoring": "exact_judge", "reward_type": "multiple_choice", "question": "Which animal? A. cat B. dog",
            "question_id": "q-1"}
    truncated = "<think>The animal has floppy ears, so the answer is \\boxed{B} but let me check the"
    assert compute_score("src", truncated.replace("<think>", ""), "B", info)["score"] == 1.0  # the rule alone
    verdict = _own_verdict(server, info["question"], truncated, "B")
    kw = judge_kwargs(server)
    before = server.stats()
    result = compute_score_with_ids("ai2d", truncated, "B", info, **kw)
    assert delta(before, server.stats()) == {"requests": 1, "ok": 1, "errors": 0}  # the judge was consulted
    assert (result["truncated"], result["judge_calls"], result["route"]) == (1.0, 1.0, "judge")
    assert result["score"] == (1.0 if verdict else 0.0)
    assert result["reason"] == ("judge_malformed" if verdict is None else "judge")
    # the same answer, finished: the rule decides, no request
    before = server.stats()
    done = compute_score_with_ids("ai2d", "<think>floppy ears</think> \\boxed{B}", "B", info, **kw)
    assert (done["route"], done["score"], done["judge_calls"]) == ("grader", 1.0, 0.0)
    assert delta(before, server.stats())["requests"] == 0
    # a BenchJudge row (HLE's official prompt, Fig. 13) reaches the same server once
    before = server.stats()
    hle = compute_score_with_ids("hle", "<think>2+2</think> 4", "4", {"scoring": "benchjudge", "judge": "hle",
                                                                      "judge_question": "What is 2+2?"}, **kw)
    assert delta(before, server.stats())["requests"] == 1
    assert hle["route"] == "benchjudge" and hle["reason"] in ("judge", "judge_malformed") and hle["judge_calls"] == 1


def test_hung_server_times_out_boundedly(server):
    before = server.stats()
    kw = judge_kwargs(server, judge_timeout_s=0.3, judge_max_retries=1)
    os.kill(server.pid, signal.SIGSTOP)  # the kernel still accepts connections; nobody answers
    try:
        start = time.perf_counter()
        result = compute_score("src", UNBOXED, "dog", EXTRA, **kw)
        elapsed = time.perf_counter() - start
    finally:
        os.kill(server.pid, signal.SIGCONT)
    assert (result["route"], result["reason"], result["score"]) == ("judge_failed", "judge_timeout", 0.0)
    assert elapsed < 5.0  # 2 attempts x 0.3 s + openai's backoff (under 1 s for one retry)
    judge = get_judge(judge_config_from(kw, environ={}))
    assert (judge.stats.requests, judge.stats.failures, judge.client.stats()["attempts"]) == (1, 1, 2)
    # uvicorn drops the queued requests whose client has gone; once it runs again the server answers new ones
    again = compute_score("src", UNBOXED, "cat", EXTRA, **judge_kwargs(server))
    assert again["route"] == "judge"
    assert delta(before, server.stats())["ok"] >= 1


def test_server_down_is_a_connection_error_then_the_circuit_opens(server):
    """Last test: stops the module's server."""
    kw = judge_kwargs(server, judge_timeout_s=5, judge_max_retries=0, judge_fail_threshold=2, judge_cooldown_s=60)
    server.stop()
    port = server.port
    with socket.socket() as probe:  # nothing listens there any more
        assert probe.connect_ex(("127.0.0.1", port)) != 0
    reasons = [compute_score("src", UNBOXED, "dog", EXTRA, **kw)["reason"] for _ in range(3)]
    assert reasons == ["judge_connection_error", "judge_connection_error", "judge_circuit_open"]
    down = compute_score("src", UNBOXED, "dog", EXTRA, **kw)
    assert (down["route"], down["score"]) == ("judge_failed", 0.0)
    assert compute_score("src", "<think>x</think> \\boxed{dog}", "dog", EXTRA, **kw)["route"] == "grader"
