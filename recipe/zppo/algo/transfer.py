"""Transfer: does help on a hard question (a BCQ/NCQ group, ...) make its PLAIN prompt easier later? (pure)

A BCQ can be solved in context (copy the correct candidate) without the plain prompt improving; a high BCQ accuracy
alone proves nothing. This tracker follows every hard question from the step it was found hard to the next time
its plain prompt is rolled out (a replay) at least ``delay_steps`` later, and records its plain-prompt accuracy
then, split by cohort:

- ``helped``: the question got second-phase groups that step (BCQ/NCQ under ZPPO, hint/prefix, or the extra
  plain-prompt groups of ``grpo_matched``);
- ``unhelped``: it was hard but got none (under ``grpo_buffer`` every hard question; under ZPPO those without a
  usable teacher response or wrong candidates).

Logged each step as ``zppo/transfer/{cohort}/{completed, acc_after, gain}`` (this step's completed records) and
``zppo/transfer/{cohort}/cum_{completed, acc_after, gain}`` (all since the start, carried across resumes), where
``gain`` = plain-prompt accuracy later minus accuracy when found hard. Compare ``helped`` against ``unhelped`` in
the same run, and ``helped`` of ZPPO against ``unhelped`` of grpo_buffer / ``helped`` of grpo_matched.

A question evicted from the buffer stays pending until its plain prompt comes round again (a later pass over the
data), so ``pending`` is bounded by the number of distinct questions in the data set.
"""

from __future__ import annotations

from dataclasses import dataclass

COHORTS = ("helped", "unhelped")


@dataclass
class _Pending:
    step: int
    accuracy: float
    cohort: str


class TransferTracker:
    def __init__(self, delay_steps: int = 1):
        if int(delay_steps) < 1:
            raise ValueError(f"zppo.transfer.delay_steps={delay_steps} must be >= 1")
        self.delay_steps = int(delay_steps)
        self._pending: dict[str, _Pending] = {}
        self._step_records: list[tuple[str, float, float]] = []  # (cohort, accuracy before, accuracy after)
        self._totals = {cohort: [0, 0.0, 0.0] for cohort in COHORTS}  # completed, sum acc_after, sum gain

    def __len__(self) -> int:
        return len(self._pending)

    def observe_plain(self, question_id: str, step: int, accuracy: float) -> None:
        """A plain-prompt rollout group of ``question_id``: completes its pending record if old enough."""
        pending = self._pending.get(question_id)
        if pending is None or step - pending.step < self.delay_steps:
            return
        del self._pending[question_id]
        self._step_records.append((pending.cohort, pending.accuracy, float(accuracy)))
        total = self._totals[pending.cohort]
        total[0] += 1
        total[1] += float(accuracy)
        total[2] += float(accuracy) - pending.accuracy

    def mark_hard(self, question_id: str, step: int, accuracy: float, helped: bool) -> None:
        """``question_id`` was found hard at ``step`` (after ``observe_plain`` of the same step)."""
        self._pending[question_id] = _Pending(int(step), float(accuracy), COHORTS[0] if helped else COHORTS[1])

    def close_step(self, prefix: str = "zppo/transfer/") -> dict[str, float]:
        metrics: dict[str, float] = {}
        for cohort in COHORTS:
            records = [(before, after) for c, before, after in self._step_records if c == cohort]
            metrics[f"{prefix}{cohort}/completed"] = float(len(records))
            if records:
                metrics[f"{prefix}{cohort}/acc_after"] = sum(a for _, a in records) / len(records)
                metrics[f"{prefix}{cohort}/gain"] = sum(a - b for b, a in records) / len(records)
            completed, sum_after, sum_gain = self._totals[cohort]
            metrics[f"{prefix}{cohort}/cum_completed"] = float(completed)
            if completed:
                metrics[f"{prefix}{cohort}/cum_acc_after"] = sum_after / completed
                metrics[f"{prefix}{cohort}/cum_gain"] = sum_gain / completed
        metrics[f"{prefix}pending"] = float(len(self._pending))
        self._step_records = []
        return metrics

    def state_dict(self) -> dict:
        return {
            "pending": [[qid, p.step, p.accuracy, p.cohort] for qid, p in self._pending.items()],
            "totals": {cohort: list(values) for cohort, values in self._totals.items()},
        }

    def load_state_dict(self, state: dict | None) -> None:
        state = state or {}
        self._pending = {str(qid): _Pending(int(step), float(acc), str(cohort))
                         for qid, step, acc, cohort in state.get("pending", [])}
        for cohort in COHORTS:
            completed, sum_after, sum_gain = (state.get("totals") or {}).get(cohort, [0, 0.0, 0.0])
            self._totals[cohort] = [int(completed), float(sum_after), float(sum_gain)]
        self._step_records = []
