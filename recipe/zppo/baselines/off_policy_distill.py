"""Off-policy distillation, Algorithm 2 of arXiv 2606.18216 (App. D.2): the update batch is correct teacher rollouts.

Every step, for EVERY prompt of the batch (new and, for the dagger variant, replayed), the served teacher
(``zppo.teacher.server``, the same client as ZPPO's hard-question rollouts) draws G_T = ``zppo.teacher.rollouts``
fresh rollouts (no cache across steps: a replayed question gets new ones), scored with the run's reward. The
correct ones, tokenized with the student's tokenizer (+ its EOS token), are the step's training trajectories: the
student's own G_S rollouts only feed the prompt replay buffer's bookkeeping and the accuracy metrics. verl's
distillation teacher pool rescores them (the teacher's log-prob of every token) and the loss is the per-token JSD
on teacher samples (``distill_loss.TEACHER_SAMPLES``). A prompt whose G_T rollouts are all wrong contributes no row.

This module holds the pure part (:func:`build_trajectories`: which rollouts become rows, and the counts) and the
requests (:class:`TeacherRollouts`); the trainer's ``_off_policy_distill_batch`` wires them into the step.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)

KIND_DISTILL = "distill"  # zppo_kind of a teacher trajectory row


@dataclass(frozen=True)
class TeacherTrajectory:
    """One correct teacher rollout, as the student's tokens: the response the update trains on."""

    question_id: str
    text: str
    token_ids: tuple[int, ...]


@dataclass
class DistillBatchReport:
    """What became of this step's teacher rollouts (logged as zppo/distill/*)."""

    questions: int = 0
    rollouts_requested: int = 0
    rollouts_answered: int = 0  # requests that returned a completion
    rollouts_correct: int = 0
    over_length: int = 0  # correct, but longer than data.max_response_length in the student's tokens
    trajectories: int = 0  # rows of the update batch
    questions_without_correct: int = 0  # contribute no loss this step (Algorithm 2 line 7)
    prompt_tokens: int = 0  # teacher-side usage of the rollouts (the server's counts)
    completion_tokens: int = 0
    per_question: dict[str, int] = field(default_factory=dict)  # trajectories per question

    def metrics(self, prefix: str = "zppo/distill/") -> dict[str, float]:
        names = ("questions", "rollouts_requested", "rollouts_answered", "rollouts_correct", "over_length",
                 "trajectories", "questions_without_correct")
        return {prefix + name: float(getattr(self, name)) for name in names}


@dataclass(frozen=True)
class TeacherAnswer:
    """A teacher rollout's outcome as the pure builder sees it (None text: the request failed)."""

    text: str | None
    prompt_tokens: int = 0
    completion_tokens: int = 0


def build_trajectories(
    answers: Mapping[str, Sequence[TeacherAnswer]],
    requested: int,
    is_correct: Callable[[str, str], bool],
    encode: Callable[[str], list[int]],
    eos_token_id: int | None,
    max_response_length: int,
) -> tuple[list[TeacherTrajectory], DistillBatchReport]:
    """The correct teacher rollouts of every question, tokenized (``encode(text)`` + EOS), in question order.

    ``answers``: question id -> its teacher answers this step; ``requested``: rollouts asked per question;
    ``is_correct(question_id, text)``: the run's reward. A correct rollout over ``max_response_length`` tokens is
    skipped and counted (never cut: a cut answer would teach a response without its final answer)."""
    report = DistillBatchReport(questions=len(answers))
    rows: list[TeacherTrajectory] = []
    for question_id, replies in answers.items():
        report.rollouts_requested += requested
        kept = 0
        for answer in replies:
            if answer.text is None:
                continue
            report.rollouts_answered += 1
            report.prompt_tokens += answer.prompt_tokens
            report.completion_tokens += answer.completion_tokens
            if not is_correct(question_id, answer.text):
                continue
            report.rollouts_correct += 1
            ids = list(encode(answer.text))
            if eos_token_id is not None:
                ids.append(int(eos_token_id))
            if not ids or len(ids) > max_response_length:
                report.over_length += 1
                continue
            rows.append(TeacherTrajectory(question_id, answer.text, tuple(ids)))
            kept += 1
        report.per_question[question_id] = kept
        report.questions_without_correct += kept == 0
    report.trajectories = len(rows)
    return rows, report


class TeacherRollouts:
    """G_T fresh teacher rollouts per question, requested as soon as the step's prompts are known (they overlap
    the student's rollouts) and collected when the update batch is built."""

    def __init__(self, client, rollouts: int, sampling: Mapping[str, Any]):
        self.client = client  # a TeacherClient (anything with .submit(messages, **kw) -> Future[Reply])
        self.rollouts = int(rollouts)
        self.sampling = dict(sampling)  # max_tokens, temperature, top_p, thinking
        self._futures: dict[str, list[Future]] = {}

    def start(self, question_id: str, messages: Sequence[Mapping], images: Sequence[Any]) -> None:
        if question_id in self._futures or self.client is None:
            return
        self._futures[question_id] = [
            self.client.submit(list(messages), images=list(images), **self.sampling) for _ in range(self.rollouts)
        ]

    def collect(self, timeout_s: float) -> dict[str, list[TeacherAnswer]]:
        """Every started question's answers (a request still running after ``timeout_s`` counts as failed); clears
        the step's requests."""
        deadline = time.monotonic() + timeout_s
        out: dict[str, list[TeacherAnswer]] = {}
        for question_id, futures in self._futures.items():
            answers = []
            for future in futures:
                try:
                    reply = future.result(timeout=max(0.0, deadline - time.monotonic()))
                except Exception:  # a timeout (or a bug in the client): this rollout gives nothing
                    logger.warning("a teacher rollout for question %s did not come back in time", question_id)
                    answers.append(TeacherAnswer(None))
                    continue
                completion = reply.completion
                answers.append(TeacherAnswer(
                    completion.text if completion is not None else None,
                    completion.prompt_tokens if completion is not None else 0,
                    completion.completion_tokens if completion is not None else 0,
                ))
            out[question_id] = answers
        self._futures = {}
        return out
