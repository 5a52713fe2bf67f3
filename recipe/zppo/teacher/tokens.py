"""Token ids of a step's stored teacher responses, encoded in a background thread while phase 1 generates.

A BCQ prompt shows a correct teacher response cut to a token budget (and the hint / prefix baselines cut one
too), so the reformulation needs the response's token ids. The data set stores teacher responses as text, and
encoding them once the hard questions are known, after phase 1, put 3.1-3.6 s per 1,024 hard questions
(2,048-token responses, one core; ``benchmarks/bench_host.py``) on the step's critical path. The step's
questions are known before phase 1 starts, so the trainer hands their stored texts to ``start``; one worker
thread encodes them (a Hugging Face tokenizer's encode releases the GIL: the driver's own work goes on) while
the rollout workers generate, and ``ids_for`` returns them after phase 1, waiting if the worker is not done.

* Only the current step's ids are kept: ``start`` drops the previous step's, and a worker still busy with them
  stops at its next text.
* The encoder must give exactly what the reformulation's ``Tokenization.encode`` gives; the trainer builds
  both from the same tokenizer, the worker's a copy of it (a fast tokenizer's state is not safe to share
  between threads).
* A failure in the worker is logged once per step and costs nothing else: the reformulation encodes the texts
  itself, as without the prefetch.

No Ray, no GPU: unit-tested with a stand-in encoder.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import Future

logger = logging.getLogger(__name__)


class TeacherTokenPrefetch:
    """Encodes the step's teacher texts on one worker thread; ``ids_for`` hands the ids out after phase 1."""

    def __init__(self, encode: Callable[[str], Sequence[int]]):
        self._encode = encode
        self._thread: threading.Thread | None = None
        self._job: Future | None = None
        self._result: dict[Hashable, dict[str, Sequence[int]]] = {}
        self._generation = 0  # bumped by start: a worker on an older generation stops early
        self._metrics = self._zero_metrics()

    @staticmethod
    def _zero_metrics() -> dict[str, float]:
        return {"prefetched": 0.0, "served": 0.0, "wait_s": 0.0, "encode_s": 0.0, "failed": 0.0}

    def start(self, texts_by_question: Mapping[Hashable, Sequence[str]]) -> None:
        """Begin encoding these questions' texts (this step's); the previous step's ids are dropped."""
        self._generation += 1
        generation = self._generation
        self._job, self._result = None, {}
        work = {question: tuple(texts) for question, texts in texts_by_question.items() if texts}
        if not work:
            return
        self._metrics["prefetched"] += sum(len(texts) for texts in work.values())
        self._job = Future()
        # A daemon thread per step (an exiting run does not wait for it); it first lets the previous step's
        # worker stop, so the two never use the encoder at once.
        self._thread = threading.Thread(target=self._run, args=(self._job, work, generation, self._thread),
                                        name="zppo-teacher-tokens", daemon=True)
        self._thread.start()

    def _run(self, job: Future, work: dict, generation: int, previous: threading.Thread | None) -> None:
        if previous is not None:
            previous.join()
        try:
            job.set_result(self._encode_all(work, generation))
        except BaseException as err:  # noqa: BLE001 - handed to the waiting step
            job.set_exception(err)

    def _encode_all(self, work: dict, generation: int) -> tuple[dict[Hashable, dict[str, Sequence[int]]], float]:
        """On the worker: every text's ids, and the seconds it took."""
        started = time.perf_counter()
        encoded: dict[Hashable, dict[str, Sequence[int]]] = {}
        for question, texts in work.items():
            if generation != self._generation:  # superseded by a later step: stop, nobody waits
                break
            encoded[question] = {text: self._encode(text) for text in texts}
        return encoded, time.perf_counter() - started

    def ids_for(self, question: Hashable) -> dict[str, Sequence[int]]:
        """``{text: token ids}`` of this question's prefetched texts; empty when none were (waits for the worker)."""
        if self._job is not None:
            started = time.perf_counter()
            try:
                self._result, seconds = self._job.result()
                self._metrics["encode_s"] += seconds
            except Exception as err:  # noqa: BLE001 - the reformulation encodes on its own instead
                logger.warning("teacher token prefetch failed (%s: %s); encoding on demand", type(err).__name__, err)
                self._metrics["failed"] += 1
                self._result = {}
            self._metrics["wait_s"] += time.perf_counter() - started
            self._job = None
        found = self._result.get(question, {})
        self._metrics["served"] += len(found)
        return found

    def step_metrics(self, prefix: str = "zppo/teacher_tokens/") -> dict[str, float]:
        """Since the previous call: texts handed to the worker, texts served to hard questions, seconds the step
        waited for the worker, seconds the worker encoded (off the critical path), failed prefetches."""
        metrics, self._metrics = self._metrics, self._zero_metrics()
        return {prefix + name: value for name, value in metrics.items()}
