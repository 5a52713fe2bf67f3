"""One step's decisions over plain data (recipe/zppo/algo/step.py): groups, the hardness rule, the step metrics."""

from __future__ import annotations

import math

import pytest

from recipe.zppo.algo.replay_buffer import PromptReplayBuffer
from recipe.zppo.algo.step import (
    KIND_ORIGINAL,
    KIND_REPLAY,
    Rollout,
    add_counts,
    assess_plain_groups,
    group_rollouts,
    plain_metrics,
    prefix_audit,
    refresh_buffer,
    second_phase_metrics,
    stale_rollouts,
    summary_line,
    update_batch_multiple,
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
                            + _group("u3", "c", KIND_ORIGINAL, [1, 1]) + _group("u4", "d", KIND_REPLAY, [1, 0, 0, 0]))
    outcome = assess_plain_groups(groups, 0.5)
    metrics = plain_metrics(groups, outcome, 0.5)
    assert metrics["zppo/hard_questions"] == 2 and metrics["zppo/hard_frac"] == pytest.approx(2 / 4)
    assert metrics["zppo/plain_acc_hard"] == pytest.approx((0.0 + 0.25) / 2)  # the hard ones' plain accuracy
    assert math.isnan(plain_metrics(groups[1:3], assess_plain_groups(groups[1:3], 0.5), 0.5)["zppo/plain_acc_hard"])
    assert metrics["zppo/zero_adv_group_frac"] == pytest.approx(2 / 4)  # all-wrong and all-right groups
    assert metrics["zppo/fresh_acc"] == pytest.approx(0.5) and metrics["zppo/replay_acc"] == 0.25


def test_buffer_membership_comes_from_plain_groups_only():
    # Algorithm 1 line 19: a buffered question failed on its plain prompt stays even if its BCQ/NCQ groups were
    # solved; a new question solved only with BCQ/NCQ help is admitted; a replayed one solved plain graduates even
    # if its NCQ group failed.
    buffer = PromptReplayBuffer(capacity=10, threshold=0.5)
    buffer.admit("stays", 0.0, step=0)
    buffer.admit("graduates", 0.0, step=0)
    rollouts = (_group("p1", "stays", KIND_REPLAY, [0, 0, 0, 1]) + _group("b1", "stays", "bcq", [1, 1, 1, 1])
                + _group("n1", "stays", "ncq", [1, 1, 1, 1])
                + _group("p2", "graduates", KIND_REPLAY, [1, 1, 0, 0]) + _group("n2", "graduates", "ncq", [0] * 4)
                + _group("p3", "new-hard", KIND_ORIGINAL, [0, 0, 0, 0]) + _group("b3", "new-hard", "bcq", [1] * 4)
                + _group("p4", "new-easy", KIND_ORIGINAL, [1, 1, 1, 0]) + _group("n4", "new-easy", "ncq", [0] * 4)
                + _group("h5", "hint-only", "hint", [0, 0, 0, 0]) + _group("x6", "extra-only", "extra", [0] * 4))
    refresh_buffer(buffer, group_rollouts(rollouts), step=1)
    assert buffer.question_ids() == ["stays", "new-hard"]
    assert buffer.stats("stays").last_accuracy == 0.25 and buffer.stats("new-hard").admission_accuracy == 0.0
    assert buffer.counters() == {"admitted": 3, "graduated": 1, "evicted": 0}


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
    metrics = {"zppo/new_questions": 8, "zppo/replayed_questions": 2, "zppo/hard_questions": 7,
               "zppo/bcq_built": 2, "zppo/bcq_acc": 0.5, "zppo/ncq_built": 3, "zppo/ncq_acc": 0.25,
               "zppo/hint_built": 1, "zppo/hint_acc": 1.0, "zppo/skipped_for_length": 1, "zppo/aug_cap": 6,
               "zppo/aug_dropped_by_cap": 1, "zppo/aug_questions_dropped_by_cap": 2}
    line = summary_line(7, metrics, guidance_mode="hint", buffer_size=9,
                        deltas={"admitted": 2, "graduated": 1, "evicted": 0})
    assert line == ("[zppo] step 7: new 8 + replayed 2 | hard 7 | BCQ 2 (acc 0.50) | NCQ 3 (acc 0.25)"
                    " | hint 1 (acc 1.00) | cap 6 (over it: 2 questions, 1 prompts) | skipped for length 1"
                    " | buffer 9 (+2 in, -1 graduated, -0 evicted)")
    # Nothing over the cap: no count; no cap logged (plain GRPO): no cap part.
    metrics["zppo/aug_dropped_by_cap"] = metrics["zppo/aug_questions_dropped_by_cap"] = 0
    assert " | cap 6 | " in summary_line(7, metrics, "hint", 9, {})
    del metrics["zppo/aug_cap"]
    assert " cap " not in summary_line(7, metrics, "hint", 9, {})


def test_summary_line_adds_the_teachers_counts_when_it_worked():
    metrics = {"zppo/hard_questions": 2, "zppo/teacher/rollouts": 8, "zppo/teacher/correct": 3,
               "zppo/teacher/compressions": 6, "zppo/teacher/compression_ok": 5, "zppo/teacher/failures": 1,
               "zppo/teacher/critical_path_s": 1.25, "zppo/teacher/busy_s": 9.0}
    line = summary_line(1, metrics, guidance_mode="none", buffer_size=2, deltas={})
    assert " | teacher 3/8 correct, 5/6 compressed, 1 failed, waited 1.2s | " in line


def test_update_batch_multiple_gives_equal_mini_batches_of_whole_groups_and_micro_batches():
    # The CPU prefix run: 2 mini-batches, n 4, micro 8, one rank. 9 prompts (36 rows) pad to 48 rows: mini-batches
    # of 24 rows = 6 groups, 3 micro-batches each (K x n alone, 8 rows, gave 40 rows: 20 a mini-batch, not a
    # multiple of the micro-batch, which verl refuses).
    assert update_batch_multiple(1, 4, 2, 8) == 16
    # The paper (Tab. 8): I = 4, G_S 8, micro-batch 4 on 48 student GPUs: a mini-batch of 192 rows = 24 groups at
    # least, 4 rows per rank.
    assert update_batch_multiple(48, 8, 4, 4) == 4 * 192
    # Dynamic micro-batches: whole groups over the ranks only.
    assert update_batch_multiple(6, 8, 4, None) == 4 * 24
    for dp, n, k, micro in ((1, 4, 2, 8), (48, 8, 4, 4), (6, 8, 4, None), (3, 5, 3, 2)):
        multiple = update_batch_multiple(dp, n, k, micro)
        mini = multiple // k
        assert multiple % k == 0 and mini % n == 0 and mini % dp == 0
        assert micro is None or (mini // dp) % micro == 0
