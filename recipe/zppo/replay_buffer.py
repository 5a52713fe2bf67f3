"""Prompt replay buffer (SPEC step 9): keeps each hard question in play until the student solves it half the time.

The buffer holds question ids and a few numbers per question, never rows or images: the trainer looks the
row up in the dataset when it replays a question, so the buffer stays small (77K ids is a few tens of MB)
and its state is plain JSON.

Life of a question:

* ``admit``: a FRESH question whose accuracy is below ``admission_threshold`` enters, unless it is already
  in. When the buffer is full, the earliest ADMITTED question leaves first (FIFO eviction), however recently
  it was replayed: the capacity bounds how long a question that the student never learns can stay.
* ``sample``: the trainer asks for up to k questions to replay; it gets the least recently replayed ones.
  Questions never replayed come first, in admission order; then replayed ones in the order they were last
  replayed. Each sampled question is marked replayed at that moment and moves to the back, so successive
  calls cycle through the buffer (round robin) even before their accuracies come back.
* ``update_replayed``: the accuracy of a replayed question on its ORIGINAL prompt comes back; at or above
  ``graduation_threshold`` it graduates (leaves), otherwise it stays for a later round.

Every operation is O(1) or O(k): three insertion-ordered dicts (admission order, never-replayed queue,
replayed queue) give O(1) append, O(1) removal by id and O(1) pop from the front. There is no randomness,
so there is no RNG state to save.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass

STATE_VERSION = 1
COUNTER_NAMES = ("admitted", "graduated", "evicted")


@dataclass(slots=True)
class QuestionStats:
    """What the buffer knows about one question (slots: about 100 bytes per question)."""

    admitted_step: int
    admission_accuracy: float
    times_replayed: int = 0
    last_replayed_step: int | None = None
    # The latest accuracy seen: at admission, then on each replay of the original prompt.
    last_accuracy: float | None = None

    def to_dict(self) -> dict:
        return {
            "admitted_step": self.admitted_step,
            "admission_accuracy": self.admission_accuracy,
            "times_replayed": self.times_replayed,
            "last_replayed_step": self.last_replayed_step,
            "last_accuracy": self.last_accuracy,
        }


class PromptReplayBuffer:
    """FIFO-bounded set of hard question ids, replayed round robin until they graduate.

    Question ids must be hashable; use ``str`` or ``int`` so that ``state_dict()`` survives JSON unchanged.
    """

    def __init__(self, capacity: int, admission_threshold: float = 0.5, graduation_threshold: float = 0.5):
        if int(capacity) < 1:
            raise ValueError(f"replay buffer capacity must be >= 1, got {capacity!r}")
        self.capacity = int(capacity)
        self.admission_threshold = float(admission_threshold)
        self.graduation_threshold = float(graduation_threshold)
        # Admission order (front = earliest admitted = next to be evicted) -> stats.
        self._stats: OrderedDict[Hashable, QuestionStats] = OrderedDict()
        # Replay order, split in two so that a newly admitted question can go before every replayed one in
        # O(1): never-replayed questions in admission order, then replayed ones from least to most recent.
        self._never_replayed: OrderedDict[Hashable, None] = OrderedDict()
        self._replayed: OrderedDict[Hashable, None] = OrderedDict()
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._counters_at_last_delta = dict.fromkeys(COUNTER_NAMES, 0)

    # ------------------------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return len(self._stats)

    def __contains__(self, question_id: Hashable) -> bool:
        return question_id in self._stats

    def stats(self, question_id: Hashable) -> QuestionStats:
        """The statistics of a question in the buffer (KeyError if absent). Do not mutate."""
        return self._stats[question_id]

    def question_ids(self) -> list[Hashable]:
        """Ids in admission order (earliest first). O(len): for inspection and tests, not for the hot path."""
        return list(self._stats)

    def replay_order(self) -> list[Hashable]:
        """Ids in the order ``sample`` would return them. O(len): for inspection and tests."""
        return list(self._never_replayed) + list(self._replayed)

    # ------------------------------------------------------------------------------------------------------
    def _remove(self, question_id: Hashable) -> None:
        del self._stats[question_id]
        # A question sits in exactly one of the two replay queues.
        if self._never_replayed.pop(question_id, _ABSENT) is _ABSENT:
            del self._replayed[question_id]

    def admit(self, question_id: Hashable, accuracy: float, step: int) -> bool:
        """Offer a FRESH question with its accuracy this step; True if it entered the buffer.

        It enters when ``accuracy < admission_threshold`` and it is not already in (then nothing changes:
        its replay schedule and statistics are its own). A full buffer first evicts its earliest admitted.
        """
        if accuracy >= self.admission_threshold or question_id in self._stats:
            return False
        if len(self._stats) >= self.capacity:
            earliest = next(iter(self._stats))
            self._remove(earliest)
            self._counters["evicted"] += 1
        self._stats[question_id] = QuestionStats(
            admitted_step=int(step), admission_accuracy=float(accuracy), last_accuracy=float(accuracy)
        )
        self._never_replayed[question_id] = None
        self._counters["admitted"] += 1
        return True

    def sample(self, k: int, step: int) -> list[Hashable]:
        """Up to ``k`` distinct ids to replay now, least recently replayed first; marks them replayed.

        Never-replayed questions come first (admission order), then the replayed ones from least to most
        recently replayed. O(k).
        """
        take = max(0, min(int(k), len(self._stats)))
        chosen = []
        for _ in range(take):
            queue = self._never_replayed if self._never_replayed else self._replayed
            question_id, _ = queue.popitem(last=False)
            chosen.append(question_id)
        # Moved to the back only after all picks, so one call never returns the same id twice.
        for question_id in chosen:
            self._replayed[question_id] = None
            stats = self._stats[question_id]
            stats.times_replayed += 1
            stats.last_replayed_step = int(step)
        return chosen

    def update_replayed(self, question_id: Hashable, accuracy_on_original_prompt: float, step: int) -> bool:
        """Report a replayed question's accuracy on its ORIGINAL prompt; True if it graduated (left).

        A question no longer in the buffer (evicted since it was sampled) is ignored and returns False.
        """
        stats = self._stats.get(question_id)
        if stats is None:
            return False
        if accuracy_on_original_prompt >= self.graduation_threshold:
            self._remove(question_id)
            self._counters["graduated"] += 1
            return True
        stats.last_accuracy = float(accuracy_on_original_prompt)
        return False

    # ------------------------------------------------------------------------------------------------------
    def counters(self) -> dict[str, int]:
        """Cumulative admitted / graduated / evicted since the run began (checkpoints included)."""
        return dict(self._counters)

    def step_deltas(self) -> dict[str, int]:
        """Counters since the previous call of this method (per-step metrics); resets the baseline."""
        deltas = {name: self._counters[name] - self._counters_at_last_delta[name] for name in COUNTER_NAMES}
        self._counters_at_last_delta = dict(self._counters)
        return deltas

    # ------------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        """Everything, as plain JSON-serialisable types; ``load_state_dict`` restores it exactly."""
        return {
            "version": STATE_VERSION,
            "capacity": self.capacity,
            "admission_threshold": self.admission_threshold,
            "graduation_threshold": self.graduation_threshold,
            # Admission order is the list order.
            "questions": [[qid, stats.to_dict()] for qid, stats in self._stats.items()],
            # The never-replayed queue is the admission order of the never-replayed questions, so only the
            # replayed queue needs saving.
            "replayed_order": list(self._replayed),
            "counters": dict(self._counters),
            "counters_at_last_delta": dict(self._counters_at_last_delta),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``. Capacity and thresholds stay those this buffer was built with (the
        resumed run's config); a saved buffer larger than this capacity is refused rather than truncated."""
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported replay buffer state version {state.get('version')!r}")
        questions = state["questions"]
        if len(questions) > self.capacity:
            raise ValueError(
                f"saved replay buffer holds {len(questions)} questions, more than capacity {self.capacity}"
            )
        stats = OrderedDict((qid, QuestionStats(**fields)) for qid, fields in questions)
        replayed = OrderedDict((qid, None) for qid in state["replayed_order"])
        if len(stats) != len(questions) or not all(qid in stats for qid in replayed) or len(replayed) != len(
            state["replayed_order"]
        ):
            raise ValueError("corrupt replay buffer state: duplicate ids or replayed ids not in the buffer")
        self._stats = stats
        self._replayed = replayed
        self._never_replayed = OrderedDict((qid, None) for qid in stats if qid not in replayed)
        self._counters = {name: int(state["counters"][name]) for name in COUNTER_NAMES}
        self._counters_at_last_delta = {name: int(state["counters_at_last_delta"][name]) for name in COUNTER_NAMES}


_ABSENT = object()
