"""Prompt replay buffer (SPEC step 9): thresholds, FIFO eviction, round robin, counters, exact state round trip."""

from __future__ import annotations

import json
import time
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.zppo.replay_buffer import PromptReplayBuffer


def round_trip(buffer: PromptReplayBuffer) -> PromptReplayBuffer:
    """Save through JSON (what a checkpoint does) and load into a fresh buffer of the same config."""
    restored = PromptReplayBuffer(buffer.capacity, buffer.admission_threshold, buffer.graduation_threshold)
    restored.load_state_dict(json.loads(json.dumps(buffer.state_dict())))
    return restored


# ----------------------------------------------------------------------------------------------------------
def test_admission_threshold_boundary():
    buffer = PromptReplayBuffer(capacity=10)
    assert not buffer.admit("half", 0.5, step=0)  # 0.5 is not below 0.5
    assert buffer.admit("just-below", 0.4999, step=0)
    assert buffer.admit("zero", 0.0, step=0)
    assert not buffer.admit("easy", 1.0, step=0)
    assert "half" not in buffer and "just-below" in buffer and len(buffer) == 2
    assert buffer.counters() == {"admitted": 2, "graduated": 0, "evicted": 0}


def test_graduation_threshold_boundary():
    buffer = PromptReplayBuffer(capacity=10)
    for qid in ("a", "b", "c"):
        buffer.admit(qid, 0.0, step=0)
    assert buffer.sample(3, step=1) == ["a", "b", "c"]
    assert buffer.update_replayed("a", 0.5, step=1)  # 0.5 graduates
    assert not buffer.update_replayed("b", 0.4999, step=1)
    assert buffer.update_replayed("c", 1.0, step=1)
    assert buffer.question_ids() == ["b"]
    assert buffer.stats("b").last_accuracy == 0.4999 and buffer.stats("b").times_replayed == 1
    assert buffer.counters()["graduated"] == 2
    # A question that left (or never was in) is ignored.
    assert not buffer.update_replayed("a", 1.0, step=2)
    assert buffer.counters()["graduated"] == 2


def test_custom_thresholds():
    buffer = PromptReplayBuffer(capacity=4, admission_threshold=0.25, graduation_threshold=0.75)
    assert not buffer.admit("q", 0.25, 0) and buffer.admit("q", 0.125, 0)
    buffer.sample(1, 1)
    assert not buffer.update_replayed("q", 0.5, 1) and buffer.update_replayed("q", 0.75, 2)


def test_no_double_admission():
    buffer = PromptReplayBuffer(capacity=10)
    assert buffer.admit("q", 0.0, step=0)
    buffer.sample(1, step=1)
    assert not buffer.admit("q", 0.125, step=2)
    stats = buffer.stats("q")
    assert (stats.admitted_step, stats.admission_accuracy, stats.times_replayed) == (0, 0.0, 1)
    assert len(buffer) == 1 and buffer.counters()["admitted"] == 1


def test_fifo_eviction_of_earliest_admitted_even_if_recently_replayed():
    buffer = PromptReplayBuffer(capacity=3)
    for step, qid in enumerate(("a", "b", "c")):
        buffer.admit(qid, 0.0, step)
    assert buffer.sample(1, step=3) == ["a"]  # a is now the most recently replayed
    assert buffer.admit("d", 0.0, step=4)
    assert buffer.question_ids() == ["b", "c", "d"]
    assert "a" not in buffer
    assert buffer.admit("e", 0.0, step=5)
    assert buffer.question_ids() == ["c", "d", "e"]
    assert buffer.counters() == {"admitted": 5, "graduated": 0, "evicted": 2}
    # A rejected admission does not evict.
    assert not buffer.admit("easy", 0.9, step=6) and not buffer.admit("c", 0.0, step=6)
    assert buffer.counters()["evicted"] == 2


def test_round_robin_least_recently_replayed_first():
    buffer = PromptReplayBuffer(capacity=10)
    for qid in "abcd":
        buffer.admit(qid, 0.0, step=0)
    assert buffer.sample(2, step=1) == ["a", "b"]
    assert buffer.sample(3, step=2) == ["c", "d", "a"]
    assert buffer.sample(3, step=3) == ["b", "c", "d"]
    # A newly admitted question has never been replayed: it goes first.
    buffer.admit("e", 0.0, step=3)
    assert buffer.sample(2, step=4) == ["e", "a"]
    assert buffer.replay_order() == ["b", "c", "d", "e", "a"]
    # Never more than the buffer holds, never the same id twice in one call.
    assert sorted(buffer.sample(99, step=5)) == list("abcde")
    assert buffer.sample(0, step=6) == [] and buffer.sample(-1, step=6) == []
    assert buffer.stats("a").times_replayed == 4 and buffer.stats("a").last_replayed_step == 5


def test_never_replayed_in_admission_order_before_replayed():
    buffer = PromptReplayBuffer(capacity=10)
    buffer.admit("old", 0.0, 0)
    buffer.sample(1, 1)
    buffer.admit("x", 0.0, 2)
    buffer.admit("y", 0.0, 3)
    assert buffer.sample(3, 4) == ["x", "y", "old"]


def test_step_deltas():
    buffer = PromptReplayBuffer(capacity=2)
    buffer.admit("a", 0.0, 0)
    buffer.admit("b", 0.0, 0)
    assert buffer.step_deltas() == {"admitted": 2, "graduated": 0, "evicted": 0}
    assert buffer.step_deltas() == {"admitted": 0, "graduated": 0, "evicted": 0}
    buffer.admit("c", 0.0, 1)
    buffer.sample(2, 1)
    buffer.update_replayed("b", 1.0, 1)
    assert buffer.step_deltas() == {"admitted": 1, "graduated": 1, "evicted": 1}
    assert buffer.counters() == {"admitted": 3, "graduated": 1, "evicted": 1}


def test_state_round_trip_after_evictions_and_replays():
    buffer = PromptReplayBuffer(capacity=4, admission_threshold=0.5, graduation_threshold=0.5)
    for step in range(10):
        buffer.admit(f"q{step}", step / 40, step)
        for qid in buffer.sample(2, step):
            buffer.update_replayed(qid, 0.75 if step % 3 == 0 else 0.25, step)
    buffer.step_deltas()
    buffer.admit("late", 0.0, 11)
    state = buffer.state_dict()
    assert json.loads(json.dumps(state)) == state  # plain JSON types
    restored = round_trip(buffer)
    assert restored.state_dict() == state
    assert restored.question_ids() == buffer.question_ids()
    assert restored.replay_order() == buffer.replay_order()
    assert restored.step_deltas() == buffer.step_deltas()
    # The two continue identically.
    for b in (buffer, restored):
        b.admit("next", 0.0, 12)
    assert restored.sample(3, 12) == buffer.sample(3, 12)
    assert restored.state_dict() == buffer.state_dict()


def test_load_refuses_bad_state():
    buffer = PromptReplayBuffer(capacity=3)
    for qid in "abc":
        buffer.admit(qid, 0.0, 0)
    with pytest.raises(ValueError, match="capacity"):
        PromptReplayBuffer(capacity=2).load_state_dict(buffer.state_dict())
    state = buffer.state_dict()
    state["replayed_order"] = ["zzz"]
    with pytest.raises(ValueError, match="corrupt"):
        PromptReplayBuffer(capacity=3).load_state_dict(state)
    with pytest.raises(ValueError, match="version"):
        PromptReplayBuffer(capacity=3).load_state_dict({**buffer.state_dict(), "version": 99})
    with pytest.raises(ValueError):
        PromptReplayBuffer(capacity=0)


# ----------------------------------------------------------------------------------------------------------
# Property-based: random operation sequences against a deliberately naive model (lists, sorting, scans).
# ----------------------------------------------------------------------------------------------------------
class ReferenceBuffer:
    def __init__(self, capacity, admission=0.5, graduation=0.5):
        self.capacity, self.admission, self.graduation = capacity, admission, graduation
        self.items = []  # in admission order: dicts
        self.replay_clock = 0
        self.counters = {"admitted": 0, "graduated": 0, "evicted": 0}

    def ids(self):
        return [it["id"] for it in self.items]

    def admit(self, qid, acc, step):
        if acc >= self.admission or qid in self.ids():
            return False
        if len(self.items) == self.capacity:
            self.items.pop(0)
            self.counters["evicted"] += 1
        self.items.append({"id": qid, "admitted_step": step, "times": 0, "last_step": None, "last_seq": None,
                           "acc": acc})
        self.counters["admitted"] += 1
        return True

    def order(self):
        # Never replayed first (admission order), then by when each was last replayed.
        position = {it["id"]: i for i, it in enumerate(self.items)}
        return sorted(self.ids(), key=lambda q: (
            self.items[position[q]]["last_seq"] is not None, self.items[position[q]]["last_seq"] or 0, position[q]))

    def sample(self, k, step):
        chosen = self.order()[: max(k, 0)]
        for qid in chosen:
            item = next(it for it in self.items if it["id"] == qid)
            self.replay_clock += 1
            item.update(times=item["times"] + 1, last_step=step, last_seq=self.replay_clock)
        return chosen

    def update(self, qid, acc, step):
        for i, item in enumerate(self.items):
            if item["id"] == qid:
                if acc >= self.graduation:
                    self.items.pop(i)
                    self.counters["graduated"] += 1
                    return True
                item["acc"] = acc
                return False
        return False


ids_st = st.sampled_from([f"q{i}" for i in range(8)] + [7, 8])  # str and int ids both round-trip
acc_st = st.sampled_from([0.0, 0.125, 0.49, 0.5, 0.51, 0.875, 1.0])
op_st = st.one_of(
    st.tuples(st.just("admit"), ids_st, acc_st),
    st.tuples(st.just("sample"), st.integers(-1, 6), st.just(None)),
    st.tuples(st.just("update"), ids_st, acc_st),
    st.tuples(st.just("reload"), st.just(None), st.just(None)),
)


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 5), ops=st.lists(op_st, max_size=60))
def test_random_operations_match_reference(capacity, ops):
    buffer, model = PromptReplayBuffer(capacity), ReferenceBuffer(capacity)
    for step, (op, arg, acc) in enumerate(ops):
        if op == "admit":
            assert buffer.admit(arg, acc, step) == model.admit(arg, acc, step)
        elif op == "sample":
            assert buffer.sample(arg, step) == model.sample(arg, step)
        elif op == "update":
            assert buffer.update_replayed(arg, acc, step) == model.update(arg, acc, step)
        else:
            before = buffer.state_dict()
            buffer = round_trip(buffer)
            assert buffer.state_dict() == before
        assert len(buffer) == len(model.items) <= capacity
        assert buffer.question_ids() == model.ids()
        assert buffer.replay_order() == model.order()
        assert buffer.counters() == model.counters
        for item in model.items:
            stats = buffer.stats(item["id"])
            assert (stats.admitted_step, stats.times_replayed, stats.last_replayed_step, stats.last_accuracy) == (
                item["admitted_step"], item["times"], item["last_step"], item["acc"])
            assert item["id"] in buffer


# ----------------------------------------------------------------------------------------------------------
def test_operations_fast_and_small_at_full_capacity():
    capacity = 77_000
    ids = [f"vero-{i:06d}" for i in range(capacity)]  # the caller's strings: the buffer only references them
    tracemalloc.start()
    buffer = PromptReplayBuffer(capacity)
    for i, qid in enumerate(ids):
        buffer.admit(qid, 0.0, step=i // 256)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.1f} MiB"

    mean_seconds = {}
    for name, op in {
        "admit_with_eviction": lambda i: buffer.admit(f"new-{i}", 0.0, 1000),
        "sample_64": lambda i: buffer.sample(64, 1000),
        "update": lambda i: buffer.update_replayed(f"vero-{i + 20_000:06d}", 0.25, 1000),
        "graduate": lambda i: buffer.update_replayed(f"vero-{i + 40_000:06d}", 1.0, 1000),
        "contains": lambda i: f"vero-{i + 60_000:06d}" in buffer,
    }.items():
        start = time.perf_counter()
        for i in range(1000):
            op(i)
        mean_seconds[name] = (time.perf_counter() - start) / 1000
    # Mean over 1,000 calls: single calls can hit a garbage-collector pause on a busy machine.
    assert all(seconds < 1e-3 for seconds in mean_seconds.values()), mean_seconds
    assert round_trip(buffer).state_dict() == buffer.state_dict()
