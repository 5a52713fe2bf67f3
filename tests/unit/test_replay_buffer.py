"""Prompt replay buffer (SPEC step 9): thresholds, FIFO eviction, round robin, counters, exact state round trip.

Keys are dataset row positions (non-negative ints). The property test compares the buffer with a deliberately
naive model over random operation sequences, with save/restore (in memory and through the .npz file) between
any two operations.
"""

from __future__ import annotations

import tempfile
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from recipe.zppo.algo.replay_buffer import (
    COUNTER_NAMES,
    ROW_DTYPES,
    STATE_VERSION,
    PromptReplayBuffer,
    load_state,
    save_state,
    state_digest,
)


def fresh_like(buffer: PromptReplayBuffer) -> PromptReplayBuffer:
    return PromptReplayBuffer(buffer.capacity, buffer.admission_threshold, buffer.graduation_threshold)


def round_trip(buffer: PromptReplayBuffer) -> PromptReplayBuffer:
    """Snapshot and load into a fresh buffer of the same config (what a checkpoint and a resume do)."""
    restored = fresh_like(buffer)
    restored.load_state_dict(buffer.state_dict())
    return restored


def file_round_trip(buffer: PromptReplayBuffer, folder: Path) -> PromptReplayBuffer:
    path = folder / "buffer.npz"
    buffer.save(path)
    restored = fresh_like(buffer)
    restored.load(path)
    return restored


def assert_same_state(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b)
    for name in a:
        assert np.array_equal(np.asarray(a[name]), np.asarray(b[name])), name
    assert state_digest(a) == state_digest(b)


def admitted(capacity: int, *keys: int, **thresholds) -> PromptReplayBuffer:
    buffer = PromptReplayBuffer(capacity, **thresholds)
    for key in keys:
        assert buffer.admit(key, 0.0, step=0)
    return buffer


# ----------------------------------------------------------------------------------------------------------
def test_admission_threshold_boundary():
    buffer = PromptReplayBuffer(capacity=10)
    assert not buffer.admit(1, 0.5, step=0)  # 0.5 is not below 0.5
    assert buffer.admit(2, 0.4999, step=0)
    assert buffer.admit(3, 0.0, step=0)
    assert not buffer.admit(4, 1.0, step=0)
    assert 1 not in buffer and 2 in buffer and len(buffer) == 2
    assert buffer.counters() == {"admitted": 2, "graduated": 0, "evicted": 0}


def test_graduation_threshold_boundary():
    buffer = admitted(10, 0, 1, 2)
    assert buffer.sample(3, step=1) == [0, 1, 2]
    assert buffer.update_replayed(0, 0.5, step=1)  # 0.5 graduates
    assert not buffer.update_replayed(1, 0.4999, step=1)
    assert buffer.update_replayed(2, 1.0, step=1)
    assert buffer.question_ids() == [1]
    assert buffer.stats(1).last_accuracy == 0.4999 and buffer.stats(1).times_replayed == 1
    assert buffer.counters()["graduated"] == 2
    # A question that left (or never was in) is ignored.
    assert not buffer.update_replayed(0, 1.0, step=2) and not buffer.update_replayed(99, 1.0, step=2)
    assert buffer.counters()["graduated"] == 2


def test_custom_thresholds():
    buffer = PromptReplayBuffer(capacity=4, admission_threshold=0.25, graduation_threshold=0.75)
    assert not buffer.admit(5, 0.25, 0) and buffer.admit(5, 0.125, 0)
    buffer.sample(1, 1)
    assert not buffer.update_replayed(5, 0.5, 1) and buffer.update_replayed(5, 0.75, 2)


def test_no_double_admission():
    buffer = admitted(10, 7)
    buffer.sample(1, step=1)
    assert not buffer.admit(7, 0.125, step=2)
    stats = buffer.stats(7)
    assert (stats.admitted_step, stats.admission_accuracy, stats.times_replayed, stats.last_replayed_step) == (
        0, 0.0, 1, 1)
    assert len(buffer) == 1 and buffer.counters()["admitted"] == 1
    with pytest.raises(KeyError):
        buffer.stats(8)


def test_fifo_eviction_of_earliest_admitted_even_if_recently_replayed():
    buffer = PromptReplayBuffer(capacity=3)
    for step, key in enumerate((10, 11, 12)):
        buffer.admit(key, 0.0, step)
    assert buffer.sample(1, step=3) == [10]  # 10 is now the most recently replayed
    assert buffer.admit(13, 0.0, step=4)
    assert buffer.question_ids() == [11, 12, 13]
    assert 10 not in buffer
    assert buffer.admit(14, 0.0, step=5)
    assert buffer.question_ids() == [12, 13, 14]
    assert buffer.counters() == {"admitted": 5, "graduated": 0, "evicted": 2}
    # A rejected admission does not evict.
    assert not buffer.admit(15, 0.9, step=6) and not buffer.admit(12, 0.0, step=6)
    assert buffer.counters()["evicted"] == 2


def test_round_robin_least_recently_replayed_first():
    buffer = admitted(10, 0, 1, 2, 3)
    assert buffer.sample(2, step=1) == [0, 1]
    assert buffer.sample(3, step=2) == [2, 3, 0]
    assert buffer.sample(3, step=3) == [1, 2, 3]
    # A newly admitted question has never been replayed: it goes first.
    buffer.admit(4, 0.0, step=3)
    assert buffer.sample(2, step=4) == [4, 0]
    assert buffer.replay_order() == [1, 2, 3, 4, 0]
    # Never more than the buffer holds, never the same key twice in one call.
    assert sorted(buffer.sample(99, step=5)) == [0, 1, 2, 3, 4]
    assert buffer.sample(0, step=6) == [] and buffer.sample(-1, step=6) == []
    assert buffer.stats(0).times_replayed == 4 and buffer.stats(0).last_replayed_step == 5
    with pytest.raises(ValueError, match="step"):
        buffer.sample(1, step=-1)  # -1 is the "never replayed" mark


def test_never_replayed_in_admission_order_before_replayed():
    buffer = admitted(10, 100)
    buffer.sample(1, 1)
    buffer.admit(200, 0.0, 2)
    buffer.admit(300, 0.0, 3)
    assert buffer.sample(3, 4) == [200, 300, 100]


def test_step_deltas():
    buffer = admitted(2, 0, 1)
    assert buffer.step_deltas() == {"admitted": 2, "graduated": 0, "evicted": 0}
    assert buffer.step_deltas() == {"admitted": 0, "graduated": 0, "evicted": 0}
    buffer.admit(2, 0.0, 1)
    buffer.sample(2, 1)
    buffer.update_replayed(1, 1.0, 1)
    assert buffer.step_deltas() == {"admitted": 1, "graduated": 1, "evicted": 1}
    assert buffer.counters() == {"admitted": 3, "graduated": 1, "evicted": 1}


def test_keys_must_be_row_positions():
    buffer = admitted(4, 3)
    for bad in ("q3", 3.0, True, None, (3,)):
        with pytest.raises(TypeError, match="row positions"):
            buffer.admit(bad, 0.0, 0)
        with pytest.raises(TypeError):
            buffer.update_replayed(bad, 0.0, 0)
        with pytest.raises(TypeError):
            _ = bad in buffer
    for bad in (-1, 2**31):
        with pytest.raises(ValueError, match="row position"):
            buffer.admit(bad, 0.0, 0)
    # numpy integers are row positions too, and the same ones as Python ints.
    assert np.int64(3) in buffer and not buffer.admit(np.int32(3), 0.0, 0)
    assert buffer.admit(np.uint32(4), 0.0, 0) and buffer.question_ids() == [3, 4]
    assert all(type(key) is int for key in buffer.question_ids() + buffer.sample(2, 1))


def test_keys_far_beyond_the_first_ones():
    # The key -> slot map grows as larger row positions arrive; a restore keeps them.
    buffer = admitted(3, 5, 70_000, 1_000_000)
    assert buffer.sample(1, 1) == [5]
    assert buffer.admit(2_000_000, 0.0, 2)  # evicts 5
    restored = round_trip(buffer)
    assert restored.question_ids() == [70_000, 1_000_000, 2_000_000] and 5 not in restored
    assert restored.sample(3, 3) == [70_000, 1_000_000, 2_000_000]


def test_key_space_sizes_the_key_map_once():
    buffer = PromptReplayBuffer(4, key_space=500)
    for key in (0, 499, 250):
        assert buffer.admit(key, 0.0, step=0)
    assert len(buffer.state_dict()["slot_of_key"]) == 500  # the trainer passes the data set's row count
    assert buffer.admit(500, 0.0, step=1) and 500 in buffer  # a key past it still works: the map grows
    assert len(buffer.state_dict()["slot_of_key"]) == 1000
    # A buffer with another key space restores it (the map is taken or copied as saved).
    restored = PromptReplayBuffer(4)
    restored.load_state_dict(buffer.state_dict())
    assert restored.question_ids() == [0, 499, 250, 500]
    for bad in (0, -1, 2**31 + 1):
        with pytest.raises(ValueError, match="key_space"):
            PromptReplayBuffer(4, key_space=bad)


# ----------------------------------------------------------------------------------------------------------
def scripted_buffer() -> PromptReplayBuffer:
    """Evictions, graduations (slots refilled from the end), stays and a fresh admission."""
    buffer = PromptReplayBuffer(capacity=4, admission_threshold=0.5, graduation_threshold=0.5)
    for step in range(10):
        buffer.admit(100 + step, step / 40, step)
        for key in buffer.sample(2, step):
            buffer.update_replayed(key, 0.75 if step % 3 == 0 else 0.25, step)
    buffer.step_deltas()
    buffer.admit(500, 0.0, 11)
    return buffer


def test_state_is_read_only_views_that_a_copy_freezes():
    buffer = scripted_buffer()
    state = buffer.state_dict()
    assert state["version"] == STATE_VERSION
    for name, value in state.items():
        assert isinstance(value, (np.ndarray, int, float)), name
    kept = {name: np.array(value, copy=True) for name, value in state.items()}
    digest = state_digest(state)
    # The arrays cannot be written to: a caller cannot corrupt the buffer through them.
    for name in ("keys", "admission_next", "last_accuracy", "slot_of_key"):
        with pytest.raises(ValueError, match="read-only"):
            state[name][0] = 1
    assert state_digest(buffer.state_dict()) == digest
    # They are the buffer's live tables (like torch's state_dict): later changes show in them, not in a copy.
    buffer.admit(600, 0.0, 12)
    for key in buffer.sample(4, 12):
        buffer.update_replayed(key, 1.0, 12)
    assert state_digest(kept) == digest != state_digest(buffer.state_dict())
    assert not np.array_equal(state["times_replayed"], kept["times_replayed"][: len(state["times_replayed"])])
    # A buffer restored from the copy is the buffer as it was, and later changes to the copy do not reach it.
    restored = fresh_like(buffer)
    restored.load_state_dict(kept)
    assert state_digest(restored.state_dict()) == digest
    kept["keys"][:] = 0
    assert state_digest(restored.state_dict()) == digest


def test_state_round_trip_after_evictions_and_replays():
    buffer = scripted_buffer()
    state = buffer.state_dict()
    restored = round_trip(buffer)
    assert_same_state(restored.state_dict(), state)
    assert restored.question_ids() == buffer.question_ids()
    assert restored.replay_order() == buffer.replay_order()
    assert restored.counters() == buffer.counters()
    assert restored.step_deltas() == buffer.step_deltas()
    for key in buffer.question_ids():
        assert restored.stats(key) == buffer.stats(key)
    # The two continue identically.
    for b in (buffer, restored):
        b.admit(700, 0.0, 12)
    assert restored.sample(3, 12) == buffer.sample(3, 12)
    assert_same_state(restored.state_dict(), buffer.state_dict())


def test_save_and_load_file(tmp_path):
    buffer = scripted_buffer()
    path = tmp_path / "zppo_prompt_buffer.npz"
    written = buffer.save(path)
    assert path.exists() and [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left
    read = load_state(path)
    assert_same_state(read, written)
    assert isinstance(read["version"], int) and isinstance(read["admission_threshold"], float)
    restored = fresh_like(buffer)
    assert state_digest(restored.load(path)) == state_digest(written)
    assert_same_state(restored.state_dict(), written)
    assert restored.replay_order() == buffer.replay_order()
    # Saving again replaces the file whole.
    buffer.admit(800, 0.0, 20)
    buffer.save(path)
    again = fresh_like(buffer)
    again.load(path)
    assert 800 in again and again.question_ids() == buffer.question_ids()


def test_load_file_errors_name_the_file(tmp_path):
    buffer = fresh_like(scripted_buffer())
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        buffer.load(tmp_path / "missing.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(ValueError, match="junk.npz"):
        buffer.load(junk)
    old = tmp_path / "old.npz"
    save_state({**scripted_buffer().state_dict(), "version": 1}, old)
    with pytest.raises(ValueError, match=r"old\.npz.*version 1"):
        buffer.load(old)
    assert len(buffer) == 0


def test_load_refuses_bad_state():
    source = scripted_buffer()
    state = source.state_dict()
    size = state["size"]
    assert len(state["keys"]) == source.capacity > size  # whole rows: slots past size are leftovers

    def refused(changes: dict, match: str, capacity: int = 4) -> None:
        buffer = PromptReplayBuffer(capacity)
        buffer.admit(42, 0.0, 0)
        before = state_digest(buffer.state_dict())
        bad = {name: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
               for name, value in state.items()}
        bad.update(changes)
        with pytest.raises(ValueError, match=match):
            buffer.load_state_dict(bad)
        assert state_digest(buffer.state_dict()) == before  # a refused state changes nothing

    refused({}, "capacity", capacity=size - 1)
    refused({"version": 1}, "version")
    refused({"version": 4}, "version")
    refused({"version": None}, "version")
    refused({"replayed_next": None}, "corrupt")  # not an array of ints
    bad_keys = state["keys"].copy()
    bad_keys[1] = bad_keys[0]
    refused({"keys": bad_keys}, "corrupt.*duplicate")
    refused({"keys": state["keys"][:-1]}, "corrupt")  # columns of different lengths
    refused({"times_replayed": np.zeros_like(state["times_replayed"])}, "corrupt")  # replayed list vs counts
    refused({"size": source.capacity + 1}, f"corrupt.*size {source.capacity + 1} for rows of {source.capacity}",
            capacity=source.capacity + 1)  # more questions than the rows have slots
    refused({"size": -1}, "corrupt.*size")
    refused({"size": "3"}, "corrupt.*size")
    refused({"size": size - 1}, "corrupt")  # the last question's links now point past the used slots
    links = state["admission_next"].copy()
    links[links != -1] = size  # links to slots that do not exist
    refused({"admission_next": links}, "corrupt")
    swapped = state["admission_next"].copy()
    swapped[[0, 1]] = swapped[[1, 0]]
    refused({"admission_next": swapped}, "corrupt")
    # A second end in next, placed where a -1 would read prev of the last slot and pass the inverse check.
    before_last = state["admission_prev"][size - 1]
    assert before_last not in (-1, state["admission_tail"])
    second_end = state["admission_next"].copy()
    second_end[before_last] = -1
    refused({"admission_next": second_end}, "corrupt")
    refused({"replayed_head": -1}, "corrupt")
    refused({"replayed_head": None}, "corrupt")
    refused({"first_never_replayed": -1}, "corrupt")
    refused({"counters": np.zeros(2, dtype=np.int64)}, "corrupt")
    without = dict(state)
    del without["slot_of_key"]
    with pytest.raises(ValueError, match="missing"):
        PromptReplayBuffer(4).load_state_dict(without)
    with pytest.raises(ValueError):
        PromptReplayBuffer(capacity=0)
    # A larger capacity takes a smaller saved buffer as it is, and so does a smaller one that holds it.
    for capacity in (100, size):
        other = PromptReplayBuffer(capacity)
        other.load_state_dict(state, assign=True)  # rows of another length: copied, not taken
        assert other.question_ids() == source.question_ids() and other.capacity == capacity
        assert not np.shares_memory(other.state_dict()["keys"], state["keys"])
        assert other.replay_order() == source.replay_order()


def test_reads_a_version_2_file(tmp_path):
    # Version 2 (until the rows were saved whole) saved the used slots only, without "size".
    source = scripted_buffer()
    state = source.state_dict()
    size = state["size"]
    old = {name: value[:size] if name in ROW_DTYPES else value for name, value in state.items() if name != "size"}
    save_state({**old, "version": 2}, tmp_path / "v2.npz")
    restored = fresh_like(source)
    restored.load(tmp_path / "v2.npz")
    assert restored.question_ids() == source.question_ids() and restored.replay_order() == source.replay_order()
    assert restored.counters() == source.counters()
    for key in source.question_ids():
        assert restored.stats(key) == source.stats(key)


def test_assign_takes_the_rows_and_load_does():
    source = scripted_buffer()
    state = {name: np.array(value, copy=True) if isinstance(value, np.ndarray) else value
             for name, value in source.state_dict().items()}
    copied, taken = fresh_like(source), fresh_like(source)
    copied.load_state_dict(state)
    taken.load_state_dict(state, assign=True)
    for buffer in (copied, taken):
        assert_same_state(buffer.state_dict(), source.state_dict())
    for name in ("keys", "admission_prev", "last_accuracy", "slot_of_key"):
        assert not np.shares_memory(copied.state_dict()[name], state[name])
        assert np.shares_memory(taken.state_dict()[name], state[name])  # no copy
    # The buffer that took the rows writes to them; the copy does not see it.
    taken.admit(900, 0.0, 30)
    assert 900 in taken and 900 not in copied and 900 in state["keys"]
    # Read-only arrays (another buffer's state_dict) cannot be taken: they are copied.
    viewer = fresh_like(source)
    viewer.load_state_dict(source.state_dict(), assign=True)
    viewer.admit(901, 0.0, 30)
    assert 901 in viewer and 901 not in source
    # load() takes the rows it has just read from the file, and returns the restored state.
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "buffer.npz"
        written = source.save(path)
        restored, given = fresh_like(source), []
        load_state_dict = restored.load_state_dict
        restored.load_state_dict = lambda state, assign=False: (given.append((state, assign)),
                                                                load_state_dict(state, assign))
        assert_same_state(restored.load(path), written)
        [(read, assign)] = given
        assert assign and np.shares_memory(restored.state_dict()["keys"], read["keys"])  # no copy
        restored.admit(902, 0.0, 30)
        source.admit(902, 0.0, 30)
        assert_same_state(restored.state_dict(), source.state_dict())


# ----------------------------------------------------------------------------------------------------------
# Property-based: random operation sequences against a deliberately naive model (lists, sorting, scans).
# ----------------------------------------------------------------------------------------------------------
class ReferenceBuffer:
    def __init__(self, capacity, admission=0.5, graduation=0.5):
        self.capacity, self.admission, self.graduation = capacity, admission, graduation
        self.items = []  # in admission order: dicts
        self.replay_clock = 0
        self.counters = dict.fromkeys(COUNTER_NAMES, 0)

    def ids(self):
        return [it["id"] for it in self.items]

    def admit(self, qid, acc, step):
        if acc >= self.admission or qid in self.ids():
            return False
        if len(self.items) == self.capacity:
            self.items.pop(0)
            self.counters["evicted"] += 1
        self.items.append({"id": qid, "admitted_step": step, "admission_acc": acc, "times": 0, "last_step": None,
                           "last_seq": None, "acc": acc})
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


keys_st = st.sampled_from(list(range(8)) + [1000, 70_000])  # large keys grow the key -> slot map
acc_st = st.sampled_from([0.0, 0.125, 0.49, 0.5, 0.51, 0.875, 1.0])
op_st = st.one_of(
    st.tuples(st.just("admit"), keys_st, acc_st),
    st.tuples(st.just("sample"), st.integers(-1, 6), st.just(None)),
    st.tuples(st.just("update"), keys_st, acc_st),
    st.tuples(st.sampled_from(["reload", "reload_file"]), st.just(None), st.just(None)),
)


def run_against_reference(capacity: int, ops, folder: Path) -> None:
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
            buffer = round_trip(buffer) if op == "reload" else file_round_trip(buffer, folder)
            assert_same_state(buffer.state_dict(), before)
        assert len(buffer) == len(model.items) <= capacity
        assert buffer.question_ids() == model.ids()
        assert buffer.replay_order() == model.order()
        assert buffer.counters() == model.counters
        for item in model.items:
            stats = buffer.stats(item["id"])
            assert (stats.admitted_step, stats.admission_accuracy, stats.times_replayed, stats.last_replayed_step,
                    stats.last_accuracy) == (item["admitted_step"], item["admission_acc"], item["times"],
                                             item["last_step"], item["acc"])
            assert item["id"] in buffer


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 5), ops=st.lists(op_st, max_size=60))
def test_random_operations_match_reference(capacity, ops):
    with tempfile.TemporaryDirectory() as folder:
        run_against_reference(capacity, ops, Path(folder))


def test_long_random_sequence_matches_reference(tmp_path):
    # Thousands of operations on a small buffer: every slot is vacated and refilled many times.
    rng = np.random.default_rng(0)
    names = ["admit", "admit", "sample", "update", "update", "reload", "reload_file"]
    ops = []
    for _ in range(3000):
        op = names[rng.integers(len(names))]
        if op == "sample":
            ops.append((op, int(rng.integers(-1, 8)), None))
        else:
            ops.append((op, int(rng.integers(0, 40)), float(rng.choice([0.0, 0.25, 0.5, 0.75]))))
    ops = [op if op[0] != "reload_file" or i % 50 == 0 else ("reload", None, None) for i, op in enumerate(ops)]
    run_against_reference(7, ops, tmp_path)


# ----------------------------------------------------------------------------------------------------------
def test_full_capacity_is_small_and_round_trips(tmp_path):
    capacity = 77_000
    tracemalloc.start()
    buffer = PromptReplayBuffer(capacity)
    for row in range(capacity):
        buffer.admit(row * 3, 0.0, step=row // 256)  # row positions of a larger data set
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 50 * 2**20, f"{peak / 2**20:.1f} MiB"
    for step in range(3):
        for key in buffer.sample(capacity // 4, step=1000 + step)[::3]:
            buffer.update_replayed(key, 1.0, step=1000 + step)
    for row in range(capacity, capacity + 5000):
        buffer.admit(row * 3, 0.0, step=2000)  # refills, then evicts
    restored = file_round_trip(buffer, tmp_path)
    assert_same_state(restored.state_dict(), buffer.state_dict())
    assert restored.replay_order() == buffer.replay_order()
    assert restored.sample(500, 3000) == buffer.sample(500, 3000)
