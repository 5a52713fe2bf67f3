"""The compute ledger: per-kind and cumulative counts, carried across a resume."""

from recipe.zppo.algo.compute_ledger import ComputeLedger


def test_step_and_cumulative_counts_per_kind():
    ledger = ComputeLedger()
    ledger.add("original", prompt_tokens=10, generated_tokens=5)
    ledger.add("original", prompt_tokens=10, generated_tokens=7)
    ledger.add("bcq", prompt_tokens=40, generated_tokens=9)
    first = ledger.close_step()
    assert first["zppo/compute/original/rollouts"] == 2 and first["zppo/compute/original/generated_tokens"] == 12
    assert first["zppo/compute/bcq/prompt_tokens"] == 40
    assert first["zppo/compute/generated_tokens"] == 21 and first["zppo/compute/cum_generated_tokens"] == 21
    ledger.add("ncq", prompt_tokens=30, generated_tokens=4, rollouts=1)
    second = ledger.close_step()
    # A step reports only its own kinds, and the cumulative totals keep growing.
    assert "zppo/compute/original/rollouts" not in second
    assert second["zppo/compute/rollouts"] == 1 and second["zppo/compute/cum_rollouts"] == 4
    assert second["zppo/compute/cum_prompt_tokens"] == 90


def test_totals_survive_a_checkpoint_round_trip():
    ledger = ComputeLedger()
    ledger.add("replay", prompt_tokens=3, generated_tokens=2)
    ledger.close_step()
    resumed = ComputeLedger()
    resumed.load_state_dict(ledger.state_dict())
    resumed.add("replay", prompt_tokens=1, generated_tokens=1)
    metrics = resumed.close_step()
    assert metrics["zppo/compute/cum_generated_tokens"] == 3 and metrics["zppo/compute/cum_rollouts"] == 2
    assert resumed.total("prompt_tokens", kind="replay") == 4
    empty = ComputeLedger()
    empty.load_state_dict(None)  # a checkpoint from before the ledger existed
    assert empty.close_step()["zppo/compute/cum_rollouts"] == 0


def test_every_teacher_kind_is_teacher_work_kept_out_of_the_student_totals():
    ledger = ComputeLedger()
    ledger.add("original", prompt_tokens=10, generated_tokens=5)
    ledger.add("teacher_rollouts", prompt_tokens=20, generated_tokens=30, rollouts=4)
    ledger.add("teacher_compressions", prompt_tokens=50, generated_tokens=6, rollouts=2)
    ledger.add("teacher_hints", prompt_tokens=40, generated_tokens=8, rollouts=1)
    ledger.add("teacher_rescoring", prompt_tokens=15, generated_tokens=0, rollouts=1)  # on-policy distillation's
    first = ledger.close_step()
    # The student's totals (what compute matching reads) are the student's only.
    assert first["zppo/compute/rollouts"] == 1 and first["zppo/compute/generated_tokens"] == 5
    assert first["zppo/compute/cum_prompt_tokens"] == 10 and ledger.total("generated_tokens") == 5
    # Each teacher kind apart, step and cumulative...
    assert first["zppo/compute/teacher_rollouts/rollouts"] == 4
    assert first["zppo/compute/teacher_hints/generated_tokens"] == 8
    assert first["zppo/compute/teacher_compressions/cum_prompt_tokens"] == 50
    assert first["zppo/compute/teacher_rescoring/cum_prompt_tokens"] == 15
    # ...and together.
    assert first["zppo/compute/teacher/rollouts"] == 8 and first["zppo/compute/teacher/cum_generated_tokens"] == 44
    assert ledger.total("prompt_tokens", kind="teacher") == 125
    ledger.add("teacher_hints", prompt_tokens=1, generated_tokens=2, rollouts=1)
    second = ledger.close_step()
    assert second["zppo/compute/teacher/rollouts"] == 1 and second["zppo/compute/teacher/cum_rollouts"] == 9
    assert second["zppo/compute/teacher_hints/cum_rollouts"] == 2 and "zppo/compute/teacher_rollouts/rollouts" \
        not in second
    assert second["zppo/compute/rollouts"] == 0 and second["zppo/compute/cum_rollouts"] == 1
    # A step without teacher work logs no teacher step counts, but the run's teacher totals go on.
    ledger.add("original", prompt_tokens=1, generated_tokens=1)
    third = ledger.close_step()
    assert "zppo/compute/teacher/rollouts" not in third and third["zppo/compute/teacher/cum_rollouts"] == 9


def test_a_checkpoint_with_the_old_single_teacher_kind_still_counts_as_teacher_work():
    ledger = ComputeLedger()
    ledger.load_state_dict({"total": {"teacher": {"rollouts": 3, "prompt_tokens": 7, "generated_tokens": 9},
                                      "original": {"rollouts": 2, "prompt_tokens": 4, "generated_tokens": 6}}})
    ledger.add("teacher_rollouts", prompt_tokens=1, generated_tokens=1, rollouts=1)
    metrics = ledger.close_step()
    assert metrics["zppo/compute/cum_rollouts"] == 2
    assert metrics["zppo/compute/teacher/cum_rollouts"] == 4 and metrics["zppo/compute/teacher/rollouts"] == 1
