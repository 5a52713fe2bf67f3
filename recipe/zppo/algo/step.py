"""One ZPPO step's decisions over plain data (Algorithm 1, App. C): groups, the hardness rule, and the metrics.

The trainer reads each rollout phase from verl into ``Rollout`` records and hands them here; nothing in this
module knows about Ray, TransferQueue or verl. A step's plain-prompt groups (fresh and replayed questions) decide
which questions are hard (accuracy below tau) and feed the prompt replay buffer; the second phase's groups (BCQ,
NCQ, or a baseline's prompts) only feed metrics.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .reformulation import BCQ

KIND_ORIGINAL = "original"  # a fresh question's plain prompt
KIND_REPLAY = "replay"  # a replayed question's plain prompt
PLAIN_KINDS = (KIND_ORIGINAL, KIND_REPLAY)


@dataclass(frozen=True)
class Rollout:
    """One scored rollout of this step, as the trainer read it back from verl."""

    uid: str  # its group: one uid per prompt
    question_id: str
    kind: str  # original | replay | bcq | ncq | hint | prefix | extra
    score: float
    acc: float  # binary correctness (hardness and the buffer use it)
    response_ids: tuple[int, ...]  # the sampled (trained) response tokens
    prompt_length: int
    weight_version: int | None = None  # the weights that generated it (checked against the step's)
    route: str | None = None  # how the reward scored it (parser / judge / ...)
    correct_position: str = ""  # BCQ only: where the correct candidate was shown ("A" / "B")
    given_head: tuple[int, ...] = ()  # response tokens before its first trained one (a prefix's teacher tokens)


@dataclass(frozen=True)
class Group:
    """The n rollouts of one prompt."""

    uid: str
    question_id: str
    kind: str
    rollouts: tuple[Rollout, ...]

    @property
    def accuracy(self) -> float:
        return float(np.mean([r.acc for r in self.rollouts]))

    @property
    def trivial(self) -> bool:
        """All rewards equal: every advantage is zero, so the group teaches nothing."""
        return len({r.score for r in self.rollouts}) == 1


def group_rollouts(rollouts: Iterable[Rollout]) -> list[Group]:
    """Rollouts grouped by uid, in order of first appearance."""
    by_uid: dict[str, list[Rollout]] = {}
    for rollout in rollouts:
        by_uid.setdefault(rollout.uid, []).append(rollout)
    return [Group(uid, rs[0].question_id, rs[0].kind, tuple(rs)) for uid, rs in by_uid.items()]


@dataclass
class PlainOutcome:
    """What the plain-prompt groups of a step decided."""

    fresh_accuracy: dict[str, float] = field(default_factory=dict)  # question id -> accuracy
    replay_accuracy: dict[str, float] = field(default_factory=dict)
    hard: list[Group] = field(default_factory=list)  # accuracy < tau (only when ZPPO is on)

    @property
    def num_questions(self) -> int:
        return len(self.fresh_accuracy) + len(self.replay_accuracy)


def is_hard(group: Group, hard_threshold: float) -> bool:
    """Algorithm 1's hardness rule: a plain group's accuracy is below tau."""
    return group.kind in PLAIN_KINDS and group.accuracy < hard_threshold


def assess_plain_groups(groups: Sequence[Group], hard_threshold: float, find_hard: bool = True) -> PlainOutcome:
    """The hardness rule of Algorithm 1: a question is hard when its plain-prompt accuracy is below tau."""
    outcome = PlainOutcome()
    for group in groups:
        if group.kind not in PLAIN_KINDS:
            raise ValueError(f"assess_plain_groups got a {group.kind!r} group (question {group.question_id})")
        by_kind = outcome.replay_accuracy if group.kind == KIND_REPLAY else outcome.fresh_accuracy
        by_kind[group.question_id] = group.accuracy
        if find_hard and is_hard(group, hard_threshold):
            outcome.hard.append(group)
    return outcome


def refresh_buffer(buffer, groups: Sequence[Group], step: int) -> None:
    """Algorithm 1 line 19: the buffer's admissions and graduations from this step's PLAIN groups only (new and
    replayed questions); BCQ/NCQ (and every baseline's) groups are skipped: they carry the teacher's or the
    student's candidates in the prompt, so their accuracy says nothing about the question as asked."""
    buffer.refresh({g.question_id: g.accuracy for g in groups if g.kind in PLAIN_KINDS}, step=step)


def _mean(values: Sequence[float], empty: float = float("nan")) -> float:
    return float(np.mean(values)) if len(values) else empty


def plain_metrics(groups: Sequence[Group], outcome: PlainOutcome, hard_threshold: float) -> dict[str, float]:
    """Phase-1 metrics: how many questions are hard (and how hard), how many groups teach nothing, accuracy per
    origin."""
    num_groups = max(len(groups), 1)
    return {
        "zppo/hard_questions": float(len(outcome.hard)),
        "zppo/plain_acc_hard": _mean([g.accuracy for g in outcome.hard]),
        "zppo/hard_frac": sum(g.accuracy < hard_threshold for g in groups) / num_groups,
        "zppo/zero_adv_group_frac": sum(g.trivial for g in groups) / num_groups,
        "zppo/fresh_acc": _mean(list(outcome.fresh_accuracy.values()), empty=0.0),
        "zppo/replay_acc": _mean(list(outcome.replay_accuracy.values())),
    }


def update_batch_multiple(dp_size: int, n: int, num_mini_batches: int, micro_batch_size_per_gpu: int | None) -> int:
    """Rows a batch is padded to a multiple of, for exactly ``num_mini_batches`` equal mini-batches of whole groups
    (``zppo.update.num_mini_batches``): each mini-batch holds whole groups of ``n`` rows and splits evenly over the
    ``dp_size`` ranks into micro-batches of ``micro_batch_size_per_gpu`` rows (verl asserts each rank's share is a
    multiple of it; None: dynamic micro-batches, no such constraint)."""
    per_mini_batch = math.lcm(n, dp_size * micro_batch_size_per_gpu) if micro_batch_size_per_gpu else math.lcm(
        n, dp_size)
    return num_mini_batches * per_mini_batch


def stale_rollouts(rollouts: Sequence[Rollout], expected_version: int) -> float:
    """Rollouts not generated by the expected weights (must be 0: ZPPO is on-policy)."""
    return float(sum(r.weight_version != expected_version for r in rollouts if r.weight_version is not None))


def second_phase_metrics(rollouts: Sequence[Rollout], kinds: Sequence[str]) -> dict[str, float]:
    """Phase-2 metrics: accuracy per prompt kind, share of trivial groups per kind, the BCQ position audit."""
    metrics: dict[str, float] = {}
    for kind in kinds:
        metrics[f"zppo/{kind}_acc"] = _mean([r.acc for r in rollouts if r.kind == kind])
    groups_by_kind: dict[str, list[Group]] = {}
    for group in group_rollouts(rollouts):
        groups_by_kind.setdefault(group.kind, []).append(group)
    for kind, groups in groups_by_kind.items():
        metrics[f"zppo/{kind}_zero_adv_group_frac"] = sum(g.trivial for g in groups) / len(groups)
    for position in ("A", "B"):  # does the student favour a candidate slot? (the correct one is shuffled)
        values = [r.acc for r in rollouts if r.kind == BCQ and r.correct_position == position]
        metrics[f"zppo/bcq_acc_correct_at_{position.lower()}"] = _mean(values)
    metrics["zppo/reformulated_rollouts"] = float(len(rollouts))
    return metrics


def prefix_audit(rollouts: Sequence[Rollout], planned: Mapping[str, Sequence[int]]) -> dict[str, float]:
    """What the update sees of the Prefix baseline's teacher tokens (must be masked out of the loss).

    ``intact_frac``: share of prefix rollouts whose response starts with exactly the planned teacher tokens, all
    masked; ``tokens_in_loss``: planned tokens not in that masked start (must be 0); ``tokens_masked`` and
    ``continuation_tokens``: what is excluded from and kept in the loss.
    """
    intact = in_loss = masked = continuation = 0
    for rollout in rollouts:
        plan = tuple(planned.get(rollout.question_id, ()))
        head = rollout.given_head
        agree = next((i for i, (a, b) in enumerate(zip(head, plan)) if a != b), min(len(head), len(plan)))
        intact += head == plan
        in_loss += len(plan) - agree
        masked += len(head)
        continuation += len(rollout.response_ids)
    count = max(len(rollouts), 1)
    return {
        "zppo/prefix/intact_frac": intact / count,
        "zppo/prefix/tokens_in_loss": float(in_loss),
        "zppo/prefix/tokens_masked": float(masked),
        "zppo/prefix/continuation_tokens": float(continuation),
    }


def add_counts(metrics: dict[str, float], counts: Mapping[str, float]) -> None:
    """Add a builder's counters to the step's (BCQ/NCQ and hint/prefix share the skip counters: they sum)."""
    for key, value in counts.items():
        metrics[key] = metrics.get(key, 0.0) + value


def summary_line(step: int, metrics: Mapping[str, float], guidance_mode: str, buffer_size: int,
                 deltas: Mapping[str, int]) -> str:
    """One line per step of what ZPPO did, read from the step's own metrics: the batch (new + replayed questions),
    the hard ones, what was built within the cap (BCQ, NCQ, a baseline's prompts), the teacher's work, the buffer."""
    nan = float("nan")

    def count(name: str) -> int:
        return int(metrics.get(f"zppo/{name}", 0))

    def built(kind: str, label: str) -> str:
        return f" | {label} {count(kind + '_built')} (acc {metrics.get(f'zppo/{kind}_acc', nan):.2f})"

    def cap() -> str:
        if "zppo/aug_cap" not in metrics:
            return ""
        questions, prompts = count("aug_questions_dropped_by_cap"), count("aug_dropped_by_cap")
        over = f" (over it: {questions} questions, {prompts} prompts)" if questions or prompts else ""
        return f" | cap {count('aug_cap')}{over}"

    def teacher() -> str:
        if "zppo/teacher/rollouts" not in metrics:
            return ""
        t = {k.rsplit("/", 1)[1]: int(v) for k, v in metrics.items() if k.startswith("zppo/teacher/")
             and not k.endswith("_s")}
        return (f" | teacher {t.get('correct', 0)}/{t.get('rollouts', 0)} correct,"
                f" {t.get('compression_ok', 0)}/{t.get('compressions', 0)} compressed"
                + (f", {t['failures']} failed" if t.get("failures") else "")
                + f", waited {metrics.get('zppo/teacher/critical_path_s', 0.0):.1f}s")

    return (
        f"[zppo] step {step}: new {count('new_questions')} + replayed {count('replayed_questions')}"
        f" | hard {count('hard_questions')}"
        + built("bcq", "BCQ")
        + built("ncq", "NCQ")
        + (built(guidance_mode, guidance_mode) if guidance_mode != "none" else "")
        + cap()
        + teacher()
        + f" | skipped for length {count('skipped_for_length')}"
        f" | buffer {buffer_size} (+{deltas.get('admitted', 0)} in,"
        f" -{deltas.get('graduated', 0)} graduated, -{deltas.get('evicted', 0)} evicted)"
    )
