"""The toy experiment's task generator (benchmarks/toy/task.py) and its results aggregation (results.py)."""

from __future__ import annotations

import json
import math
import random

import pyarrow.parquet as pq
import pytest

from benchmarks.toy import results, task
from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_final_answer, split_think
from recipe.zppo.algo.reformulation import BCQ, NCQ, ReformulationConfig, Tokenization
from recipe.zppo.reward import compute_score

SPEC = task.TaskSpec(rl_easy=20, rl_hard=20, heldout_easy=30, heldout_hard=30)


def _char_tokens() -> Tokenization:
    """One token per character: enough for the reformulation's budget, no tokenizer files needed."""
    return Tokenization(decode=lambda ids: "".join(map(chr, ids)), count_text_tokens=len,
                        encode=lambda text: [ord(c) for c in text])


def test_answers_are_built_step_by_step_from_the_question():
    question = (95, 7, 5)
    assert task.sequence(question) == [95, 2, 9, 16, 23]
    text = task.solution(question)
    reasoning, _ = split_think(text)
    assert reasoning.split() == ["95", "02", "09", "16", "23"]
    assert extract_final_answer(text) == task.answer_of(question) == "9502091623"
    assert task.parse_question(task.question_text(question) + "\n\n" + ANSWER_CLOSER) == question


def test_reward_accepts_only_the_whole_answer():
    """A response that stops early (the typical failure on a hard question) must score 0, the solution 1."""
    question = (37, 8, 6)
    gold = task.answer_of(question)
    assert compute_score(task.SOURCE, task.solution(question), gold, {"reward_type": "string_match"})["score"] == 1.0
    for cut in range(1, 6):
        short = task.format_response(task.sequence(question)[:cut])
        assert compute_score(task.SOURCE, short, gold, {"reward_type": "string_match"})["score"] == 0.0


def test_wrong_solutions_are_well_formed_and_wrong():
    rng = random.Random(0)
    for _ in range(300):
        question = task.sample_question(rng, (2, 5, 7))
        wrong = task.wrong_solution(question, rng)
        assert extract_final_answer(wrong) not in (None, task.answer_of(question))


def test_splits_are_deterministic_disjoint_and_of_the_right_lengths():
    first, again, other = task.make_splits(SPEC, 0), task.make_splits(SPEC, 0), task.make_splits(SPEC, 1)
    assert first == again and first != other
    sets = {name: set(items) for name, items in first.items()}
    assert all(len(sets[name]) == len(first[name]) for name in first)  # unique within a split
    names = list(sets)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            assert not sets[a] & sets[b], (a, b)
    assert {q[2] for q in first["rl_hard"] + first["heldout_hard"]} == set(SPEC.hard_lengths)
    assert {q[2] for q in first["rl_easy"] + first["heldout_easy"]} == set(SPEC.easy_lengths)


def test_rl_rows_carry_correct_teacher_responses(tmp_path):
    splits = task.make_splits(SPEC, 0)
    paths = task.write_rl_data(splits, tmp_path)
    train = pq.read_table(paths["train"]).to_pylist()
    val = pq.read_table(paths["val"]).to_pylist()
    assert len(train) == SPEC.rl_easy + SPEC.rl_hard and len(val) == SPEC.heldout_easy + SPEC.heldout_hard
    for row in train + val:
        question = task.parse_question(row["prompt"][0]["content"])
        assert row["prompt"][0]["content"].endswith(ANSWER_CLOSER)
        assert row["reward_model"]["ground_truth"] == task.answer_of(question)
        info = row["extra_info"]
        assert info["teacher_responses"] and all(info["teacher_correct"])
        assert all(extract_final_answer(t) == task.answer_of(question) for t in info["teacher_responses"])
    assert len({r["extra_info"]["question_id"] for r in train + val}) == len(train) + len(val)


def test_warmup_questions_avoid_rl_and_heldout_and_hard_lengths_only_in_bcq():
    splits = task.make_splits(SPEC, 0)
    reserved = task.reserved_questions(splits)
    examples = task.warmup_examples(300, random.Random(0), SPEC, reserved, _char_tokens(), 1024)
    kinds = {kind for kind, _, _ in examples}
    assert kinds == {"plain", BCQ, NCQ}
    seen = set()
    for kind, messages, target in examples:
        question = task.parse_question(messages[-1]["content"])
        seen.add(question)
        assert question not in reserved
        assert extract_final_answer(target) == task.answer_of(question)
        if kind != BCQ:
            assert question[2] in SPEC.plain_warmup_lengths
    assert len(seen) > 250  # fresh questions, not a small memorisable pool
    assert any(task.parse_question(m[-1]["content"])[2] in SPEC.hard_lengths for k, m, _ in examples if k == BCQ)


def test_candidate_prompts_are_the_projects_reformulation(monkeypatch):
    """The warm-up's BCQ/NCQ prompts come from recipe.zppo.algo.reformulation.reformulate with the trainer's config
    (the paper's Fig. 17/18 templates), and a BCQ shows the correct solution as one of its candidates."""
    import benchmarks.toy.task as task_module

    calls = []
    real = task_module.reformulate

    def spy(*args, **kwargs):
        calls.append(kwargs.get("config"))
        return real(*args, **kwargs)

    monkeypatch.setattr(task_module, "reformulate", spy)
    question = (48, 3, 6)
    built = task.candidate_prompts(question, random.Random(3), _char_tokens(), 1024)
    assert calls, "reformulate was not called"
    config = ReformulationConfig()
    bcq, ncq = built[BCQ][-1]["content"], built[NCQ][-1]["content"]
    assert bcq.startswith(task.question_text(question)) and bcq.endswith(ANSWER_CLOSER)
    # Fig. 17: two anonymous <candidate> blocks, the correct solution one of them (uncompressed in the toy).
    assert config.bcq_instruction in bcq and bcq.count("<candidate>\n") == 2 == bcq.count("\n</candidate>")
    assert "Candidate A" not in bcq and "<think>" not in bcq.split(ANSWER_CLOSER)[0]
    assert "\\boxed{" + task.answer_of(question) + "}" in bcq
    # Fig. 18: the wrong answers listed as boxes, then one <candidate> block per wrong response.
    head, tail = config.ncq_instruction.split("{answers}")
    assert head in ncq and tail in ncq and ncq.count("<candidate>\n") == 2
    listed = ncq.split(head, 1)[1].split(tail, 1)[0]
    assert listed.startswith("\\boxed{") and listed.count("\\boxed{") == 2
    assert "\\boxed{" + task.answer_of(question) + "}" not in ncq


def test_spec_refuses_hard_lengths_in_the_plain_warmup():
    with pytest.raises(ValueError, match="hard lengths"):
        task.TaskSpec(hard_lengths=(4, 6), plain_warmup_lengths=(2, 3, 4))


# ------------------------------------------------------------------------------------------------- aggregation


def test_summarize_steps_sums_buffer_counts_and_keeps_last_cumulative(tmp_path):
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    lines = [
        {"step": 1, "data": {"training/global_step": 1, "zppo/graduated": 0, "zppo/admitted": 3,
                             "zppo/compute/cum_generated_tokens": 100, "zppo/compute/cum_rollouts": 10,
                             "critic/score/mean": 0.2}},
        {"step": 2, "data": {"training/global_step": 2, "zppo/graduated": 2, "zppo/admitted": 1,
                             "zppo/compute/cum_generated_tokens": 250, "zppo/compute/cum_rollouts": 24,
                             "critic/score/mean": 0.4, "zppo/transfer/helped/cum_acc_after": 0.25,
                             "zppo/transfer/helped/cum_completed": 4}},
        {"step": 2, "data": {"val-core/x": 1.0}},  # a validation-only record is not a step
    ]
    (metrics / "a.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n")
    summary = results.summarize_steps(tmp_path)
    unhelped = summary.pop("transfer_unhelped_acc")
    assert math.isnan(unhelped)  # no unhelped record completed: not a number, left out of the means
    assert summary == {"steps": 2, "graduated": 2.0, "admitted": 4.0, "cum_generated_tokens": 250.0,
                       "cum_rollouts": 24.0, "final_train_score": 0.4, "transfer_helped_acc": 0.25,
                       "transfer_helped_n": 4.0, "transfer_unhelped_n": 0.0}


def test_aggregate_mean_and_sample_sd_per_arm():
    runs = [
        {"arm": "zppo", "seed": s, "graduated": g, "heldout_hard_acc": a, "heldout_easy_acc": 0.5,
         "cum_generated_tokens": t, "cum_rollouts": 10.0, "admitted": 1.0, "wall_s": 60.0}
        for s, g, a, t in ((0, 2.0, 0.1, 100.0), (1, 4.0, 0.2, 200.0), (2, 6.0, 0.3, 300.0))
    ] + [{"arm": "grpo_buffer", "seed": 0, "graduated": 1.0, "heldout_hard_acc": 0.0, "heldout_easy_acc": 0.4,
          "cum_generated_tokens": 90.0, "cum_rollouts": 9.0, "admitted": 3.0, "wall_s": 50.0}]
    arms = results.aggregate(runs)
    assert arms["zppo"]["n"] == 3 and arms["zppo"]["seeds"] == [0, 1, 2]
    assert arms["zppo"]["graduated"] == {"mean": 4.0, "sd": 2.0}
    assert arms["zppo"]["cum_generated_tokens"] == {"mean": 200.0, "sd": 100.0}
    assert arms["zppo"]["heldout_hard_acc"]["mean"] == pytest.approx(0.2)
    assert arms["zppo"]["heldout_hard_acc"]["sd"] == pytest.approx(0.1)
    assert arms["grpo_buffer"]["graduated"] == {"mean": 1.0, "sd": None}
    table = results.markdown({"size": "full", "seeds": [0, 1, 2], "command": "python -m benchmarks.toy.run",
                              "wall_s": 600.0, "machine": "m", "arms": arms,
                              "runs": [{**r, "steps": 2, "final_train_score": 0.1} for r in runs]})
    assert "| zppo | 3 | 4.0 ± 2.0 |" in table and "| grpo_buffer | 1 | 1.0 |" in table


def test_schedule_runs_each_grpo_matched_after_its_zppo_reference(tmp_path):
    from benchmarks.toy import run

    size = run.SIZES["full"]
    plan = run.schedule(size, [0, 1, 2])
    assert len(plan) == 3 * 3 + 2  # three arms x three seeds, two loss-aggregation variants x one seed
    for seed in (0, 1, 2):
        assert plan.index(("zppo", seed)) < plan.index(("grpo_matched", seed))
    overrides = run.run_overrides("grpo_matched", 1, size, tmp_path, {"train": "t", "val": "v"})
    assert f"zppo.matched.reference={tmp_path / 'runs' / 'zppo_s1'}" in overrides
    assert "zppo.reformulation.seed=1" in overrides and "data.seed=1" in overrides
    variant = run.run_overrides("zppo_per_kind", 0, size, tmp_path, {"train": "t", "val": "v"})
    assert "zppo.update.loss_weighting=per_kind" in variant and "method=zppo" in variant
