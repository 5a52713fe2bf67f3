"""The compute-matched baseline ``grpo_matched``: GRPO + replay buffer given a ZPPO run's generated tokens (pure).

ZPPO spends extra rollouts on each step's hard questions (a BCQ and an NCQ group of n each). ``grpo_matched``
spends the same budget on the SAME hard questions, but on their plain prompts: after phase 1 it submits extra
groups of n rollouts of a hard question's original prompt, as many as close the gap between its own cumulative
generated tokens and the reference ZPPO run's at this step. The only thing left that differs from ZPPO is what
the prompt shows (candidates or not), so a gap between the two is the reformulation's doing, not the compute's.

Budget rule (``plan_extra_groups``), once per step, after phase 1 has been counted:

    deficit = reference_cum_generated_tokens(step) - own_cum_generated_tokens
    groups  = round(deficit / (n x mean generated length of this step's hard-question rollouts))

clipped to [0, max_extra_groups_per_hard x hard questions] and spread round robin over the hard questions (the
hardest first: lowest accuracy, then batch order). More rollouts per question, not more questions per step:
fresh questions would change which questions the run sees, and replayed ones the buffer's schedule; ZPPO's extra
spend is on this step's hard questions, so the baseline's is too. Each extra group is its own group of n (as
ZPPO's BCQ/NCQ groups are), kind ``extra``; its accuracy does not move the buffer (neither does BCQ/NCQ).

The reference is a ZPPO run's folder (or one of its ``metrics/*.jsonl`` files): its logged
``zppo/compute/cum_generated_tokens`` per step. Between logged steps it is interpolated; past the reference's last
step it grows by the reference's mean spend per step. Logged: ``zppo/matched/{target_cum_generated_tokens,
deficit_tokens, extra_groups, tokens_per_group}`` when planning and ``zppo/matched/gap_tokens`` (own - target,
after the step) so the tracking error is visible.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

KIND_EXTRA = "extra"
CUM_GENERATED = "zppo/compute/cum_generated_tokens"


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class MatchingConfig:
    """``zppo.matched.*`` (defaults and checks here; composed by config/schema.py)."""

    enable: bool = False
    reference: str | None = None  # a ZPPO run folder or metrics JSONL file
    max_extra_groups_per_hard: int = 4

    def __post_init__(self):
        if self.enable and not self.reference:
            raise ValueError(
                "zppo.matched.enable (method=grpo_matched) needs zppo.matched.reference: the folder of the ZPPO run "
                "whose cumulative generated tokens this run matches"
            )
        if int(self.max_extra_groups_per_hard) < 0:
            raise ValueError(f"zppo.matched.max_extra_groups_per_hard={self.max_extra_groups_per_hard} must be >= 0")


class ReferenceCurve:
    """A run's cumulative generated tokens as a function of the step (read once from its metrics)."""

    def __init__(self, points: dict[int, float], source: str = "reference"):
        if not points:
            raise ValueError(f"{source}: no step logs {CUM_GENERATED}; is it a ZPPO run of this project?")
        self.steps = sorted(points)
        self.values = [float(points[s]) for s in self.steps]
        self.source = source

    @classmethod
    def from_run(cls, path: str | Path) -> ReferenceCurve:
        """Read ``path``: a run folder (its ``metrics/*.jsonl``, later launches replace repeated steps) or a file."""
        from ..eval.report import read_training_metrics

        path = Path(path).expanduser()
        if not (path.is_file() or any((path / "metrics").glob("*.jsonl"))):
            raise FileNotFoundError(f"zppo.matched.reference={path}: no metrics/*.jsonl there (a run folder or a file)")
        steps = read_training_metrics(path)
        return cls(
            {step: float(data[CUM_GENERATED]) for step, data in steps if CUM_GENERATED in data}, source=str(path)
        )

    def at(self, step: int) -> float:
        """Cumulative generated tokens of the reference after ``step``: linear between logged steps (and from 0 tokens
        at step 0), and past the last logged step growing by the reference's mean spend per step."""
        last_step, last_value = self.steps[-1], self.values[-1]
        if step > last_step:
            return last_value + (last_value / last_step if last_step > 0 else 0.0) * (step - last_step)
        return float(np.interp(step, [0, *self.steps], [0.0, *self.values]))


@dataclass(frozen=True)
class ExtraPlan:
    question_ids: list  # one entry per extra group (a question appears as often as it gets groups)
    target: float
    deficit: float
    tokens_per_group: float

    def metrics(self, prefix: str = "zppo/matched/") -> dict[str, float]:
        return {
            f"{prefix}target_cum_generated_tokens": self.target,
            f"{prefix}deficit_tokens": self.deficit,
            f"{prefix}extra_groups": float(len(self.question_ids)),
            f"{prefix}tokens_per_group": self.tokens_per_group,
        }


def plan_extra_groups(
    target: float,
    spent: float,
    hard: Sequence[tuple[Hashable, float, float]],
    n: int,
    max_per_hard: int,
) -> ExtraPlan:
    """Which hard questions get extra plain-prompt groups this step (see the module docstring).

    ``hard``: (question id, accuracy, mean generated tokens of its phase-1 rollouts) per hard question, in batch
    order; ``spent``: this run's cumulative generated tokens including this step's phase 1.
    """
    deficit = float(target) - float(spent)
    lengths = [length for _, _, length in hard]
    tokens_per_group = float(n) * max(sum(lengths) / len(lengths), 1.0) if hard else 0.0
    if not hard or deficit <= 0:
        return ExtraPlan([], float(target), deficit, tokens_per_group)
    count = min(int(round(deficit / tokens_per_group)), int(max_per_hard) * len(hard))
    order = [qid for _, _, qid in sorted((acc, i, qid) for i, (qid, acc, _) in enumerate(hard))]
    chosen = [order[i % len(order)] for i in range(count)]
    return ExtraPlan(chosen, float(target), deficit, tokens_per_group)
