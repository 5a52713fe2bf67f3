"""The teacher's part of a step (recipe/zppo/teacher/candidates.py) against a scripted client: fresh rollouts per
visit, compression of every candidate, the failure rules, the counters, and waiting that never hangs."""

from __future__ import annotations

import re
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from recipe.zppo.algo.answer_format import extract_final_answer
from recipe.zppo.algo.reformulation import STUDENT, TEACHER, clean_candidate_text
from recipe.zppo.teacher.candidates import CompressionConfig, TeacherConfig, TeacherWork, WrongRollout
from recipe.zppo.teacher.client import Completion, Reply

QUESTION = [{"role": "user", "content": "What is 2 + 3?"}]


class ScriptedTeacher:
    """Answers teacher rollouts from ``answers`` (cycled) and compresses by keeping the boxed answer, unless told
    to fail. Records every request."""

    def __init__(self, answers=("5", "4"), compress="ok", fail_rollouts=False, delay_s=0.0):
        self.answers, self.compress, self.fail_rollouts, self.delay_s = list(answers), compress, fail_rollouts, delay_s
        self.requests: list[tuple[str, dict]] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(4)

    def reply(self, messages, kwargs) -> Reply:
        time.sleep(self.delay_s)
        content = messages[-1]["content"]
        with self.lock:
            kind = "compress" if "<response>" in content else "rollout"
            self.requests.append((kind, kwargs))
            count = sum(k == kind for k, _ in self.requests)
        if kind == "rollout":
            if self.fail_rollouts:
                return Reply(None, "connection refused", 0.0)
            answer = self.answers[(count - 1) % len(self.answers)]
            return Reply(Completion(f"<think>2+3={answer}</think> \\boxed{{{answer}}}", "stop", 10, 12), None, 0.0)
        answer = extract_final_answer(re.search(r"<response>\n(.*)\n</response>", content, re.S).group(1))
        if self.compress == "fail":
            return Reply(None, "timed out", 0.0)
        if self.compress == "garbage":
            return Reply(Completion("no tags at all", "stop", 30, 3), None, 0.0)
        if self.compress == "change":
            answer = "999"
        return Reply(Completion(f"<summary>short \\boxed{{{answer}}}</summary>", "stop", 30, 8), None, 0.0)

    def submit(self, messages, **kwargs) -> Future:
        return self.pool.submit(self.reply, messages, kwargs)


def wrong(*answers):
    return [WrongRollout(i, f"<think>guess</think> \\boxed{{{a}}}", a) for i, a in enumerate(answers)]


def is_five(text: str) -> bool:
    return extract_final_answer(text) == "5"


def run(client, config=None, step=1, qids=("q",), wrongs=None, **start):
    work = TeacherWork(client, config or TeacherConfig(), seed=0)
    work.begin_step(step)
    for qid in qids:
        work.start(qid, QUESTION, [], wrongs if wrongs is not None else wrong("6", "7"), is_five, **start)
    return work, work.collect(list(qids), timeout_s=30)


def test_gt_fresh_rollouts_per_hard_question_one_correct_compressed_and_every_wrong_one():
    client = ScriptedTeacher(answers=("5", "4", "5", "3"))
    work, made = run(client, qids=("a", "b"))
    rollouts = [kw for kind, kw in client.requests if kind == "rollout"]
    assert len(rollouts) == 4 * 2 and all(kw["temperature"] == 1.0 and kw["top_p"] == 1.0 for kw in rollouts)
    assert all(kw["max_tokens"] == 12288 and kw["thinking"] is True for kw in rollouts)
    compressions = [kw for kind, kw in client.requests if kind == "compress"]
    assert all(kw["max_tokens"] == 512 and kw["thinking"] is False for kw in compressions)
    for material in made.values():
        assert [c.source for c in material.teacher] == [TEACHER] and material.teacher[0].answer == "5"
        assert sorted((c.index, c.answer, c.source) for c in material.student) == [(0, "6", STUDENT),
                                                                                   (1, "7", STUDENT)]
        assert all(c.text == f"short \\boxed{{{c.answer}}}" for c in material.teacher + material.student)
    counts = work.counts
    assert counts["rollouts"] == 8 and counts["correct"] == 4 and counts["failures"] == 0
    assert counts["compressions"] == counts["compression_ok"] == 2 * (2 + 1)
    assert counts["prompt_tokens"] == 8 * 10 + 6 * 30


def test_a_replayed_question_gets_new_requests_on_every_visit():
    client = ScriptedTeacher()
    work = TeacherWork(client, TeacherConfig(), seed=0)
    for step in (1, 2):
        work.begin_step(step)
        work.start("q", QUESTION, [], wrong("6"), is_five)
        work.start("q", QUESTION, [], wrong("6"), is_five)  # a second start in the same step is ignored
        work.collect(["q"], timeout_s=30)
    assert sum(kind == "rollout" for kind, _ in client.requests) == 2 * 4
    assert work.totals["rollouts"] == 8 and work.counts["rollouts"] == 4


def test_no_correct_teacher_rollout_means_no_teacher_candidate():
    _, made = run(ScriptedTeacher(answers=("4",)))
    assert made["q"].teacher == [] and len(made["q"].student) == 2


@pytest.mark.parametrize("mode, reason", [("change", "compression_answer_changed"),
                                          ("garbage", "compression_no_summary"), ("fail", "failures")])
def test_a_failed_compression_never_puts_an_uncompressed_candidate_in(mode, reason):
    client = ScriptedTeacher(answers=("5",), compress=mode)
    work, made = run(client)
    assert made["q"].teacher == [] and made["q"].student == []
    # every correct teacher rollout was tried in turn (4 here), then the two wrong student rollouts
    assert work.counts["compressions"] == 4 + 2 and work.counts[reason] == 6


def test_teacher_down_gives_student_candidates_and_counts_the_failures():
    work, made = run(ScriptedTeacher(fail_rollouts=True))
    assert made["q"].teacher == [] and len(made["q"].student) == 2
    assert work.counts["failures"] == 4 and work.counts["correct"] == 0


def test_rollouts_without_a_final_answer_are_not_compressed():
    client = ScriptedTeacher()
    _, made = run(client, wrongs=[WrongRollout(0, "<think>cut off", None)] + wrong("6")[:1])
    assert [c.answer for c in made["q"].student] == ["6"]


def test_compression_off_uses_the_raw_cleaned_responses():
    config = TeacherConfig(compression=CompressionConfig(enable=False))
    client = ScriptedTeacher()
    _, made = run(client, config)
    assert all(kind == "rollout" for kind, _ in client.requests)
    assert made["q"].teacher[0].text == clean_candidate_text("<think>2+3=5</think> \\boxed{5}")
    assert made["q"].student[0].text == clean_candidate_text(wrong("6")[0].text)


def test_offline_source_reads_stored_responses_and_still_compresses():
    config = TeacherConfig(source="offline")
    client = ScriptedTeacher()
    stored = [("<think>x</think> \\boxed{4}", False), ("<think>y</think> \\boxed{5}", True)]
    work, made = run(client, config, stored=stored)
    assert all(kind == "compress" for kind, _ in client.requests) and work.counts["rollouts"] == 0
    assert made["q"].teacher[0].answer == "5"


def test_collect_never_waits_past_its_timeout_and_counts_what_it_left():
    client = ScriptedTeacher(delay_s=2.0)
    work = TeacherWork(client, TeacherConfig(), seed=0)
    work.begin_step(1)
    work.start("q", QUESTION, [], wrong("6"), is_five)
    started = time.perf_counter()
    made = work.collect(["q"], timeout_s=0.3)
    assert time.perf_counter() - started < 1.5 and work.counts["abandoned"] == 1
    assert made["q"].teacher == []
    assert work._jobs["q"].done.wait(30)  # let the abandoned work end before the test's threads do


def test_counters_survive_a_checkpoint():
    work, _ = run(ScriptedTeacher())
    restored = TeacherWork(ScriptedTeacher(), TeacherConfig())
    restored.load_state_dict(work.state_dict())
    assert restored.totals == work.totals and restored.totals["rollouts"] == 4


# ---------------------------------------------------------------------------------------------------------------
# The real client against servers that fail: the step's teacher work ends, with what could be made, counted.
@pytest.mark.parametrize("server_kind", ["refused", "silent", "malformed"])
def test_failing_teacher_servers_end_the_work_with_counted_failures(server_kind):
    from recipe.zppo.teacher.client import TeacherClient, TeacherClientConfig

    from ..fake_openai import FakeOpenAIServer, SilentServer, closed_port

    config = TeacherConfig(client=TeacherClientConfig(timeout_s=1.0, max_retries=1, max_concurrency=4))
    if server_kind == "refused":
        server, url = None, f"http://127.0.0.1:{closed_port()}"
    elif server_kind == "silent":
        server = SilentServer()
        url = server.url
    else:  # HTTP 200 with a body that is not a completion
        server = FakeOpenAIServer(respond=lambda body: (200, b"{not json"))
        url = server.url
    client = TeacherClient(url, "teacher", config.client)
    try:
        work = TeacherWork(client, config, seed=0)
        work.begin_step(1)
        started = time.perf_counter()
        work.start("q", QUESTION, [], wrong("6", "7"), is_five)
        made = work.collect(["q"], timeout_s=60)
        waited = time.perf_counter() - started
    finally:
        client.close()
        if server is not None:
            server.close()
    # Nothing made, nothing hung, every request counted as a failure: 4 rollouts and 2 student compressions.
    assert made["q"].teacher == [] and made["q"].student == [] and made["q"].wrong_answers == ["6", "7"]
    assert work.counts["failures"] == 6 and work.counts["rollouts"] == 4 and work.counts["abandoned"] == 0
    assert waited < 20
