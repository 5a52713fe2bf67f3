"""Every method of the paper's comparison runs 2 steps through the same recipe (``method=<name>``), on the CPU.

Each run is asserted on what distinguishes the method, from its logged metrics and the prompts it dumped: which
second-phase prompts it builds (BCQ only, NCQ only, hints, prefixes, or the extra plain-prompt groups of
``grpo_matched``), that they were rolled out n times each and used in the update, and that every † run admits hard
questions to the buffer and replays them. ``hint`` and ``prefix`` run with the served tiny teacher (App. D.2,
Algorithms 5-6): fresh teacher rollouts on the capped hard questions only; a hint prompt holds the teacher's Fig. 19
hint inside ``<hint>`` tags and no ``\boxed``; a prefix is the first floor(0.4 L) tokens of a correct teacher
rollout of L tokens, and those tokens are masked out of the loss. GRPO rows (``grpo_matched``) build no BCQ/NCQ and
ask no teacher. ``grpo`` and ``zppo`` are covered in test_cpu_grpo.py / test_cpu_zppo.py; ``grpo_buffer`` is
``grpo_matched`` without its extra groups; ``grpo_both`` (zppo without the buffer) builds BCQ and NCQ prompts and
admits and replays nothing.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_boxed, extract_final_answer

from ..conftest import run_main
from .helpers import cpu_run_args, failure_context, step_metrics

pytestmark = pytest.mark.e2e

N = 4  # rollouts per prompt in the CPU preset
TEST_REWARDS = Path(__file__).with_name("reward_for_tests.py")
SECOND_PHASE_KINDS = ("bcq", "ncq", "hint", "prefix", "extra")
G_T = 4  # teacher rollouts per question (paper)
ALPHA = 0.4  # the Prefix baseline's token fraction (paper)


def _run(tiny_assets, ray_cluster, tmp_path, method: str, *overrides: str, vision: bool = False,
         teacher: Path | None = None) -> list[dict]:
    if vision:
        model, data = tiny_assets["vl-model"], tiny_assets["vl-data"]
    else:
        model, data = tiny_assets["text-model"], tiny_assets["text-data"]
    run_dir = tmp_path / "run"
    args = cpu_run_args(model, data, run_dir, f"method={method}", "trainer.total_training_steps=2", *overrides,
                        teacher=teacher)
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    steps = step_metrics(run_dir)
    assert [s["training/global_step"] for s in steps] == [1, 2]
    return steps


def _built(steps: list[dict], kind: str) -> float:
    return sum(s.get(f"zppo/{kind}_built", 0.0) for s in steps)


def _check_built_kinds_were_trained(steps: list[dict], expected_kinds: set[str], buffer: bool = True) -> None:
    """Exactly ``expected_kinds`` were built (some of them), n rollouts each, all in the update, none stale."""
    for kind in SECOND_PHASE_KINDS:
        if kind in expected_kinds:
            assert _built(steps, kind) > 0, f"no {kind} prompt was built"
        else:
            assert _built(steps, kind) == 0, f"{kind} prompts were built"
    for step in steps:
        built = sum(step.get(f"zppo/{kind}_built", 0.0) for kind in SECOND_PHASE_KINDS)
        assert step.get("zppo/reformulated_rollouts", 0.0) == built * N
        for kind in SECOND_PHASE_KINDS:
            assert step[f"zppo/update/{kind}_trajectories"] == step.get(f"zppo/{kind}_built", 0.0) * N
        if built:
            assert step["zppo/phase2/stale_rollouts"] == 0
    # The buffer works in every method but plain GRPO and GRPO + Both: hard questions are admitted and replayed, on
    # top of the new ones; what is built stays within Algorithm 1's cap (grpo_matched's extra groups are not capped).
    if buffer:
        assert steps[0]["zppo/admitted"] > 0 and steps[1]["zppo/replayed_questions"] > 0
    else:
        assert not any(s.get("zppo/admitted", 0.0) or s.get("zppo/replayed_questions", 0.0) for s in steps)
    for step in steps:
        assert step["zppo/new_questions"] == 8
        if expected_kinds != {"extra"}:
            assert sum(step.get(f"zppo/{kind}_built", 0.0) for kind in expected_kinds) <= step["zppo/aug_cap"] == 2


def _dumped(tmp_path: Path, step: dict) -> list[dict]:
    dump = tmp_path / "run" / "zppo_prompts" / f"step_{int(step['training/global_step'])}.jsonl"
    return [json.loads(line) for line in dump.read_text().splitlines()] if dump.exists() else []


def _rows(data: Path) -> dict[str, tuple[str, str]]:
    """Each training question's user turn and ground truth (question id -> (text, answer))."""
    frame = pd.read_parquet(data / "train.parquet")
    return {str(info["question_id"]): (prompt[-1]["content"], str(reward["ground_truth"]))
            for info, prompt, reward in zip(frame["extra_info"], frame["prompt"], frame["reward_model"])}


def _check_fresh_teacher_on_x_aug(steps: list[dict], request_kind: str) -> None:
    """Algorithms 5-6 steps 6-10: the teacher draws G_T fresh rollouts on X_aug (the cap's hardest hard questions)
    only, every step; a question it cannot solve gets no guided group. The ledger counts its work per kind."""
    for step in steps:
        assert step["zppo/aug_questions"] == min(step["zppo/aug_cap"], step["zppo/hard_questions"]) > 0
        assert step["zppo/teacher/rollouts"] == G_T * step["zppo/aug_questions"]
        assert step["zppo/teacher/failures"] == 0 and step["zppo/teacher/abandoned"] == 0
        assert step["zppo/teacher/compressions"] == 0  # no candidate compression outside BCQ/NCQ
        assert step["zppo/no_teacher_candidate"] == step["zppo/no_teacher_correct"]
        assert step["zppo/compute/teacher_rollouts/rollouts"] == step["zppo/teacher/rollouts"]
        assert step["zppo/compute/teacher_rollouts/generated_tokens"] > 0
        assert "zppo/compute/teacher_compressions/rollouts" not in step
        # The teacher's work is not the student's: the student totals are the student's rollouts only.
        plain = step["zppo/new_questions"] + step["zppo/replayed_questions"]
        assert step["zppo/compute/rollouts"] == plain * N + step.get("zppo/reformulated_rollouts", 0.0)
        solved = step["zppo/aug_questions"] - step["zppo/no_teacher_correct"]
        if request_kind == "hint":  # one Fig. 19 request per question the teacher solved
            assert step["zppo/teacher/hints"] == solved
            if solved:
                assert step["zppo/compute/teacher_hints/rollouts"] == solved
            assert step["zppo/teacher/hint_ok"] + step["zppo/teacher/hint_empty"] == solved
            built = step["zppo/hint_built"] + step["zppo/skipped_for_length"] + step["zppo/no_hint"]
        else:
            assert "zppo/compute/teacher_hints/rollouts" not in step
            built = step["zppo/prefix_built"] + step["zppo/skipped_for_length"]
        assert built == solved
    assert sum(s["zppo/teacher/correct"] for s in steps) > 0


def _check_loss_weighting(steps: list[dict], mode: str) -> None:
    """The loss weight of each prompt kind, as logged, against what the other metrics of the step imply."""
    for step in steps:
        weights = {k.rsplit("/", 1)[1]: v for k, v in step.items()
                   if k.startswith("zppo/loss_weight/") and "excluded" not in k}
        assert weights and all(0.0 <= w <= 1.0 for w in weights.values())
        if mode == "verl":
            assert sum(weights.values()) <= 1.0 + 1e-6  # flat groups' tokens take a share of the normaliser
            continue
        if not any(weights.values()):
            continue  # no response carried a signal: nothing to reweight
        assert sum(weights.values()) == pytest.approx(1.0)
        # The responses taken out of the loss are exactly those of flat groups (advantage 0 everywhere):
        plain_groups = step["zppo/new_questions"] + step["zppo/replayed_questions"]
        flat_groups = plain_groups * step["zppo/zero_adv_group_frac"] + sum(
            step.get(f"zppo/{kind}_built", 0.0) * step.get(f"zppo/{kind}_zero_adv_group_frac", 0.0)
            for kind in SECOND_PHASE_KINDS
        )
        assert step["zppo/loss_weight/excluded_responses"] == pytest.approx(flat_groups * N)
        if mode == "per_kind":
            signal = [w for w in weights.values() if w > 0]
            assert signal == pytest.approx([1.0 / len(signal)] * len(signal))


@pytest.mark.parametrize(
    "method, kinds, loss_weighting",
    [("grpo_matched", {"extra"}, "verl"), ("grpo_buffer_bcq", {"bcq"}, "exclude_zero_adv"),
     ("grpo_buffer_ncq", {"ncq"}, "per_kind"), ("hint", {"hint"}, "verl"), ("grpo_both", {"bcq", "ncq"}, "verl")],
)
def test_method_builds_only_its_own_prompts(tiny_assets, ray_cluster, tmp_path, request, method, kinds,
                                            loss_weighting):
    # Each run also exercises one loss-aggregation mode (zppo.update.loss_weighting). The tiny student never answers
    # right, so the reweighting runs get a reward that fails fresh questions and passes about half of the other
    # answers: second-phase (and replayed) groups with a signal, and the buffer always admits.
    reward = [] if loss_weighting == "verl" else [
        f"reward.custom_reward_function.path={TEST_REWARDS}",
        "reward.custom_reward_function.name=fresh_fail_rest_parity"]
    matched = []
    if method == "grpo_matched":  # a hand-made reference spend: 3000 generated tokens a step (phase 1 is <= 1920:
        # 8 new + 2 replayed questions x 4 rollouts x 48 tokens)
        reference = tmp_path / "reference.jsonl"
        reference.write_text("".join(json.dumps({"step": s, "data": {
            "training/global_step": s, "zppo/compute/cum_generated_tokens": 3000.0 * s}}) + "\n"
                                     for s in (1, 2)))
        matched = [f"zppo.matched.reference={reference}"]
    # Hint: the served tiny teacher writes the hints (Algorithm 5); a 64-token hint cap, as the preset's compression.
    teacher = request.getfixturevalue("tiny_teacher") if method == "hint" else None
    hint = ["zppo.guidance.hint_max_tokens=64"] if method == "hint" else []
    steps = _run(tiny_assets, ray_cluster, tmp_path, method, f"zppo.update.loss_weighting={loss_weighting}", *reward,
                 *matched, *hint, teacher=teacher)
    if reward:  # the check below is about real reweighting: some kind had a signal
        assert any(v > 0 for s in steps for k, v in s.items()
                   if k.startswith("zppo/loss_weight/") and "excluded" not in k)
    _check_built_kinds_were_trained(steps, kinds, buffer=method != "grpo_both")
    _check_loss_weighting(steps, loss_weighting)
    if method in ("grpo_matched", "grpo_buffer_ncq"):  # rows without BCQ: the teacher draws no rollout
        assert not any(s.get("zppo/teacher/rollouts", 0.0) for s in steps)
        assert not any("zppo/compute/teacher_rollouts/rollouts" in s for s in steps)
    if method == "grpo_matched":
        # GRPO + buffer: hard questions are found, but no BCQ/NCQ is built for them (the builder never runs), and the
        # teacher is never asked (no rollouts, no compressions)...
        assert all(s["zppo/hard_questions"] > 0 for s in steps)
        assert not any("zppo/teacher_solvable_frac" in s for s in steps)
        assert not any(k.startswith(("zppo/teacher/", "zppo/compute/teacher")) for s in steps for k in s)
        # ...instead extra plain-prompt groups of them close the gap to the reference's generated tokens.
        for step in steps:
            assert step["zppo/matched/extra_groups"] == step["zppo/extra_built"] > 0
            assert step["zppo/compute/extra/rollouts"] == step["zppo/extra_built"] * N
            assert step["zppo/matched/target_cum_generated_tokens"] == 3000.0 * step["training/global_step"]
            assert abs(step["zppo/matched/gap_tokens"]) < 0.5 * step["zppo/matched/deficit_tokens"]
    if method == "hint":
        _check_fresh_teacher_on_x_aug(steps, "hint")
        rows = _rows(tiny_assets["text-data"])
        for step in steps:
            dumped = _dumped(tmp_path, step)
            assert [p["kind"] for p in dumped] == ["hint"] * int(step["zppo/hint_built"])
            for prompt in dumped:
                # The question, the teacher's hint inside <hint> tags (no boxed answer in it), the closer.
                original = rows[prompt["question_id"]][0].rstrip()
                question = original[: -len(ANSWER_CLOSER)].rstrip()
                head, tail = f"{question}\n\n<hint>\n", f"\n</hint>\n\n{ANSWER_CLOSER}"
                assert prompt["prompt"].startswith(head) and prompt["prompt"].endswith(tail)
                hint = prompt["prompt"][len(head): -len(tail)]
                assert hint.strip() and "\\boxed" not in hint and extract_boxed(hint) is None
                assert "<hint>" not in hint and "</hint>" not in hint


def test_prefix_responses_start_with_masked_teacher_tokens(tiny_assets, tiny_teacher, ray_cluster, tmp_path):
    # Algorithm 6 with the served tiny teacher (its fresh rollouts are the prefixes' source). Also the mu knob: the
    # update splits each step's (variable-size) batch into exactly 2 mini-batches.
    from transformers import AutoTokenizer

    steps = _run(tiny_assets, ray_cluster, tmp_path, "prefix", "zppo.update.num_mini_batches=2", teacher=tiny_teacher)
    _check_built_kinds_were_trained(steps, {"prefix"})
    _check_fresh_teacher_on_x_aug(steps, "prefix")
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["text-model"])
    rows = _rows(tiny_assets["text-data"])
    assert sum(s["zppo/prefix_built"] for s in steps) > 0
    for step in steps:
        assert step["zppo/update/mini_batches"] == 2
        dumped = _dumped(tmp_path, step)
        assert [p["kind"] for p in dumped] == ["prefix"] * int(step["zppo/prefix_built"])
        for plan in dumped:
            # The prefix is the first floor(0.4 L) tokens of a CORRECT teacher rollout of L tokens (the student's
            # tokenizer), and the prompt is the plain question.
            teacher_ids = tokenizer.encode(plan["teacher_text"], add_special_tokens=False)
            assert plan["teacher_length"] == len(teacher_ids)
            assert plan["prefix_ids"] == teacher_ids[: math.floor(ALPHA * len(teacher_ids))]
            question, answer = rows[plan["question_id"]]
            assert extract_final_answer(plan["teacher_text"]) == answer and plan["prompt"] == question
        if not step.get("zppo/prefix_built"):
            continue
        # Read back from the stored trajectories: every prefix rollout starts with the planned teacher tokens...
        assert step["zppo/prefix/intact_frac"] == 1.0
        # ...which are masked (none in the loss), while the student's continuation is trained.
        assert step["zppo/prefix/tokens_in_loss"] == 0
        assert step["zppo/prefix/tokens_masked"] == pytest.approx(
            step["zppo/prefix_tokens_mean"] * step["zppo/prefix_built"] * N)
        assert step["zppo/prefix/continuation_tokens"] > 0
        assert step["zppo/prefix_tokens_mean"] == pytest.approx(
            sum(len(p["prefix_ids"]) for p in dumped) / len(dumped))
