"""Prompt replay buffer: one threshold (tau), FIFO eviction, uniform seeded replay draws, the step's refresh
(graduate, then admit), counters, argument checks, exact state round trip.

Keys are question ids (strings; ints work too). The property test compares the buffer with a deliberately naive
list-based model over random operation sequences, with refused calls and save/restore (in memory and through
the JSON file) between any two operations.
"""

from __future__ import annotations

import json
import math
import re
import tempfile
import tracemalloc
from itertools import combinations
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.zppo.algo.replay_buffer import (
    BUFFER_FILE,
    COUNTER_NAMES,
    PromptReplayBuffer,
    QuestionStats,
    state_digest,
)

BAD_ACCURACIES = (math.nan, np.float32("nan"), math.inf, -math.inf, -0.01, 1.01, None, "0.25", True, [0.25])


def fresh_like(buffer: PromptReplayBuffer) -> PromptReplayBuffer:
    return PromptReplayBuffer(buffer.capacity, buffer.threshold, buffer.seed)


def round_trip(buffer: PromptReplayBuffer) -> PromptReplayBuffer:
    """Snapshot and load into a fresh buffer of the same config (what a checkpoint and a resume do)."""
    restored = fresh_like(buffer)
    restored.load_state_dict(buffer.state_dict())
    return restored


def file_round_trip(buffer: PromptReplayBuffer, folder: Path) -> PromptReplayBuffer:
    path = folder / BUFFER_FILE
    written = buffer.save(path)
    restored = fresh_like(buffer)
    assert state_digest(restored.load(path)) == state_digest(written)
    return restored


def admitted(capacity: int, *keys, **options) -> PromptReplayBuffer:
    buffer = PromptReplayBuffer(capacity, **options)
    for key in keys:
        assert buffer.admit(key, 0.0, step=0)
    return buffer


def snapshot(buffer: PromptReplayBuffer) -> tuple:
    """Everything observable, to check that a refused call changed nothing."""
    return (state_digest(buffer.state_dict()), buffer.question_ids(), buffer.counters(),
            [buffer.stats(key) for key in buffer.question_ids()])


def scripted_buffer() -> PromptReplayBuffer:
    """Evictions, graduations, stays and a fresh admission; string keys."""
    buffer = PromptReplayBuffer(capacity=4, threshold=0.5)
    for step in range(10):
        buffer.admit(f"q{100 + step}", step / 40, step)
        for key in buffer.sample(2, step):
            buffer.update_replayed(key, 0.75 if step % 3 == 0 else 0.25, step)
    buffer.sample(2, 10)  # replayed questions and (below) one never replayed
    buffer.step_deltas()
    buffer.admit("q500", 0.0, 11)
    return buffer


# ----------------------------------------------------------------------------------------------------------
def test_admission_needs_accuracy_below_threshold():
    buffer = PromptReplayBuffer(capacity=10)
    assert not buffer.admit("a", 0.5, step=0)  # 0.5 is not below 0.5
    assert buffer.admit("b", 0.4999, step=0)
    assert buffer.admit("c", 0, step=0)  # an int accuracy is a number too
    assert not buffer.admit("d", 1.0, step=0)
    assert "a" not in buffer and "b" in buffer and len(buffer) == 2
    assert buffer.counters() == {"admitted": 2, "graduated": 0, "evicted": 0}
    assert buffer.stats("c") == QuestionStats(admitted_step=0, admission_accuracy=0.0, last_accuracy=0.0)


def test_graduation_at_threshold_and_unknown_keys_ignored():
    buffer = admitted(10, "q0", "q1", "q2")
    assert sorted(buffer.sample(3, step=1)) == ["q0", "q1", "q2"]
    assert buffer.update_replayed("q0", 0.5, step=1)  # 0.5 graduates
    assert not buffer.update_replayed("q1", 0.4999, step=1)
    assert buffer.update_replayed("q2", 1.0, step=1)
    assert buffer.question_ids() == ["q1"]
    assert buffer.stats("q1").last_accuracy == 0.4999 and buffer.stats("q1").times_replayed == 1
    assert buffer.stats("q1").admission_accuracy == 0.0
    assert buffer.counters()["graduated"] == 2
    # A question that left (or never was in) is ignored.
    before = snapshot(buffer)
    assert not buffer.update_replayed("q0", 1.0, step=2) and not buffer.update_replayed("q99", 0.0, step=2)
    assert snapshot(buffer) == before


def test_one_threshold_admits_below_and_graduates_at_or_above():
    # The paper's single tau (Algorithm 1 line 19): admit r < tau, graduate the rest.
    buffer = PromptReplayBuffer(capacity=4, threshold=0.25)
    assert not buffer.admit("q", 0.25, 0) and buffer.admit("q", 0.125, 0)
    buffer.sample(1, 1)
    assert not buffer.update_replayed("q", 0.24, 1) and buffer.update_replayed("q", 0.25, 2)
    for bad in (0.0, -0.5, 1.5, math.nan):
        with pytest.raises(ValueError, match="threshold"):
            PromptReplayBuffer(4, threshold=bad)
    with pytest.raises(ValueError, match="seed"):
        PromptReplayBuffer(4, seed=-1)


def test_question_already_in_is_not_admitted_again():
    buffer = admitted(10, "q7")
    buffer.sample(1, step=1)
    assert not buffer.admit("q7", 0.125, step=2)
    stats = buffer.stats("q7")
    assert (stats.admitted_step, stats.admission_accuracy, stats.times_replayed, stats.last_replayed_step) == (
        0, 0.0, 1, 1)
    assert len(buffer) == 1 and buffer.counters()["admitted"] == 1
    with pytest.raises(KeyError):
        buffer.stats("q8")
    stats.times_replayed = 99  # a copy
    assert buffer.stats("q7").times_replayed == 1


def test_fifo_eviction_of_earliest_admitted_even_if_recently_replayed():
    buffer = PromptReplayBuffer(capacity=3)
    for step, key in enumerate(("q10", "q11", "q12")):
        buffer.admit(key, 0.0, step)
    assert sorted(buffer.sample(3, step=3)) == ["q10", "q11", "q12"]  # all just replayed
    assert buffer.admit("q13", 0.0, step=4)
    assert buffer.question_ids() == ["q11", "q12", "q13"] and "q10" not in buffer
    assert buffer.admit("q14", 0.0, step=5)
    assert buffer.question_ids() == ["q12", "q13", "q14"]
    assert buffer.counters() == {"admitted": 5, "graduated": 0, "evicted": 2}
    # A refused admission does not evict.
    assert not buffer.admit("q15", 0.9, step=6) and not buffer.admit("q12", 0.0, step=6)
    assert buffer.counters()["evicted"] == 2 and len(buffer) == 3


def test_sample_draws_distinct_buffered_keys_at_most_k_and_skips_excluded():
    buffer = admitted(10, 0, 1, 2, 3, "q4")
    for step in range(50):
        drawn = buffer.sample(3, step)
        assert len(drawn) == len(set(drawn)) == 3 and set(drawn) <= {0, 1, 2, 3, "q4"}
    # Never more than the buffer holds; nothing for k <= 0; the excluded keys (this step's new questions) never.
    assert sorted(buffer.sample(99, step=60), key=str) == [0, 1, 2, 3, "q4"]
    assert buffer.sample(0, step=61) == [] and buffer.sample(-1, step=61) == []
    for step in range(62, 100):
        assert set(buffer.sample(3, step, exclude={1, np.str_("q4"), "absent"})) <= {0, 2, 3}
    assert buffer.sample(5, step=100, exclude=[0, 1, 2, 3, "q4"]) == []
    assert PromptReplayBuffer(3).sample(5, step=0) == []
    # Each draw is recorded on the question.
    times = sum(buffer.stats(key).times_replayed for key in buffer.question_ids())
    assert times == 50 * 3 + 5 + 38 * 3
    (drawn,) = buffer.sample(1, step=200)
    assert buffer.stats(drawn).last_replayed_step == 200


def test_sample_is_uniform_not_round_robin():
    # 10 questions, 3 drawn per step over 3,000 steps. Uniform: each question about 900 times (binomial sd ~25), a
    # question drawn at one step is drawn at the next with probability 0.3 (round robin: never, with 3 of 10), and
    # every one of the C(10, 3) = 120 possible draws happens (expected 25 times each; round robin makes 10).
    buffer = admitted(20, *[f"q{i}" for i in range(10)], seed=7)
    draws = [frozenset(buffer.sample(3, step)) for step in range(3000)]
    counts = {key: sum(key in d for d in draws) for key in buffer.question_ids()}
    assert all(780 <= c <= 1020 for c in counts.values()), counts
    again = sum(len(a & b) for a, b in zip(draws, draws[1:])) / (3 * (len(draws) - 1))
    assert 0.25 <= again <= 0.35, again
    assert set(draws) == {frozenset(c) for c in combinations(buffer.question_ids(), 3)}
    # Which question comes first in a draw is uniform too (the order of X_replay carries no ranking).
    first = [buffer.sample(3, step)[0] for step in range(3000, 6000)]
    assert all(220 <= first.count(key) <= 380 for key in buffer.question_ids())


def test_sample_is_reproducible_from_seed_step_and_contents():
    keys = [f"q{i}" for i in range(30)]
    one, two, other_seed = admitted(50, *keys, seed=3), admitted(50, *keys, seed=3), admitted(50, *keys, seed=4)
    assert [one.sample(5, s) for s in range(20)] == [two.sample(5, s) for s in range(20)]
    assert [one.sample(5, s) for s in range(20)] != [other_seed.sample(5, s) for s in range(20)]
    # Not a function of earlier draws: a buffer asked only at step 12 draws what the others drew at step 12.
    assert admitted(50, *keys, seed=3).sample(5, 12) == one.sample(5, 12)
    # Different steps draw differently.
    assert len({tuple(one.sample(5, s)) for s in range(20)}) > 15


def test_refresh_graduates_then_admits_and_evicts_fifo():
    buffer = admitted(3, "a", "b", "c")
    buffer.step_deltas()
    # Algorithm 1 line 19: "a" (replayed, solved) graduates, "b" (replayed, still failed) stays with its new
    # accuracy, "new1" enters without evicting anyone (a's place is free), "easy" (solved) does not enter.
    buffer.refresh({"new1": 0.0, "a": 0.75, "b": 0.25, "easy": 0.5}, step=5)
    assert buffer.question_ids() == ["b", "c", "new1"]
    assert buffer.stats("b").last_accuracy == 0.25 and buffer.stats("b").admitted_step == 0
    assert buffer.step_deltas() == {"admitted": 1, "graduated": 1, "evicted": 0}
    # Full: a newcomer evicts the earliest admitted.
    buffer.refresh({"new2": 0.125}, step=6)
    assert buffer.question_ids() == ["c", "new1", "new2"]
    assert buffer.step_deltas() == {"admitted": 1, "graduated": 0, "evicted": 1}
    # A bad accuracy anywhere changes nothing.
    before = snapshot(buffer)
    with pytest.raises(ValueError, match="accuracy"):
        buffer.refresh({"c": 1.0, "new3": math.nan}, step=7)
    assert snapshot(buffer) == before


def test_step_deltas_count_since_previous_call():
    buffer = admitted(2, "a", "b")
    assert buffer.step_deltas() == {"admitted": 2, "graduated": 0, "evicted": 0}
    assert buffer.step_deltas() == {"admitted": 0, "graduated": 0, "evicted": 0}
    buffer.admit("c", 0.0, 1)
    buffer.sample(2, 1)
    buffer.update_replayed("b", 1.0, 1)
    assert buffer.step_deltas() == {"admitted": 1, "graduated": 1, "evicted": 1}
    assert buffer.counters() == {"admitted": 3, "graduated": 1, "evicted": 1}
    assert set(COUNTER_NAMES) == set(buffer.counters())


def test_string_and_int_keys_are_distinct_and_normalised():
    buffer = admitted(10, "q3", 3, "3")
    assert buffer.question_ids() == ["q3", 3, "3"]
    # numpy integers and strings are the same keys as Python's, and come back as Python's.
    assert np.int64(3) in buffer and not buffer.admit(np.int32(3), 0.0, 0)
    assert np.str_("q3") in buffer and not buffer.admit(np.str_("q3"), 0.0, 0)
    assert buffer.admit(np.uint32(4), 0.0, 0) and buffer.admit(np.str_("q4"), 0.0, 0)
    assert [type(key) for key in buffer.question_ids()] == [str, int, str, int, str]
    assert all(type(key) in (str, int) for key in buffer.sample(5, 1))
    before = snapshot(buffer)
    for bad in (3.0, True, None, (3,), b"q3"):
        with pytest.raises(TypeError, match="question ids"):
            buffer.admit(bad, 0.0, 0)
        with pytest.raises(TypeError):
            buffer.update_replayed(bad, 0.0, 0)
        with pytest.raises(TypeError):
            _ = bad in buffer
    assert snapshot(buffer) == before


def test_bad_accuracy_is_refused_and_changes_nothing():
    buffer = scripted_buffer()
    present = buffer.question_ids()[0]
    before = snapshot(buffer)
    for bad in BAD_ACCURACIES:
        for key in ("fresh", present):
            with pytest.raises(ValueError, match=rf"accuracy .*{key}"):
                buffer.admit(key, bad, step=20)
            with pytest.raises(ValueError, match=rf"accuracy .*{key}"):
                buffer.update_replayed(key, bad, step=20)
        assert snapshot(buffer) == before
    with pytest.raises(ValueError, match="nan"):
        buffer.admit("fresh", math.nan, step=20)  # the message names the value
    # numpy's numbers are accuracies too.
    assert buffer.admit("fresh", np.float32(0.25), step=20) and buffer.stats("fresh").admission_accuracy == 0.25


def test_bad_k_or_step_is_refused_and_changes_nothing():
    buffer = scripted_buffer()
    before = snapshot(buffer)
    for k, step in ((1.5, 1), ("2", 1), (None, 1), (1, -1), (1, 1.0), (1, True), (1, "3")):
        with pytest.raises((TypeError, ValueError)):
            buffer.sample(k, step)
    for step in (-1, 2.0, None):
        with pytest.raises(ValueError, match="step"):
            buffer.admit("new", 0.0, step)
    assert snapshot(buffer) == before
    for capacity in (0, -1, 2.5, "4", True):
        with pytest.raises(ValueError, match="capacity"):
            PromptReplayBuffer(capacity)


def test_huge_keys_and_steps_are_plain_ints():
    # No fixed-width integers anywhere: nothing can overflow (an int32 overflow once evicted, then raised).
    buffer = admitted(2, 2**40, 2**70)
    assert sorted(buffer.sample(2, step=2**40)) == [2**40, 2**70] and buffer.admit(2**80, 0.0, step=2**63)
    assert buffer.question_ids() == [2**70, 2**80] and buffer.stats(2**80).admitted_step == 2**63
    restored = round_trip(buffer)
    assert restored.question_ids() == [2**70, 2**80] and restored.sample(2, 2**64) == buffer.sample(2, 2**64)


# ----------------------------------------------------------------------------------------------------------
def test_state_dict_is_a_plain_json_copy():
    buffer = scripted_buffer()
    state = buffer.state_dict()
    assert state["version"] == 5 and state["capacity"] == 4 and state["threshold"] == 0.5 and state["seed"] == 0
    assert json.loads(json.dumps(state)) == state  # plain JSON, nothing lost
    digest = state_digest(state)
    state["questions"][0][1] = 999  # a copy: the buffer does not change
    state["questions"].clear()
    state["counters"]["admitted"] = 0
    assert state_digest(buffer.state_dict()) == digest
    buffer.admit("later", 0.0, 12)  # and the buffer's later changes do not reach an earlier state
    assert state_digest(buffer.state_dict()) != digest
    assert all(row[0] != "later" for row in state["questions"])


def test_state_round_trip_after_evictions_and_replays():
    buffer = scripted_buffer()
    state = buffer.state_dict()
    restored = round_trip(buffer)
    assert restored.state_dict() == state
    assert restored.question_ids() == buffer.question_ids()
    assert restored.counters() == buffer.counters()
    assert restored.step_deltas() == buffer.step_deltas()
    for key in buffer.question_ids():
        assert restored.stats(key) == buffer.stats(key)
    # The two continue identically.
    for b in (buffer, restored):
        b.admit("q700", 0.0, 12)
    assert restored.sample(3, 12) == buffer.sample(3, 12)
    assert restored.state_dict() == buffer.state_dict()


def test_save_writes_one_json_file_and_load_gives_the_same_digest(tmp_path):
    buffer = scripted_buffer()
    path = tmp_path / BUFFER_FILE
    assert BUFFER_FILE == "zppo_prompt_buffer.json"
    written = buffer.save(path)
    assert [p.name for p in tmp_path.iterdir()] == [BUFFER_FILE]  # no temporary file left
    assert json.loads(path.read_text()) == written == buffer.state_dict()
    restored = fresh_like(buffer)
    returned = restored.load(path)
    assert state_digest(returned) == state_digest(written) == state_digest(restored.state_dict())
    assert re.fullmatch("[0-9a-f]{64}", state_digest(written))  # sha256 hex
    assert restored.sample(3, 40) == buffer.sample(3, 40)  # a resumed run draws what the run would have drawn
    # Saving again replaces the file whole.
    buffer.admit("q800", 0.0, 20)
    buffer.save(path)
    again = fresh_like(buffer)
    again.load(path)
    assert "q800" in again and again.question_ids() == buffer.question_ids()


def test_failed_save_leaves_the_previous_file(tmp_path, monkeypatch):
    buffer = scripted_buffer()
    path = tmp_path / BUFFER_FILE
    written = buffer.save(path)
    buffer.admit("q900", 0.0, 30)

    def crash(fileno):  # the process dies before the new file is complete on disk
        raise OSError("disk full")

    monkeypatch.setattr("recipe.zppo.algo.replay_buffer.os.fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        buffer.save(path)
    monkeypatch.undo()
    assert state_digest(fresh_like(buffer).load(path)) == state_digest(written)


def test_digest_changes_with_any_part_of_the_state():
    state = scripted_buffer().state_dict()
    digests = {state_digest(state)}
    for change in ({"capacity": 5}, {"questions": state["questions"][::-1]},
                   {"counters": {**state["counters"], "evicted": 0}}):
        digests.add(state_digest({**state, **change}))
    assert len(digests) == 4
    assert state_digest(dict(reversed(state.items()))) == state_digest(state)  # canonical: key order ignored


def test_load_errors_name_the_file_and_change_nothing(tmp_path):
    buffer = scripted_buffer()
    before = snapshot(buffer)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        buffer.load(tmp_path / "missing.json")
    for name, content in (("junk.json", b"not json at all"), ("bytes.json", b"\xff\xfe\x00"),
                          ("list.json", b"[1, 2]"), ("nan.json", b'{"version": 5, "questions": [["a", 0, NaN, '
                                                                 b'NaN, 0, null]], "counters": {}}')):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(ValueError, match=name.replace(".", r"\.")):
            buffer.load(tmp_path / name)
    assert snapshot(buffer) == before


def test_old_npz_checkpoint_is_refused_with_a_clear_message(tmp_path):
    buffer = scripted_buffer()
    before = snapshot(buffer)
    old = tmp_path / "zppo_prompt_buffer.npz"
    with open(old, "wb") as f:  # what versions 2-3 wrote: numpy rows in an .npz archive
        np.savez(f, version=np.array(3), keys=np.arange(4, dtype=np.int32), size=np.array(4))
    with pytest.raises(ValueError) as caught:
        buffer.load(old)
    message = str(caught.value)
    assert "\n" not in message and str(old) in message
    assert "old checkpoints of the prompt replay buffer" in message and "cannot be resumed" in message
    assert "new run directory" in message and "resume_mode=disable" in message
    # A JSON state of another version says the same.
    for version in (1, 2, 3, 4, 6, None):
        with pytest.raises(ValueError, match="cannot be resumed.*resume_mode=disable"):
            buffer.load_state_dict({**buffer.state_dict(), "version": version})
    with pytest.raises(ValueError, match="cannot be resumed"):
        buffer.load_state_dict([1, 2])
    assert snapshot(buffer) == before


def test_refused_state_changes_nothing():
    source = scripted_buffer()
    state = source.state_dict()
    size = len(state["questions"])
    replayed_key = next(row[0] for row in state["questions"] if row[4] > 0)
    assert size >= 2
    row_of = {row[0]: i for i, row in enumerate(state["questions"])}
    never_key = next(row[0] for row in state["questions"] if row[4] == 0)

    def with_row(key, field: int, value) -> dict:
        rows = [list(row) for row in state["questions"]]
        rows[row_of[key]][field] = value
        return {"questions": rows}

    def refused(changes: dict, match: str, capacity: int = 4) -> None:
        buffer = PromptReplayBuffer(capacity)
        buffer.admit("q42", 0.0, 0)
        buffer.sample(1, 0)
        before = snapshot(buffer)
        with pytest.raises(ValueError, match=match):
            buffer.load_state_dict({**json.loads(json.dumps(state)), **changes})
        assert snapshot(buffer) == before  # a refused state changes nothing
        assert buffer.sample(1, 1) == ["q42"] and buffer.admit("q43", 0.0, 1)  # and the buffer still works

    refused({}, f"holds {size} questions, over capacity {size - 1}", capacity=size - 1)
    refused({"questions": state["questions"] + [state["questions"][0]]}, "corrupt.*duplicate key")
    refused({"questions": state["questions"][:-1]}, "corrupt")  # counters no longer add up
    refused({"questions": [row[:5] for row in state["questions"]]}, "corrupt")  # short rows
    refused({"questions": None}, "corrupt")
    refused(with_row(replayed_key, 0, 1.5), "corrupt.*question ids")  # a float key
    refused(with_row(replayed_key, 2, math.nan), "corrupt.*accuracy")
    refused(with_row(replayed_key, 3, 2.0), "corrupt.*accuracy")
    refused(with_row(replayed_key, 1, -1), "corrupt.*admitted_step")
    refused(with_row(replayed_key, 4, 0), "corrupt.*last replayed")  # replayed, yet counted 0 times
    refused(with_row(never_key, 5, 3), "corrupt.*last replayed")  # never replayed, yet a step
    refused(with_row(replayed_key, 5, None), "corrupt.*last replayed")
    refused({"counters": {**state["counters"], "admitted": state["counters"]["admitted"] + 1}}, "corrupt.*counters")
    refused({"counters": {**state["counters"], "evicted": -1}}, "corrupt")
    refused({"counters_at_last_delta": {**state["counters"], "graduated": state["counters"]["graduated"] + 1}},
            "corrupt.*counters")
    refused({"counters": [0, 0, 0]}, "corrupt")
    without = dict(state)
    del without["counters_at_last_delta"]
    with pytest.raises(ValueError, match="corrupt.*counters_at_last_delta"):
        PromptReplayBuffer(4).load_state_dict(without)


def test_restore_keeps_its_own_capacity_threshold_and_seed():
    source = scripted_buffer()
    for capacity in (100, len(source)):
        other = PromptReplayBuffer(capacity, threshold=0.25, seed=9)
        other.load_state_dict(source.state_dict())
        assert other.capacity == capacity and other.threshold == 0.25 and other.seed == 9
        assert other.question_ids() == source.question_ids()


# ----------------------------------------------------------------------------------------------------------
# Property-based: random operation sequences against a deliberately naive model (lists, sorting, scans).
# ----------------------------------------------------------------------------------------------------------
class ReferenceBuffer:
    """The naive model. The replay draw is random: the model takes the buffer's draw, checks it is a valid one (k
    distinct keys it holds, or all of them), and records it; uniformity is tested above."""

    def __init__(self, capacity, threshold=0.5):
        self.capacity, self.threshold = capacity, threshold
        self.items = []  # in admission order: dicts
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)

    def ids(self):
        return [it["id"] for it in self.items]

    def admit(self, qid, acc, step):
        if acc >= self.threshold or qid in self.ids():
            return False
        if len(self.items) == self.capacity:
            self.items.pop(0)
            self.counters["evicted"] += 1
        self.items.append({"id": qid, "admitted_step": step, "admission_acc": acc, "times": 0, "last_step": None,
                           "acc": acc})
        self.counters["admitted"] += 1
        return True

    def record_draw(self, drawn, k, step):
        assert len(drawn) == len(set(drawn)) == min(max(k, 0), len(self.items))
        assert set(drawn) <= set(self.ids())
        for qid in drawn:
            item = next(it for it in self.items if it["id"] == qid)
            item.update(times=item["times"] + 1, last_step=step)

    def update(self, qid, acc, step):
        for i, item in enumerate(self.items):
            if item["id"] == qid:
                if acc >= self.threshold:
                    self.items.pop(i)
                    self.counters["graduated"] += 1
                    return True
                item["acc"] = acc
                return False
        return False


keys_st = st.sampled_from(list(range(6)) + ["q0", "q1", "q2", "q3", "0", "question/with spaces é", 2**40])
acc_st = st.sampled_from([0.0, 0.125, 0.49, 0.5, 0.51, 0.875, 1.0, 0, 1])
bad_acc_st = st.sampled_from(BAD_ACCURACIES)
op_st = st.one_of(
    st.tuples(st.just("admit"), keys_st, acc_st),
    st.tuples(st.just("sample"), st.integers(-1, 6), st.just(None)),
    st.tuples(st.just("update"), keys_st, acc_st),
    st.tuples(st.sampled_from(["bad_admit", "bad_update"]), keys_st, bad_acc_st),
    st.tuples(st.sampled_from(["reload", "reload_file", "step_deltas"]), st.just(None), st.just(None)),
)


def run_against_reference(capacity: int, ops, folder: Path) -> None:
    buffer, model = PromptReplayBuffer(capacity), ReferenceBuffer(capacity)
    deltas_base = dict(model.counters)
    for step, (op, arg, acc) in enumerate(ops):
        if op == "admit":
            assert buffer.admit(arg, acc, step) == model.admit(arg, acc, step)
        elif op == "sample":
            model.record_draw(buffer.sample(arg, step), arg, step)
        elif op == "update":
            assert buffer.update_replayed(arg, acc, step) == model.update(arg, acc, step)
        elif op in ("bad_admit", "bad_update"):
            with pytest.raises(ValueError, match="accuracy"):
                (buffer.admit if op == "bad_admit" else buffer.update_replayed)(arg, acc, step)
        elif op == "step_deltas":
            assert buffer.step_deltas() == {name: model.counters[name] - deltas_base[name] for name in COUNTER_NAMES}
            deltas_base = dict(model.counters)
        else:
            before = buffer.state_dict()
            buffer = round_trip(buffer) if op == "reload" else file_round_trip(buffer, folder)
            assert buffer.state_dict() == before
        assert len(buffer) == len(model.items) <= capacity
        assert buffer.question_ids() == model.ids()
        assert buffer.counters() == model.counters
        for item in model.items:
            stats = buffer.stats(item["id"])
            assert (stats.admitted_step, stats.admission_accuracy, stats.times_replayed, stats.last_replayed_step,
                    stats.last_accuracy) == (item["admitted_step"], item["admission_acc"], item["times"],
                                             item["last_step"], item["acc"])
            assert item["id"] in buffer


@settings(max_examples=400, deadline=None)
@given(capacity=st.integers(1, 5), ops=st.lists(op_st, max_size=60))
def test_random_operations_match_reference(capacity, ops):
    with tempfile.TemporaryDirectory() as folder:
        run_against_reference(capacity, ops, Path(folder))


def test_long_random_sequence_matches_reference(tmp_path):
    # Thousands of operations on a small buffer: every question leaves and comes back many times.
    rng = np.random.default_rng(0)
    names = ["admit", "admit", "sample", "update", "update", "reload", "reload_file"]
    ops = []
    for i in range(3000):
        op = names[rng.integers(len(names))]
        if op == "sample":
            ops.append((op, int(rng.integers(-1, 8)), None))
        elif op == "reload_file" and i % 50:
            ops.append(("reload", None, None))
        else:
            ops.append((op, f"q{rng.integers(0, 40)}", float(rng.choice([0.0, 0.25, 0.5, 0.75]))))
    run_against_reference(7, ops, tmp_path)


# ----------------------------------------------------------------------------------------------------------
def test_full_capacity_is_small_and_round_trips(tmp_path):
    capacity = 77_000
    keys = [f"zppo77k-{row * 3:08d}" for row in range(capacity + 25_000)]  # the data set's ids exist already
    tracemalloc.start()
    buffer = PromptReplayBuffer(capacity)
    for row in range(capacity):
        buffer.admit(keys[row], 0.0, step=row // 256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.1f} MiB"
    for step in range(3):
        for key in buffer.sample(capacity // 4, step=1000 + step)[::3]:
            buffer.update_replayed(key, 1.0, step=1000 + step)
    for row in range(capacity, capacity + 25_000):
        buffer.admit(keys[row], 0.0, step=2000)  # refills, then evicts
    assert len(buffer) == capacity and buffer.counters()["evicted"] > 0
    restored = file_round_trip(buffer, tmp_path)
    assert restored.state_dict() == buffer.state_dict()
    assert restored.sample(500, 3000) == buffer.sample(500, 3000)
