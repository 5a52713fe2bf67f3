"""grpo_matched's budget rule: the reference curve and how many extra plain-prompt groups each step gets."""

from __future__ import annotations

import json

import pytest

from recipe.zppo.baselines.compute_matching import CUM_GENERATED, MatchingConfig, ReferenceCurve, plan_extra_groups


def _write_run(folder, launches: list[dict[int, float]]):
    (folder / "metrics").mkdir(parents=True)
    for number, points in enumerate(launches):
        lines = [json.dumps({"step": step, "data": {"training/global_step": step, CUM_GENERATED: value}})
                 for step, value in points.items()]
        (folder / "metrics" / f"launch{number}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_reference_curve_reads_a_run_folder_later_launches_win(tmp_path):
    run = _write_run(tmp_path / "zppo", [{1: 100.0, 2: 250.0, 3: 999.0}, {3: 400.0, 4: 500.0}])
    curve = ReferenceCurve.from_run(run)
    assert [curve.at(s) for s in (1, 2, 3, 4)] == [100.0, 250.0, 400.0, 500.0]
    # Past the end: the reference's mean spend per step (500 / 4); between logged steps: linear.
    assert curve.at(6) == pytest.approx(500.0 + 2 * 125.0)
    sparse = ReferenceCurve({2: 200.0, 6: 600.0})
    assert sparse.at(4) == pytest.approx(400.0) and sparse.at(1) == pytest.approx(100.0)


def test_reference_errors_name_the_path(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics"):
        ReferenceCurve.from_run(tmp_path / "missing")
    run = tmp_path / "grpo"
    (run / "metrics").mkdir(parents=True)
    (run / "metrics" / "a.jsonl").write_text(json.dumps({"step": 1, "data": {"x": 1}}) + "\n")
    with pytest.raises(ValueError, match="no step logs"):
        ReferenceCurve.from_run(run)
    with pytest.raises(ValueError, match="zppo.matched.reference"):
        MatchingConfig(enable=True)


def test_plan_closes_the_deficit_round_robin_hardest_first():
    hard = [("q1", 0.25, 10.0), ("q2", 0.0, 30.0)]  # mean length 20 -> a group of n=4 is 80 tokens
    plan = plan_extra_groups(target=1000.0, spent=600.0, hard=hard, n=4, max_per_hard=4)
    assert plan.tokens_per_group == 80.0 and plan.deficit == 400.0
    assert plan.question_ids == ["q2", "q1", "q2", "q1", "q2"]  # round(400 / 80) = 5, lowest accuracy first
    assert plan.metrics()["zppo/matched/extra_groups"] == 5.0


def test_plan_is_capped_and_never_negative():
    hard = [("q1", 0.0, 10.0)]
    assert len(plan_extra_groups(1e9, 0.0, hard, n=2, max_per_hard=3).question_ids) == 3
    assert plan_extra_groups(100.0, 500.0, hard, n=2, max_per_hard=3).question_ids == []  # ahead of the reference
    assert plan_extra_groups(1e9, 0.0, [], n=2, max_per_hard=3).question_ids == []  # no hard question: nothing to do
