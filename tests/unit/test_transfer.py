"""Transfer metrics: a hard question's plain-prompt accuracy at its next rollout, by whether it was helped."""

from __future__ import annotations

import pytest

from recipe.zppo.algo.transfer import TransferTracker


def test_records_complete_at_the_next_plain_rollout_after_the_delay():
    tracker = TransferTracker(delay_steps=2)
    tracker.mark_hard("a", step=1, accuracy=0.0, helped=True)
    tracker.mark_hard("b", step=1, accuracy=0.25, helped=False)
    tracker.observe_plain("a", step=2, accuracy=1.0)  # too early: still pending
    first = tracker.close_step()
    assert first["zppo/transfer/helped/completed"] == 0 and first["zppo/transfer/pending"] == 2
    tracker.observe_plain("a", step=3, accuracy=0.5)
    tracker.observe_plain("b", step=3, accuracy=0.25)
    tracker.observe_plain("c", step=3, accuracy=1.0)  # never hard: ignored
    second = tracker.close_step()
    assert second["zppo/transfer/helped/completed"] == 1 and second["zppo/transfer/helped/gain"] == 0.5
    assert second["zppo/transfer/unhelped/acc_after"] == 0.25 and second["zppo/transfer/unhelped/gain"] == 0.0
    assert second["zppo/transfer/pending"] == 0


def test_cumulative_means_survive_a_resume():
    tracker = TransferTracker()
    tracker.mark_hard("a", 1, 0.0, helped=True)
    tracker.observe_plain("a", 2, 1.0)
    tracker.mark_hard("a", 2, 0.0, helped=True)  # hard again: a new record
    tracker.mark_hard("b", 2, 0.0, helped=False)
    tracker.close_step()
    resumed = TransferTracker()
    resumed.load_state_dict(tracker.state_dict())
    assert len(resumed) == 2
    resumed.observe_plain("a", 3, 0.0)
    metrics = resumed.close_step()
    assert metrics["zppo/transfer/helped/cum_completed"] == 2
    assert metrics["zppo/transfer/helped/cum_acc_after"] == 0.5 and metrics["zppo/transfer/helped/cum_gain"] == 0.5
    assert "zppo/transfer/unhelped/cum_acc_after" not in metrics  # nothing completed in that cohort yet


def test_delay_must_be_positive():
    with pytest.raises(ValueError, match="delay_steps"):
        TransferTracker(delay_steps=0)
