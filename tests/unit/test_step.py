"""One step's decisions over plain data (recipe/zppo/algo/step.py): groups, the hardness rule, the step metrics."""

from __future__ import annotations

import math

import pytest

from recipe.zppo.algo.step import (
    KIND_ORIGINAL,
    KIND_REPLAY,
    Rollout,
    add_counts,
    assess_plain_groups,
    group_rollouts,
    plain_metrics,
    prefix_audit,
    replay_count,
    second_phase_metrics,
    stale_rollouts,
    summary_line,
)


def _group(uid: str, question: str, kind: str, accs: list[float], version: int = 0, **extra) -> list[Rollout]:
    return [Rollout(uid, question, kind, score=acc, acc=acc, response_ids=(1, 2, 3), prompt_length=10,
                    weight_version=version, **extra) for acc in accs]


def test_rollouts_are_grouped_by_uid_in_order_of_first_appearance():
    a, b = _group("u1", "q1", KIND_ORIGINAL, [0, 1]), _group("u2", "q2", KIND_REPLAY, [1])
    groups = group_rollouts([a[0], b[0], a[1]])
    assert [(g.uid, g.question_id, g.kind, len(g.rollouts)) for g in groups] == [
        ("u1", "q1", KIND_ORIGINAL, 2), ("u2", "q2", KIND_REPLAY, 1)]
    assert groups[0].accuracy == 0.5 and not groups[0].trivial and groups[1].trivial


def test_hard_means_plain_accuracy_below_tau_over_fresh_and_replayed_questions():
    rollouts = (_group("u1", "fresh-hard", KIND_ORIGINAL, [0, 0, 1, 0])  # 0.25
                + _group("u2", "fresh-at-tau", KIND_ORIGINAL, [1, 0, 1, 0])  # 0.5: not below tau
                + _group("u3", "replay-hard", KIND_REPLAY, [0, 0, 0, 0]))
    groups = group_rollouts(rollouts)
    outcome = assess_plain_groups(groups, hard_threshold=0.5)
    assert [g.question_id for g in outcome.hard] == ["fresh-hard", "replay-hard"]
    assert outcome.fresh_accuracy == {"fresh-hard": 0.25, "fresh-at-tau": 0.5}
    assert outcome.replay_accuracy == {"replay-hard": 0.0}
    assert outcome.num_questions == 3
    # With ZPPO off (plain GRPO) the accuracies are still recorded but nothing is hard.
    assert assess_plain_groups(groups, 0.5, find_hard=False).hard == []


def test_second_phase_groups_are_refused_by_the_hardness_rule():
    with pytest.raises(ValueError, match="'bcq' group"):
        assess_plain_groups(group_rollouts(_group("u", "q", "bcq", [0])), 0.5)


def test_plain_metrics_count_hard_and_trivial_groups():
    groups = group_rollouts(_group("u1", "a", KIND_ORIGINAL, [0, 0]) + _group("u2", "b", KIND_ORIGINAL, [1, 0])
                            + _group("u3", "c", KIND_ORIGINAL, [1, 1]))
    outcome = assess_plain_groups(groups, 0.5)
    metrics = plain_metrics(groups, outcome, 0.5)
    assert metrics["zppo/hard_questions"] == 1 and metrics["zppo/hard_frac"] == pytest.approx(1 / 3)
    assert metrics["zppo/zero_adv_group_frac"] == pytest.approx(2 / 3)  # all-wrong and all-right groups
    assert metrics["zppo/fresh_acc"] == pytest.approx(0.5) and math.isnan(metrics["zppo/replay_acc"])


def test_replay_count_is_the_ratio_of_the_batch_rounded_down():
    assert replay_count(384, 0.25) == 96 and replay_count(4, 0.25) == 1 and replay_count(3, 0.25) == 0


def test_stale_rollouts_count_other_weight_versions_and_ignore_unknown_ones():
    rollouts = _group("u", "q", KIND_ORIGINAL, [0, 1], version=3) + _group("v", "r", KIND_ORIGINAL, [0], version=2)
    rollouts.append(Rollout("w", "s", KIND_ORIGINAL, 0, 0, (), 1, weight_version=None))
    assert stale_rollouts(rollouts, expected_version=3) == 1.0


def test_second_phase_metrics_per_kind_and_the_bcq_position_audit():
    rollouts = (_group("b1", "q1", "bcq", [1, 1], correct_position="A") + _group("b2", "q2", "bcq", [0, 1],
                                                                               correct_position="B")
                + _group("n1", "q1", "ncq", [0, 0]))
    metrics = second_phase_metrics(rollouts, ["bcq", "ncq", "hint"])
    assert metrics["zppo/bcq_acc"] == 0.75 and metrics["zppo/ncq_acc"] == 0.0 and math.isnan(metrics["zppo/hint_acc"])
    assert metrics["zppo/bcq_zero_adv_group_frac"] == 0.5 and metrics["zppo/ncq_zero_adv_group_frac"] == 1.0
    assert metrics["zppo/bcq_acc_correct_at_a"] == 1.0 and metrics["zppo/bcq_acc_correct_at_b"] == 0.5
    assert metrics["zppo/reformulated_rollouts"] == 6


def test_prefix_audit_finds_teacher_tokens_that_leaked_into_the_loss():
    planned = {"q1": [7, 8, 9], "q2": [7, 8]}
    intact = Rollout("u", "q1", "prefix", 0, 0, response_ids=(1, 2), prompt_length=5, given_head=(7, 8, 9))
    cut = Rollout("v", "q2", "prefix", 0, 0, response_ids=(8, 1), prompt_length=5, given_head=(7,))
    metrics = prefix_audit([intact, cut], planned)
    assert metrics["zppo/prefix/intact_frac"] == 0.5
    assert metrics["zppo/prefix/tokens_in_loss"] == 1  # q2's second teacher token was not masked
    assert metrics["zppo/prefix/tokens_masked"] == 4 and metrics["zppo/prefix/continuation_tokens"] == 4


def test_counts_of_two_builders_add_up():
    metrics = {"zppo/skipped_for_length": 2.0}
    add_counts(metrics, {"zppo/skipped_for_length": 1.0, "zppo/hint_built": 3.0})
    assert metrics == {"zppo/skipped_for_length": 3.0, "zppo/hint_built": 3.0}


def test_summary_line_reads_the_step_metrics():
    metrics = {"zppo/hard_questions": 3, "zppo/bcq_built": 2, "zppo/bcq_acc": 0.5, "zppo/ncq_built": 3,
               "zppo/ncq_acc": 0.25, "zppo/hint_built": 1, "zppo/hint_acc": 1.0, "zppo/skipped_for_length": 1}
    line = summary_line(7, metrics, num_questions=4, guidance_mode="hint", buffer_size=9,
                        deltas={"admitted": 2, "graduated": 1, "evicted": 0})
    assert line == ("[zppo] step 7: hard 3/4 | BCQ 2 (acc 0.50) | NCQ 3 (acc 0.25) | hint 1 (acc 1.00)"
                    " | skipped for length 1 | buffer 9 (+2 in, -1 graduated, -0 evicted)")


def test_summary_line_adds_the_teachers_counts_when_it_worked():
    metrics = {"zppo/hard_questions": 2, "zppo/teacher/rollouts": 8, "zppo/teacher/correct": 3,
               "zppo/teacher/compressions": 6, "zppo/teacher/compression_ok": 5, "zppo/teacher/failures": 1,
               "zppo/teacher/critical_path_s": 1.25, "zppo/teacher/busy_s": 9.0}
    line = summary_line(1, metrics, num_questions=4, guidance_mode="none", buffer_size=2, deltas={})
    assert " | teacher 3/8 correct, 5/6 compressed, 1 failed, waited 1.2s | " in line
