"""The prompt replay buffer of ZPPO (paper Sec. 3.2, "prompt replay buffer"; Algorithm 1 in App. C, Tab. 8).

A question whose plain-prompt accuracy is below tau is admitted; each step ``sample`` draws the questions to replay
UNIFORMLY at random from the buffer (Algorithm 1 line 2: X_replay ~ B), and a buffered question whose plain accuracy
reaches tau graduates (leaves). One tau decides both (Algorithm 1 line 19: "admit {x : r_x < tau} to B, graduate the
rest"). The buffer is FIFO bounded (Tab. 8): when full, the earliest admitted question leaves, however recently it
was replayed, so a question never learned cannot stay forever. The draw is seeded from (seed, step): reproducible,
also across a checkpoint and resume (the restored buffer at the same step draws the same questions). Keys are
question ids (str or int); the buffer never holds rows or images. Plain dicts and Python ints: the code is short
enough to check by reading, and nothing can overflow. Its state is plain JSON, one file per checkpoint.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import numbers
import operator
import os
from collections.abc import Collection, Mapping

import numpy as np

BUFFER_FILE = "zppo_prompt_buffer.json"  # the buffer's file inside each checkpoint folder
STATE_VERSION = 5
COUNTER_NAMES = ("admitted", "graduated", "evicted")
OLD_STATE = ("old checkpoints of the prompt replay buffer (numpy .npz or state versions 1-4, round-robin replay) "
             "cannot be resumed: start a new run directory or resume with resume_mode=disable")


@dataclasses.dataclass(slots=True)
class QuestionStats:
    """What the buffer knows about one question (``stats`` returns a copy)."""

    admitted_step: int
    admission_accuracy: float
    times_replayed: int = 0
    last_replayed_step: int | None = None
    last_accuracy: float | None = None  # at admission, then on each replay of the original prompt


def _as_key(key):
    if type(key) is str or type(key) is int:
        return key
    if isinstance(key, str):
        return str(key)
    if isinstance(key, bool) or not hasattr(type(key), "__index__"):
        raise TypeError(f"replay buffer keys are question ids (str or int), got {type(key).__name__} {key!r}")
    return operator.index(key)  # numpy's integers


def _as_int(value, what: str, minimum: int = 0) -> int:
    if type(value) is int and value >= minimum:
        return value
    if isinstance(value, bool) or not hasattr(type(value), "__index__") or operator.index(value) < minimum:
        raise ValueError(f"{what} must be an int >= {minimum}, got {value!r}")
    return operator.index(value)  # numpy's integers


def _as_accuracy(value, key) -> float:
    if type(value) is float or (isinstance(value, numbers.Real) and not isinstance(value, bool)):
        if 0.0 <= value <= 1.0:  # False for NaN
            return float(value)
    raise ValueError(f"accuracy must be a number in [0, 1], got {value!r} for question {key!r}")


class PromptReplayBuffer:
    """FIFO-bounded set of hard questions, replayed uniformly at random until they graduate. A call that raises
    changes nothing: arguments (and a whole state) are checked before anything is changed."""

    def __init__(self, capacity: int, threshold: float = 0.5, seed: int = 0):
        self.capacity = _as_int(capacity, "replay buffer capacity", minimum=1)
        self.threshold = float(threshold)  # tau: admitted below it, graduated at or above it
        if not 0.0 < self.threshold <= 1.0:
            raise ValueError(f"replay buffer threshold must be in (0, 1], got {threshold!r}")
        self.seed = _as_int(seed, "replay buffer seed")
        # key -> QuestionStats, earliest admitted first. A plain dict (insertion-ordered): the uniform draw lists its
        # keys every step, which a dict's compact array does several times faster than an OrderedDict's linked list.
        self._questions: dict = {}
        self._counters = dict.fromkeys(COUNTER_NAMES, 0)
        self._counters_at_last_delta = dict.fromkeys(COUNTER_NAMES, 0)

    def __len__(self) -> int:
        return len(self._questions)

    def __contains__(self, key) -> bool:
        return _as_key(key) in self._questions

    def stats(self, key) -> QuestionStats:
        """A copy of a question's statistics (KeyError if it is not in the buffer)."""
        return dataclasses.replace(self._questions[_as_key(key)])

    def question_ids(self) -> list:
        """Keys in admission order (earliest first: the next to be evicted)."""
        return list(self._questions)

    def admit(self, key, accuracy: float, step: int) -> bool:
        """Offer a question; True if it entered (accuracy below the threshold and not already in). When full, the
        earliest admitted question is evicted first (FIFO)."""
        key, accuracy, step = _as_key(key), _as_accuracy(accuracy, key), _as_int(step, "step")
        if accuracy >= self.threshold or key in self._questions:
            return False
        if len(self._questions) >= self.capacity:
            del self._questions[next(iter(self._questions))]  # the earliest admitted (FIFO)
            self._counters["evicted"] += 1
        self._questions[key] = QuestionStats(step, accuracy, last_accuracy=accuracy)
        self._counters["admitted"] += 1
        return True

    def sample(self, k: int, step: int, exclude: Collection = ()) -> list:
        """Up to ``k`` distinct keys to replay now, drawn uniformly at random without replacement from the buffered
        questions not in ``exclude`` (e.g. this step's new questions, so that no question is in the batch twice).
        The draw depends only on (seed, step, the buffer's contents in admission order, ``exclude``): the same step
        of a resumed run draws the same keys. Each drawn key's replay count and step are recorded."""
        k, step = operator.index(k), _as_int(step, "step")
        excluded = {key for key in map(_as_key, exclude) if key in self._questions}
        k = min(k, len(self._questions) - len(excluded))
        if k <= 0:
            return []
        # k + |excluded| distinct positions (admission order) in a uniformly random order, the excluded ones then
        # passed over: a uniform draw of k among the others. The keys at those positions are read in one walk of the
        # dict's key iterator (islice skips in C, no list of every key is built).
        rng = np.random.default_rng([self.seed, step])
        positions = rng.choice(len(self._questions), size=k + len(excluded), replace=False).tolist()
        walk, at, key_at = iter(self._questions), 0, {}
        for position in sorted(positions):
            key_at[position] = next(itertools.islice(walk, position - at, None))
            at = position + 1
        chosen = [key for key in map(key_at.__getitem__, positions) if key not in excluded][:k]
        for key in chosen:
            self._questions[key].times_replayed += 1
            self._questions[key].last_replayed_step = step
        return chosen

    def update_replayed(self, key, accuracy_on_original_prompt: float, step: int) -> bool:
        """A buffered question's accuracy on its ORIGINAL prompt; True if it graduated (left the buffer).
        A question no longer in the buffer (evicted since it was sampled) is ignored: False."""
        key = _as_key(key)
        accuracy = _as_accuracy(accuracy_on_original_prompt, key)
        _as_int(step, "step")
        if key not in self._questions:
            return False
        if accuracy >= self.threshold:
            del self._questions[key]
            self._counters["graduated"] += 1
            return True
        self._questions[key].last_accuracy = accuracy
        return False

    def refresh(self, accuracies: Mapping, step: int) -> None:
        """Algorithm 1 line 19 for one step's plain accuracies (question id -> accuracy, new and replayed alike):
        graduate every buffered question at or above the threshold, then admit the rest (a buffered one stays, with
        its latest accuracy), evicting the earliest admitted while full. Graduating first means a question leaving
        this step never takes a newcomer's place by eviction, as in the paper's order (admit, graduate, then evict
        down to the capacity). Every value is checked before anything changes."""
        step = _as_int(step, "step")
        checked = {}
        for key, accuracy in accuracies.items():
            key = _as_key(key)
            checked[key] = _as_accuracy(accuracy, key)
        for key, accuracy in checked.items():
            if accuracy >= self.threshold:
                self.update_replayed(key, accuracy, step)
        for key, accuracy in checked.items():
            if accuracy < self.threshold and not self.admit(key, accuracy, step):
                self.update_replayed(key, accuracy, step)  # already in: keeps its place, records the accuracy

    def counters(self) -> dict[str, int]:
        """Cumulative admitted / graduated / evicted since the run began (checkpoints included)."""
        return dict(self._counters)

    def step_deltas(self) -> dict[str, int]:
        """Counters since the previous call of this method (per-step metrics); resets the baseline."""
        deltas = {name: self._counters[name] - self._counters_at_last_delta[name] for name in COUNTER_NAMES}
        self._counters_at_last_delta = dict(self._counters)
        return deltas

    def state_dict(self) -> dict:
        """A JSON-able copy of the buffer. ``questions``: one row per question in admission order, ``[key,
        admitted_step, admission_accuracy, last_accuracy, times_replayed, last_replayed_step]``. Capacity, threshold
        and seed are for information: a restore keeps its own (the run's config)."""
        return {"version": STATE_VERSION, "capacity": self.capacity, "threshold": self.threshold, "seed": self.seed,
                "questions": [[key, s.admitted_step, s.admission_accuracy, s.last_accuracy, s.times_replayed,
                               s.last_replayed_step] for key, s in self._questions.items()],
                "counters": dict(self._counters), "counters_at_last_delta": dict(self._counters_at_last_delta)}

    def load_state_dict(self, state: dict) -> None:
        """Restore a ``state_dict()``, checked whole first (ValueError). A saved buffer larger than this
        capacity is refused rather than truncated."""
        if not isinstance(state, dict) or state.get("version") != STATE_VERSION:
            version = state.get("version") if isinstance(state, dict) else type(state).__name__
            raise ValueError(f"replay buffer state version {version!r}: {OLD_STATE}")
        try:
            questions = {}
            for key, admitted_step, admission_accuracy, last_accuracy, times, last_step in state["questions"]:
                key, times = _as_key(key), _as_int(times, "times_replayed")
                if key in questions:
                    raise ValueError(f"duplicate key {key!r}")
                if (last_step is None) != (times == 0):
                    raise ValueError(f"question {key!r}: last replayed at {last_step!r} in {times} replays")
                questions[key] = QuestionStats(
                    _as_int(admitted_step, "admitted_step"), _as_accuracy(admission_accuracy, key), times,
                    last_step if last_step is None else _as_int(last_step, "step"), _as_accuracy(last_accuracy, key))
            counters, at_last = ({name: _as_int(state[part][name], name) for name in COUNTER_NAMES}
                                 for part in ("counters", "counters_at_last_delta"))
            if counters["admitted"] != counters["graduated"] + counters["evicted"] + len(questions) or any(
                    at_last[name] > counters[name] for name in COUNTER_NAMES):
                raise ValueError(f"counters {counters} (at last delta {at_last}) for {len(questions)} questions")
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(f"corrupt replay buffer state: {type(err).__name__}: {err}") from err
        if len(questions) > self.capacity:
            raise ValueError(f"saved replay buffer holds {len(questions)} questions, over capacity {self.capacity}")
        self._questions, self._counters, self._counters_at_last_delta = questions, counters, at_last

    def save(self, path: str | os.PathLike) -> dict:
        """Write ``state_dict()`` to one JSON file atomically (a temporary file, fsynced, then renamed over
        ``path``); returns the state written."""
        state, tmp = self.state_dict(), f"{os.fspath(path)}.tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps(state, allow_nan=False, separators=(",", ":")))  # dumps: C encoder, dump: Python
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        return state

    def load(self, path: str | os.PathLike) -> dict:
        """Restore from a file written by ``save``; returns the restored ``state_dict()``."""
        with open(path, "rb") as f:
            data = f.read()
        try:
            if data.startswith((b"PK\x03\x04", b"\x93NUMPY")):  # a numpy .npz / .npy file
                raise ValueError(OLD_STATE)
            self.load_state_dict(json.loads(data))
        except ValueError as err:  # JSONDecodeError and UnicodeDecodeError included
            raise ValueError(f"{os.fspath(path)}: cannot restore the prompt replay buffer: {err}") from err
        return self.state_dict()


def state_digest(state: dict) -> str:
    """SHA-256 (hex) of a state's canonical JSON: the checkpoint fingerprint logged on save and on restore."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()
