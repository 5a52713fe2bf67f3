"""The teacher's part of a ZPPO step (arXiv 2606.18216, Sec. 3.2, Algorithm 1 steps 2 and 4, App. D.1).

For every hard question of the step, new or replayed, the frozen teacher draws G_T fresh rollouts (no cache across
visits), scored with the run's reward; one correct rollout, drawn uniformly, is compressed with the Fig. 16 prompt
and becomes the BCQ's teacher candidate; every wrong student rollout is compressed too (NCQ shows all of them, BCQ
one). A question's work starts as soon as its plain group is scored (``start``), on the teacher client's threads,
so it overlaps the rest of the student's rollouts; ``collect`` waits for what is still running when phase 2 needs
it. Nothing here raises for a teacher failure: a question gets what could be made, and the counters say what not.

The Hint and Prefix baselines (App. D.2, Algorithms 5-6) use the same teacher work through ``start_guidance``, on
their X_aug questions only: G_T fresh rollouts, one correct one drawn uniformly and, for Hint, a third request kind
besides rollouts and compressions: the Fig. 19 hint request (``baselines.teacher_guidance``). Each request kind's
tokens are counted apart (``<kind>_prompt_tokens`` / ``<kind>_completion_tokens``: the compute ledger's teacher
kinds).

Compression rules (ours where the paper is silent, App. D.1): a compressed text is used only when it keeps the
original's final answer exactly; a teacher rollout whose compression fails gives way to the next correct one (in
the same seeded random order); a student rollout whose compression fails is left out of the candidate blocks
(its answer still goes into NCQ's list of wrong answers). With ``compression.enable=false`` (a documented
deviation) candidates are the raw responses.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from ..algo.answer_format import extract_final_answer
from ..algo.compression import COMPRESSION_MAX_TOKENS, OK, compression_messages, parse_compression
from ..algo.reformulation import STUDENT, TEACHER, Candidate, _question_rng, clean_candidate_text
from .client import Reply, TeacherClientConfig
from .service import TeacherServerConfig

logger = logging.getLogger(__name__)

ONLINE, OFFLINE = "online", "offline"
SOURCES = (ONLINE, OFFLINE)


@dataclass  # not frozen: also a Hydra structured-config node (config/schema.py)
class CompressionConfig:
    # Compress every candidate before it enters a prompt (Fig. 16). paper: on. false: raw responses (deviation)
    enable: bool = True
    # Token cap of one compressed candidate. paper: 512
    max_tokens: int = COMPRESSION_MAX_TOKENS
    # ours (the paper gives none): greedy, so a candidate's summary does not depend on a draw
    temperature: float = 0.0
    # ours: no thinking block, so the whole 512-token cap goes to the summary (Qwen3.5's enable_thinking)
    thinking: bool = False

    def __post_init__(self):
        if self.max_tokens < 1 or self.temperature < 0:
            raise ValueError("zppo.teacher.compression: max_tokens must be >= 1 and temperature >= 0")


@dataclass  # not frozen: also a Hydra structured-config node (config/schema.py)
class TeacherConfig:
    # online: fresh teacher rollouts on every visit of a hard question (paper). offline: the responses stored in
    # each row (python -m data_prep.teacher_responses), reused on every visit (a cheaper deviation)
    source: str = ONLINE
    # G_T: teacher rollouts per hard question and visit. paper: 4
    rollouts: int = 4
    # Teacher sampling. paper: temperature 1.0, top-p 1.0, up to 12,288 tokens
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 12288
    # Qwen3.5's thinking template for teacher rollouts (chat_template_kwargs.enable_thinking). ours: on (the
    # model's default; the answer format asks for a think block)
    thinking: bool = True
    # The reward's LLM judge (Fig. 9) is served by the teacher (paper, App. D.1): when the run has a teacher server
    # and the reward names no judge (judge_url / ZPPO_JUDGE_URL), the judge uses this server. false: no judge
    judge: bool = True
    compression: CompressionConfig = field(default_factory=CompressionConfig)
    client: TeacherClientConfig = field(default_factory=TeacherClientConfig)
    server: TeacherServerConfig = field(default_factory=TeacherServerConfig)

    def __post_init__(self):
        if self.source not in SOURCES:
            raise ValueError(f"zppo.teacher.source={self.source!r}: expected one of {SOURCES}")
        if self.rollouts < 1 or self.max_tokens < 1 or self.temperature < 0 or not 0 < self.top_p <= 1:
            raise ValueError("zppo.teacher: rollouts and max_tokens must be >= 1, temperature >= 0, top_p in (0, 1]")


@dataclass(frozen=True)
class WrongRollout:
    """A wrong plain rollout of a hard question: its index in the group, its text and parsed final answer."""

    index: int
    text: str
    answer: str | None


@dataclass
class QuestionMaterial:
    """What the teacher made for one hard question (read once its job is done)."""

    teacher: list[Candidate] = field(default_factory=list)
    student: list[Candidate] = field(default_factory=list)
    wrong_answers: list[str] = field(default_factory=list)  # of every wrong rollout with one (NCQ lists them all)
    teacher_correct: int = 0  # correct teacher rollouts (or stored responses) found
    guide_text: str | None = None  # Hint/Prefix: the correct teacher rollout drawn (uniformly) for this question
    hint: str | None = None  # Hint: the sanitized Fig. 19 hint written from guide_text


REQUEST_KINDS = ("rollout", "compression", "hint")  # what the teacher is asked for (the compute ledger's kinds)
COUNTERS = (
    "rollouts",  # teacher rollouts requested
    "correct",  # of which correct
    "truncated",  # teacher rollouts cut at max_tokens
    "compressions",  # compressions requested
    "compression_ok",
    "compression_answer_changed",
    "compression_no_answer",
    "compression_no_summary",
    "compression_truncated",
    "failures",  # requests that gave no completion (refused, timed out, malformed)
    "abandoned",  # questions whose work was still running when phase 2 could wait no longer
    "hints",  # Fig. 19 hint requests (method=hint)
    "hint_ok",
    "hint_empty",  # refused: nothing left after sanitizing
    "hint_truncated",  # cut at zppo.guidance.hint_max_tokens (kept, sanitized)
    "hint_boxed_stripped",  # \boxed{...} expressions stripped from hints
    "prompt_tokens",  # every request kind together
    "completion_tokens",
    *(f"{kind}_{t}" for kind in REQUEST_KINDS for t in ("prompt_tokens", "completion_tokens")),
)


class _Job:
    """One hard question's teacher work: counts its requests in flight and signals when none is left."""

    def __init__(self, question_id: str):
        self.question_id = question_id
        self.material = QuestionMaterial()
        self.lock = threading.Lock()
        self.pending = 0
        self.done = threading.Event()
        self.done.set()

    def add(self) -> None:
        with self.lock:
            self.pending += 1
            self.done.clear()

    def finish(self) -> None:
        with self.lock:
            self.pending -= 1
            if self.pending == 0:
                self.done.set()


class TeacherWork:
    """One run's teacher work, step by step: ``start`` per hard question, ``collect`` before phase 2."""

    def __init__(self, client, config: TeacherConfig, seed: int = 0):
        # A TeacherClient (anything with .submit(messages, **kw) -> Future[Reply]); None when no teacher is served.
        self.client = client
        self.config = config
        self.seed = seed
        self._lock = threading.Lock()
        self._jobs: dict[str, _Job] = {}
        self._step = 0
        self.counts = dict.fromkeys(COUNTERS, 0)  # this step's
        self.totals = dict.fromkeys(COUNTERS, 0)  # the run's (saved with checkpoints)

    # ------------------------------------------------------------------ step bookkeeping
    def begin_step(self, step: int) -> None:
        with self._lock:
            self._jobs.clear()
            self._step = int(step)
            self.counts = dict.fromkeys(COUNTERS, 0)

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counts[name] += by
            self.totals[name] += by

    def started(self, question_id: str) -> bool:
        return question_id in self._jobs

    # ------------------------------------------------------------------ submitting
    def _submit(self, job: _Job, messages: list[dict], on_reply: Callable[[Reply], None], kind: str,
                **kwargs) -> None:
        job.add()
        future: Future = self.client.submit(messages, **kwargs)

        def done(f: Future) -> None:
            try:
                reply = f.result()
                if reply.completion is None:
                    self._count("failures")
                else:
                    self._count("prompt_tokens", reply.completion.prompt_tokens)
                    self._count("completion_tokens", reply.completion.completion_tokens)
                    self._count(f"{kind}_prompt_tokens", reply.completion.prompt_tokens)
                    self._count(f"{kind}_completion_tokens", reply.completion.completion_tokens)
                on_reply(reply)
            except Exception:  # a bug in a callback must not leave the job pending forever
                logger.exception("teacher work for question %s failed", job.question_id)
            finally:
                job.finish()

        future.add_done_callback(done)

    def _compress(self, job: _Job, text: str, answer: str, on_result: Callable[[str | None], None]) -> None:
        """Compress ``text`` (Fig. 16); ``on_result`` gets the summary, or None when it is not usable."""
        if not self.config.compression.enable:
            on_result(clean_candidate_text(text))
            return
        if self.client is None:
            on_result(None)
            return
        self._count("compressions")
        cfg = self.config.compression

        def on_reply(reply: Reply) -> None:
            if reply.completion is None:
                on_result(None)
                return
            outcome = parse_compression(reply.completion.text, answer, truncated=reply.completion.truncated)
            self._count(f"compression_{outcome.reason}")
            on_result(outcome.text if outcome.reason == OK else None)

        self._submit(job, compression_messages(text), on_reply, "compression", max_tokens=cfg.max_tokens,
                     temperature=cfg.temperature, top_p=1.0, thinking=cfg.thinking)

    def start(
        self,
        question_id: str,
        messages: Sequence[Mapping[str, Any]],
        images: Sequence[Any],
        wrong: Sequence[WrongRollout],
        is_correct: Callable[[str], bool],
        stored: Sequence[tuple[str, bool]] = (),
        want_teacher: bool = True,
    ) -> None:
        """Begin a hard question's work: compress its wrong rollouts; draw (online) or read (offline) the
        teacher's responses and compress one correct one. Returns at once; ``collect`` waits."""
        job = _Job(question_id)
        with self._lock:
            if question_id in self._jobs:
                return
            self._jobs[question_id] = job
        job.material.wrong_answers = [r.answer for r in wrong if r.answer is not None]
        job.add()  # held until everything below is submitted, so the job cannot finish early
        try:
            for rollout in wrong:
                if rollout.answer is None:
                    continue  # no final answer: nothing to keep, nothing to check a summary against

                def keep_student(text, r=rollout):
                    if text is not None:
                        with job.lock:
                            job.material.student.append(Candidate(text, STUDENT, r.answer, r.index))

                self._compress(job, rollout.text, rollout.answer, keep_student)
            if want_teacher:
                if self.config.source == ONLINE:
                    self._draw_teacher(job, list(messages), list(images), is_correct)
                else:
                    self._use_correct(job, [text for text, correct in stored if correct])
        finally:
            job.finish()

    def _draw_teacher(self, job: _Job, messages: list, images: list, is_correct: Callable[[str], bool],
                      then: Callable[[_Job, list[str]], None] | None = None) -> None:
        """G_T fresh rollouts; once all are back, ``then(job, correct texts)`` (default: compress one for BCQ)."""
        if self.client is None:
            return
        then = then or self._use_correct
        cfg = self.config
        replies: list[Reply] = []

        def on_reply(reply: Reply) -> None:
            with job.lock:
                replies.append(reply)
                last = len(replies) == cfg.rollouts
            if last:  # every rollout is back: score them, then compress one correct one
                texts = [r.completion.text for r in replies if r.completion is not None]
                self._count("truncated", sum(r.completion.truncated for r in replies if r.completion is not None))
                then(job, [t for t in texts if _safe(is_correct, t)])

        for _ in range(cfg.rollouts):
            self._count("rollouts")
            self._submit(job, messages, on_reply, "rollout", images=images, max_tokens=cfg.max_tokens,
                         temperature=cfg.temperature, top_p=cfg.top_p, thinking=cfg.thinking)

    def _use_correct(self, job: _Job, correct: list[str]) -> None:
        """Compress the correct teacher responses one at a time, in a seeded random order, until one works."""
        self._count("correct", len(correct))
        job.material.teacher_correct = len(correct)
        rng = _question_rng(self.seed, self._step, job.question_id, purpose=2)
        order = [correct[i] for i in rng.permutation(len(correct))]

        def attempt(position: int) -> None:
            if position >= len(order):
                return
            text = order[position]
            answer = extract_final_answer(text)
            if answer is None:
                attempt(position + 1)
                return

            def keep(summary, a=answer):
                if summary is not None:
                    with job.lock:
                        job.material.teacher.append(Candidate(summary, TEACHER, a))
                else:
                    attempt(position + 1)

            self._compress(job, text, answer, keep)

        attempt(0)

    # ------------------------------------------------------------------ the Hint and Prefix baselines
    def start_guidance(
        self,
        question_id: str,
        messages: Sequence[Mapping[str, Any]],
        images: Sequence[Any],
        is_correct: Callable[[str], bool],
        hint=None,
        seed: int = 0,
        stored: Sequence[tuple[str, bool]] = (),
    ) -> None:
        """An X_aug question's teacher work for Hint / Prefix (Algorithms 5-6, steps 8-13): G_T fresh rollouts
        (online; offline: the stored responses), one correct one drawn uniformly (seeded by (seed, step, id)) into
        ``guide_text`` and, with ``hint`` (a GuidanceConfig), the Fig. 19 hint request on it. Returns at once."""
        job = _Job(question_id)
        with self._lock:
            if question_id in self._jobs:
                return
            self._jobs[question_id] = job
        job.add()
        try:
            def choose(job_: _Job, correct: list[str]) -> None:
                self._count("correct", len(correct))
                job_.material.teacher_correct = len(correct)
                if not correct:
                    return  # the teacher failed on x: no guided group (Algorithm 5 step 10, 6 step 10)
                rng = _question_rng(seed, self._step, job_.question_id, purpose=4)
                text = correct[int(rng.integers(len(correct)))]
                job_.material.guide_text = text
                if hint is not None:
                    self._hint(job_, text, hint)

            if self.config.source == ONLINE:
                self._draw_teacher(job, list(messages), list(images), is_correct, then=choose)
            else:
                choose(job, [text for text, correct in stored if correct])
        finally:
            job.finish()

    def _hint(self, job: _Job, text: str, hint) -> None:
        """Ask the teacher for an answer-free hint on ``text`` (Fig. 19); keep it sanitized, or nothing."""
        from ..baselines.teacher_guidance import HINT_TRUNCATED, hint_messages, sanitize_hint

        if self.client is None:
            return
        self._count("hints")

        def on_reply(reply: Reply) -> None:
            if reply.completion is None:
                return
            outcome = sanitize_hint(reply.completion.text)
            self._count(f"hint_{outcome.reason}")
            self._count("hint_boxed_stripped", outcome.boxes_stripped)
            if reply.completion.truncated:
                self._count(f"hint_{HINT_TRUNCATED}")
            if outcome.text is not None:
                with job.lock:
                    job.material.hint = outcome.text

        self._submit(job, hint_messages(text), on_reply, "hint", max_tokens=hint.hint_max_tokens,
                     temperature=hint.hint_temperature, top_p=1.0, thinking=hint.hint_thinking)

    # ------------------------------------------------------------------ collecting
    def collect(self, question_ids: Sequence[str], timeout_s: float) -> dict[str, QuestionMaterial]:
        """Wait (at most ``timeout_s`` in all) for the questions' work; what is still running is abandoned."""
        deadline = time.monotonic() + timeout_s
        out = {}
        for question_id in question_ids:
            job = self._jobs.get(question_id)
            if job is None:
                out[question_id] = QuestionMaterial()
                continue
            if not job.done.wait(max(0.0, deadline - time.monotonic())):
                self._count("abandoned")
                logger.warning("teacher work for question %s still running: phase 2 goes on without it",
                               question_id)
            with job.lock:
                out[question_id] = QuestionMaterial(list(job.material.teacher), list(job.material.student),
                                                    list(job.material.wrong_answers), job.material.teacher_correct,
                                                    job.material.guide_text, job.material.hint)
        return out

    # ------------------------------------------------------------------ checkpoint
    def state_dict(self) -> dict:
        return {"totals": dict(self.totals)}

    def load_state_dict(self, state: Mapping | None) -> None:
        for name, value in ((state or {}).get("totals") or {}).items():
            if name in self.totals:
                self.totals[name] = int(value)


def _safe(is_correct: Callable[[str], bool], text: str) -> bool:
    try:
        return bool(is_correct(text))
    except Exception:  # a reward that fails on one teacher answer scores it wrong
        logger.exception("scoring a teacher rollout failed")
        return False
