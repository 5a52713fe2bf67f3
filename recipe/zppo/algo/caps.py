"""Algorithm 1's batch sizes and caps (arXiv 2606.18216, App. C, Tab. 8), on plain ids and numbers.

* ``replay_count``: |X_replay| = rho_replay x |X_new| questions drawn from the buffer ON TOP of the |X_new| new ones
  (fewer when the buffer holds fewer).
* ``aug_cap``: at most rho_aug x |X_new| BCQ+NCQ instances per step.
* ``pre_cap`` (Algorithm 1 step 3): the cap's number of hard questions, hardest first (ascending plain accuracy;
  a seeded tie-break).
* ``post_cap`` (Algorithm 1 step 5, line 14): walk the kept questions hardest first, take each one's BCQ then its
  NCQ; the first instance that would exceed the cap is skipped and the walk stops (with one slot left in a question
  that has both, BCQ is kept and NCQ dropped).
* ``capped_reformulation``: the two caps around ``reformulation.reformulate`` (what the trainer calls).

Nothing here knows about Ray or verl.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any, TypeVar

from .reformulation import (
    BCQ,
    NCQ,
    CandidateSet,
    ReformulatedPrompt,
    ReformulationConfig,
    ReformulationResult,
    Tokenization,
    reformulate,
)

T = TypeVar("T")


def fraction_of(ratio: float, count: int) -> int:
    """rho x count as a whole number, half rounded UP (ours: the paper writes rho x |X_new| and does not say how it
    rounds; Python's round() sends 0.5 to the even neighbour, so 0.25 x 2 would give 0 and 0.25 x 10 would give 2).
    Computed from the ratio's shortest decimal form, so 0.35 x 10 is exactly 3.5 (-> 4), not 3.4999..."""
    if count < 0 or not 0.0 <= ratio:
        raise ValueError(f"fraction_of({ratio!r}, {count!r}): needs ratio >= 0 and count >= 0")
    return math.floor(Fraction(repr(float(ratio))) * int(count) + Fraction(1, 2))


def replay_count(num_new: int, ratio: float, buffer_size: int) -> int:
    """|X_replay| = round(rho_replay x |X_new|), at most what the buffer holds (Algorithm 1 line 2)."""
    return min(fraction_of(ratio, num_new), max(int(buffer_size), 0))


def aug_cap(num_new: int, ratio: float) -> int:
    """The most BCQ+NCQ instances (and hard questions kept by the pre-cap) per step: round(rho_aug x |X_new|)."""
    return fraction_of(ratio, num_new)


def tie_break(seed: int, step: int, question_id: Any) -> int:
    """A question's rank among equally hard ones: a digest of (seed, step, id), so it is reproducible (across a
    resume too) and independent of the batch order, and a tie goes another way at another step."""
    digest = hashlib.blake2b(f"{int(seed)}\0{int(step)}\0{question_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def hardest_first(accuracy: Mapping[Any, float], seed: int, step: int) -> list:
    """Question ids by ascending plain accuracy, ties broken by ``tie_break``."""
    return sorted(accuracy, key=lambda qid: (float(accuracy[qid]), tie_break(seed, step, qid)))


@dataclass
class PreCap:
    """Algorithm 1 step 3's choice among the hard questions."""

    kept: list = field(default_factory=list)  # X_aug_pre, hardest first
    dropped: list = field(default_factory=list)  # admissible, but beyond the cap (hardest first)
    inadmissible: list = field(default_factory=list)  # no BCQ or NCQ can be built for them this step


def pre_cap(accuracy: Mapping[Any, float], admissible: Collection | Callable[[Any], bool], cap: int, seed: int,
            step: int) -> PreCap:
    """Keep the ``cap`` hardest of the hard questions (``accuracy``: id -> plain accuracy) that ``admissible`` lets
    through (a collection of ids or a predicate).

    Only admissible questions are ranked (ours, after App. C's text: "the top rho_aug|X_new| base questions by
    ascending r_x that admit at least one of the BCQ or NCQ branches"; Algorithm 1 assumes every hard question
    admits NCQ, which fails here when every wrong rollout's compression failed, or for a BCQ-only run when the
    teacher solved nothing). The teacher work has finished when the cap is applied, so admissibility is known and a
    slot is never spent on a question that can give nothing.
    """
    if cap < 0:
        raise ValueError(f"pre_cap: cap must be >= 0, got {cap}")
    allowed = admissible if callable(admissible) else set(admissible).__contains__
    outcome = PreCap()
    for qid in hardest_first(accuracy, seed, step):
        if not allowed(qid):
            outcome.inadmissible.append(qid)
        elif len(outcome.kept) < cap:
            outcome.kept.append(qid)
        else:
            outcome.dropped.append(qid)
    return outcome


def post_cap(ranked_questions: Sequence, instances: Sequence[T], cap: int, kind_order: Sequence[str] = (BCQ, NCQ),
             question_of: Callable[[T], Any] = lambda p: p.question_id,
             kind_of: Callable[[T], str] = lambda p: p.kind) -> tuple[list[T], list[T]]:
    """Algorithm 1 step 5 (line 14): ``instances`` walked question by question in ``ranked_questions``' order (the
    pre-cap's, hardest first), each question's in ``kind_order`` (BCQ, then NCQ); the first instance that would push
    the kept ones above ``cap`` is skipped and the walk stops. Returns (kept, dropped), both in walk order."""
    if cap < 0:
        raise ValueError(f"post_cap: cap must be >= 0, got {cap}")
    rank = {qid: i for i, qid in enumerate(ranked_questions)}
    strangers = [question_of(p) for p in instances if question_of(p) not in rank]
    if strangers:
        raise ValueError(f"post_cap: instances of questions the pre-cap did not keep: {strangers[:3]}")
    order = {kind: i for i, kind in enumerate(kind_order)}
    walk = sorted(instances, key=lambda p: (rank[question_of(p)], order.get(kind_of(p), len(order))))
    kept = walk[:cap]  # the first instance past the cap is skipped and the walk stops there
    return kept, walk[len(kept):]


def admits(question: CandidateSet, config: ReformulationConfig) -> bool:
    """Whether ``reformulate`` can build a BCQ or an NCQ for ``question`` (before the length check): a wrong student
    candidate, and either NCQ on or a correct teacher candidate for BCQ."""
    if not question.student:
        return False
    return config.build_ncq or (config.build_bcq and bool(question.teacher))


@dataclass
class CapReport:
    """What the caps did this step (logged as ``zppo/aug_*``)."""

    cap: int
    pre: PreCap
    dropped_instances: list = field(default_factory=list)  # built, then dropped by the post-cap

    def metrics(self, prefix: str = "zppo/") -> dict[str, float]:
        return {
            f"{prefix}aug_cap": float(self.cap),
            f"{prefix}aug_questions": float(len(self.pre.kept)),  # |X_aug_pre|
            f"{prefix}aug_questions_dropped_by_cap": float(len(self.pre.dropped)),
            f"{prefix}aug_inadmissible": float(len(self.pre.inadmissible)),
            f"{prefix}aug_dropped_by_cap": float(len(self.dropped_instances)),
        }


def capped_reformulation(
    questions: Sequence[CandidateSet],
    accuracy: Mapping[Any, float],
    cap: int,
    seed: int,
    step: int,
    tokens: Tokenization,
    max_prompt_length: int,
    config: ReformulationConfig,
    measure_prompt: Callable[[ReformulatedPrompt], int] | None = None,
) -> tuple[ReformulationResult, CapReport]:
    """Algorithm 1 steps 3-5 for the step's hard questions (``questions``, each with its teacher work's material;
    ``accuracy``: each one's plain accuracy): pre-cap, build (a prompt over ``max_prompt_length`` is skipped and
    counted, never cut, and does not take a slot), post-cap. The result's ``prompts`` are the survivors in walk
    order."""
    by_id = {q.question_id: q for q in questions}
    pre = pre_cap({qid: accuracy[qid] for qid in by_id}, lambda qid: admits(by_id[qid], config), cap, seed, step)
    result = reformulate([by_id[qid] for qid in pre.kept], step=step, tokens=tokens,
                         max_prompt_length=max_prompt_length, config=config, measure_prompt=measure_prompt)
    result.prompts, dropped = post_cap(pre.kept, result.prompts, cap)
    return result, CapReport(cap, pre, dropped)
