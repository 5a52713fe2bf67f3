"""What a run spends: rollouts, prompt tokens and generated tokens, per prompt kind, per step and cumulative (pure).

ZPPO spends more rollouts per step than GRPO (its BCQ/NCQ groups), so comparing methods per training step flatters
it; the ledger lets every comparison be made at equal compute instead. Counted per trajectory that was rolled out
(padding rows never reach it):

- ``rollouts``: trajectories;
- ``prompt_tokens``: the prompt's tokens as the rollout saw them (chat template and image tokens included);
- ``generated_tokens``: the tokens the policy sampled (``response_mask`` 1: a ``prefix`` rollout's teacher tokens
  are not generated and not counted).

Logged every step as ``zppo/compute/{kind}/{counter}`` (this step), ``zppo/compute/{counter}`` (this step, all
student kinds) and ``zppo/compute/cum_{counter}`` (since the start of the run, carried across resumes in the
checkpoint). The teacher's requests (rollouts and compressions) are the kind ``teacher``: logged per kind
(``zppo/compute/teacher/*``, and ``zppo/compute/teacher/cum_*``), left out of the student totals that
compute-matched comparisons use.
"""

from __future__ import annotations

from collections import defaultdict

COUNTERS = ("rollouts", "prompt_tokens", "generated_tokens")
TEACHER = "teacher"  # not the student's spend: kept out of the all-kinds totals


class ComputeLedger:
    def __init__(self) -> None:
        self._step: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))
        self._total: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(COUNTERS, 0))

    def add(self, kind: str, prompt_tokens: int, generated_tokens: int, rollouts: int = 1) -> None:
        for store in (self._step, self._total):
            entry = store[str(kind)]
            entry["rollouts"] += int(rollouts)
            entry["prompt_tokens"] += int(prompt_tokens)
            entry["generated_tokens"] += int(generated_tokens)

    def total(self, counter: str, kind: str | None = None) -> int:
        """Run total of ``counter`` for ``kind``, or for every student kind (the teacher's left out)."""
        kinds = [kind] if kind is not None else [k for k in self._total if k != TEACHER]
        return sum(self._total[k][counter] for k in kinds if k in self._total)

    def close_step(self, prefix: str = "zppo/compute/") -> dict[str, float]:
        """This step's metrics (per kind, all kinds, cumulative), then a new step begins."""
        metrics: dict[str, float] = {}
        for kind, entry in sorted(self._step.items()):
            for counter in COUNTERS:
                metrics[f"{prefix}{kind}/{counter}"] = float(entry[counter])
        for counter in COUNTERS:
            metrics[f"{prefix}{counter}"] = float(sum(e[counter] for k, e in self._step.items() if k != TEACHER))
            metrics[f"{prefix}cum_{counter}"] = float(self.total(counter))
            if TEACHER in self._total:
                metrics[f"{prefix}{TEACHER}/cum_{counter}"] = float(self.total(counter, TEACHER))
        self._step.clear()
        return metrics

    def state_dict(self) -> dict:
        return {"total": {kind: dict(entry) for kind, entry in self._total.items()}}

    def load_state_dict(self, state: dict | None) -> None:
        self._total.clear()
        self._step.clear()
        for kind, entry in ((state or {}).get("total") or {}).items():
            self._total[kind] = {counter: int(entry.get(counter, 0)) for counter in COUNTERS}
