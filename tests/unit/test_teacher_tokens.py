"""Teacher token prefetch (recipe/zppo/teacher_tokens.py): ids encoded on a worker thread during phase 1."""

from __future__ import annotations

import copy
import logging
import threading
import time

import pytest

from recipe.zppo.algo.reformulation import HardQuestion, ReformulationConfig, Response, Tokenization, reformulate
from recipe.zppo.teacher.tokens import TeacherTokenPrefetch


class GatedEncoder:
    """Encodes text as its character codes once ``gate`` is open; records calls and overlapping calls."""

    def __init__(self):
        self.gate = threading.Event()
        self.calls: list[str] = []
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()

    def __call__(self, text: str) -> list[int]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        try:
            self.gate.wait(timeout=10)
            self.calls.append(text)
            return [ord(ch) for ch in text]
        finally:
            with self._lock:
                self.active -= 1


def test_ids_are_encoded_off_the_calling_thread_and_waited_for():
    encoder = GatedEncoder()
    prefetch = TeacherTokenPrefetch(encoder)
    prefetch.start({"q1": ["ab", "cd"], "q2": ["e"], "q3": []})
    assert encoder.calls == []  # start returned while the worker is still held at the gate
    threading.Timer(0.2, encoder.gate.set).start()
    assert prefetch.ids_for("q1") == {"ab": [97, 98], "cd": [99, 100]}  # waits for the worker
    assert prefetch.ids_for("q2") == {"e": [101]}
    assert prefetch.ids_for("q3") == {} and prefetch.ids_for("never started") == {}
    metrics = prefetch.step_metrics()
    assert metrics["zppo/teacher_tokens/prefetched"] == 3 and metrics["zppo/teacher_tokens/served"] == 3
    assert metrics["zppo/teacher_tokens/wait_s"] >= 0.1 and metrics["zppo/teacher_tokens/failed"] == 0
    assert prefetch.step_metrics()["zppo/teacher_tokens/prefetched"] == 0  # reset per step


def test_a_new_step_drops_the_previous_one_and_workers_never_overlap():
    encoder = GatedEncoder()
    prefetch = TeacherTokenPrefetch(encoder)
    prefetch.start({f"old{i}": [f"text {i}"] for i in range(50)})
    time.sleep(0.05)  # the first worker is now blocked inside its first text
    prefetch.start({"new": ["xy"]})
    encoder.gate.set()
    assert prefetch.ids_for("new") == {"xy": [120, 121]}
    assert prefetch.ids_for("old3") == {}  # the previous step's ids are gone
    assert len(encoder.calls) <= 2  # the superseded worker stopped after the text it was encoding
    assert encoder.max_active == 1


def test_a_failing_encoder_falls_back_to_on_demand(caplog):
    def broken(text):
        raise RuntimeError("tokenizer exploded")

    prefetch = TeacherTokenPrefetch(broken)
    prefetch.start({"q": ["text"]})
    with caplog.at_level(logging.WARNING, logger="recipe.zppo.teacher.tokens"):
        assert prefetch.ids_for("q") == {}
    assert "tokenizer exploded" in caplog.text
    assert prefetch.step_metrics()["zppo/teacher_tokens/failed"] == 1


@pytest.fixture(scope="module")
def tiny_bpe(tmp_path_factory):
    from data_prep.tiny.tokenizer import save_hf_tokenizer

    return save_hf_tokenizer(tmp_path_factory.mktemp("bpe"))


def test_prefetched_ids_build_the_same_prompts_as_encoding_on_demand(tiny_bpe):
    """What the trainer does: the worker encodes with a copy of the tokenizer; the prompts do not change."""
    tokens = Tokenization.for_tokenizer(tiny_bpe)
    teacher_text = "<think>" + " ".join(f"step {i} adds {i}" for i in range(300)) + "</think> The answer is \\boxed{4}."
    wrong_text = "<think>" + " ".join(f"guess {i}" for i in range(200)) + "</think> The answer is \\boxed{5}."
    worker_tokenizer = copy.deepcopy(tiny_bpe)
    prefetch = TeacherTokenPrefetch(lambda text: worker_tokenizer.encode(text, add_special_tokens=False))
    prefetch.start({"q": [teacher_text]})
    ids = prefetch.ids_for("q")
    assert ids[teacher_text] == tokens.encode(teacher_text)

    def question(teacher: Response) -> HardQuestion:
        students = [Response(wrong_text, False, tokens.encode(wrong_text))] * 2
        return HardQuestion("q", [{"role": "user", "content": "What is 2+2?"}], 20, "4", students, [teacher])

    for limit in (4096, 600):  # whole candidates, then cut ones
        on_demand = reformulate([question(Response(teacher_text, True))], 1, tokens, limit, ReformulationConfig())
        prefetched = reformulate([question(Response(teacher_text, True, ids[teacher_text]))], 1, tokens, limit,
                                 ReformulationConfig())
        assert [p.messages for p in prefetched.prompts] == [p.messages for p in on_demand.prompts]
        assert any(p.kind == "bcq" for p in prefetched.prompts)
