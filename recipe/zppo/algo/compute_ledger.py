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
checkpoint).

Teacher work is any kind whose name starts with ``teacher`` (``is_teacher``): the trainer records
``teacher_rollouts`` (fresh teacher rollouts, Algorithm 1 step 2 and Algorithms 5-6), ``teacher_compressions``
(Fig. 16), ``teacher_hints`` (Fig. 19, the Hint baseline), and on-policy distillation adds ``teacher_rescoring``
(the teacher's forward pass over the student's responses; App. D.3 counts all of these in Tab. 9's FLOPs). For
the teacher, ``rollouts`` counts requests (or rescored responses) and ``generated_tokens`` the tokens the teacher
wrote. Teacher kinds are left out of the student totals (what compute-matched comparisons use) and logged per kind
(``zppo/compute/teacher_*/{counter}`` and ``.../cum_{counter}``) and together (``zppo/compute/teacher/{counter}``,
``zppo/compute/teacher/cum_{counter}``), so that methods can be compared at equal teacher cost as well.
"""

from __future__ import annotations

from collections import defaultdict

COUNTERS = ("rollouts", "prompt_tokens", "generated_tokens")
TEACHER = "teacher"  # the prefix of every teacher kind (not the student's spend), and the name of their sum


def is_teacher(kind: str) -> bool:
    """Whether ``kind`` is teacher work (teacher_rollouts, teacher_compressions, teacher_hints, teacher_rescoring)."""
    return str(kind).startswith(TEACHER)


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
        """Run total of ``counter`` for ``kind``, or for every student kind (the teacher's left out);
        ``kind="teacher"``: every teacher kind together."""
        if kind == TEACHER:
            kinds = [k for k in self._total if is_teacher(k)]
        else:
            kinds = [kind] if kind is not None else [k for k in self._total if not is_teacher(k)]
        return sum(self._total[k][counter] for k in kinds if k in self._total)

    def close_step(self, prefix: str = "zppo/compute/") -> dict[str, float]:
        """This step's metrics (per kind, all kinds, cumulative), then a new step begins."""
        metrics: dict[str, float] = {}
        for kind, entry in sorted(self._step.items()):
            for counter in COUNTERS:
                metrics[f"{prefix}{kind}/{counter}"] = float(entry[counter])
        teacher_kinds = sorted(k for k in self._total if is_teacher(k) and k != TEACHER)
        for counter in COUNTERS:
            metrics[f"{prefix}{counter}"] = float(sum(e[counter] for k, e in self._step.items() if not is_teacher(k)))
            metrics[f"{prefix}cum_{counter}"] = float(self.total(counter))
            for kind in teacher_kinds:
                metrics[f"{prefix}{kind}/cum_{counter}"] = float(self.total(counter, kind))
            if teacher_kinds or TEACHER in self._total:
                if any(is_teacher(k) for k in self._step):
                    metrics[f"{prefix}{TEACHER}/{counter}"] = float(
                        sum(e[counter] for k, e in self._step.items() if is_teacher(k)))
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
