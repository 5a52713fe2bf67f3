"""ZPPO end to end on the CPU (``python -m recipe.zppo.main_zppo preset=cpu``), asserted from the logged metrics.

Text run, the paper's path (the run serves the tiny teacher itself; the project's reward): fresh teacher rollouts
for every hard question, new or replayed, candidates compressed by the teacher (the dumped prompts show it); BCQ and
NCQ prompts are built, rolled out by the same weights and used in the update; the buffer admits hard questions;
after a stop and a resume the buffer and the teacher's counters continue.
Vision-language run (no teacher server, no teacher responses, a reward made for the test): NCQ only, counted; a
question solved on replay graduates from the buffer.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd
import pytest

from data_prep.tiny import build_vl_dataset
from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_final_answer
from recipe.zppo.algo.reformulation import BCQ_INSTRUCTION, NCQ_INSTRUCTION, clean_candidate_text
from recipe.zppo.algo.replay_buffer import BUFFER_FILE, PromptReplayBuffer, state_digest
from recipe.zppo.config.schema import BufferConfig
from recipe.zppo.reward.metrics import ROUTES

from ..conftest import run_main
from .helpers import cpu_run_args, failure_context, step_metrics

pytestmark = pytest.mark.e2e

TEST_REWARDS = Path(__file__).with_name("reward_for_tests.py")
N = 4  # rollouts per prompt in the CPU preset
NEW = 8  # new questions per step (data.train_batch_size in the CPU preset)
CAP = 2  # round(rho_aug x NEW) = round(0.25 x 8): BCQ + NCQ prompts per step at most (Algorithm 1)
REPLAY = 2  # round(rho_replay x NEW): replayed questions per step when the buffer holds that many


def _check_batch(steps: list[dict], buffer_before: float, cap: int = CAP) -> None:
    """Algorithm 1's batch and caps, step by step: NEW new questions, replayed ones on top (as many as the buffer
    held before the step, up to REPLAY), BCQ + NCQ within the cap, the buffer's bookkeeping adding up."""
    for step in steps:
        assert step["zppo/new_questions"] == NEW
        assert step["zppo/replayed_questions"] == min(REPLAY, buffer_before)
        assert step["zppo/aug_cap"] == cap
        built = step["zppo/bcq_built"] + step["zppo/ncq_built"]
        assert built <= cap
        # The post-cap drops only what exceeds the cap (then the cap is full).
        if step["zppo/aug_dropped_by_cap"]:
            assert built == cap
        assert step["zppo/aug_questions"] <= min(cap, step["zppo/hard_questions"])
        # The pre-cap leaves out an admissible hard question only when the cap is reached.
        if step["zppo/aug_questions_dropped_by_cap"]:
            assert step["zppo/aug_questions"] == cap
        hard_acc = step["zppo/plain_acc_hard"]
        assert step["zppo/hard_questions"] == 0 or 0.0 <= hard_acc < 0.5  # the hard ones' plain accuracy, below tau
        assert step["zppo/buffer_size"] == (
            buffer_before + step["zppo/admitted"] - step["zppo/graduated"] - step["zppo/evicted"])
        buffer_before = step["zppo/buffer_size"]


def _question_texts(data: Path) -> dict[str, str]:
    """Each training question's user turn as the data set has it (question id -> text)."""
    frame = pd.read_parquet(data / "train.parquet")
    return {str(info["question_id"]): prompt[-1]["content"] for info, prompt in zip(frame["extra_info"],
                                                                                     frame["prompt"])}


def _check_templates(prompt: dict, original: str) -> None:
    """A dumped BCQ/NCQ prompt is exactly Fig. 17 / Fig. 18: the original question (its closer removed), a blank
    line, the instruction (NCQ: the de-duplicated wrong answers, each boxed), one block per candidate in the order
    shown, the closer."""
    assert original.rstrip().endswith(ANSWER_CLOSER)
    question = original.rstrip()[: -len(ANSWER_CLOSER)].rstrip()
    blocks = "\n".join(f"<candidate>\n{c['text']}\n</candidate>" for c in prompt["candidates"])
    if prompt["kind"] == "bcq":
        assert prompt["prompt"] == f"{question}\n\n{BCQ_INSTRUCTION}\n{blocks}\n\n{ANSWER_CLOSER}"
        return
    head, tail = NCQ_INSTRUCTION.split("{answers}")
    start, end = f"{question}\n\n{head}", f"{tail}\n{blocks}\n\n{ANSWER_CLOSER}"
    assert prompt["prompt"].startswith(start) and prompt["prompt"].endswith(end)
    listed = prompt["prompt"][len(start): len(prompt["prompt"]) - len(end)]
    items = re.findall(r"\\boxed\{(.*?)\}(?:, |$)", listed)
    assert ", ".join(f"\\boxed{{{item}}}" for item in items) == listed  # boxed answers joined with ", "
    assert len(items) == len(set(items))  # de-duplicated
    # Every shown wrong answer is listed (cleaned of control tokens, as the list is).
    assert {clean_candidate_text(c["answer"]) for c in prompt["candidates"]} <= set(items)


def _check_on_policy_and_used(step: dict) -> None:
    # Every rollout of the step (both phases) came from the weights of the step; none was stale.
    assert step["zppo/phase1/stale_rollouts"] == 0
    if step["zppo/bcq_built"] + step["zppo/ncq_built"] > 0:
        assert step["zppo/phase2/stale_rollouts"] == 0
    # What was built was rolled out (n each) and went into the update.
    built = step["zppo/bcq_built"] + step["zppo/ncq_built"]
    assert step.get("zppo/reformulated_rollouts", 0.0) == built * N
    assert step["zppo/update/bcq_trajectories"] == step["zppo/bcq_built"] * N
    assert step["zppo/update/ncq_trajectories"] == step["zppo/ncq_built"] * N


G_T = 4  # teacher rollouts per hard question (paper)
COMPRESSION_CAP = 64  # the CPU preset's compression token cap (the paper's 512 on GPUs)


def _check_teacher(step: dict, run_dir: Path, tokenizer, questions: dict[str, str], cap: int) -> None:
    """The paper's teacher path, from the step's metrics and the prompts it dumped (``questions``: the data set's
    user turns, to check each prompt against the templates)."""
    assert step["zppo/teacher/rollouts"] == G_T * step["zppo/hard_questions"] > 0
    assert step["zppo/teacher/failures"] == 0 and step["zppo/teacher/abandoned"] == 0
    assert step["zppo/teacher/busy_s"] > 0 and step["zppo/teacher/critical_path_s"] >= 0
    assert step["zppo/compute/teacher/rollouts"] == step["zppo/teacher/rollouts"] + step["zppo/teacher/compressions"]
    outcomes = ("ok", "answer_changed", "no_summary", "no_answer", "truncated")
    assert sum(step[f"zppo/teacher/compression_{o}"] for o in outcomes) == step["zppo/teacher/compressions"] > 0
    dump = run_dir / "zppo_prompts" / f"step_{int(step['training/global_step'])}.jsonl"
    dumped = [json.loads(line) for line in dump.read_text().splitlines()] if dump.exists() else []
    assert sum(p["kind"] == "bcq" for p in dumped) == step["zppo/bcq_built"]
    assert sum(p["kind"] == "ncq" for p in dumped) == step["zppo/ncq_built"]
    for prompt in dumped:
        for candidate in prompt["candidates"]:
            # A compressed text (within the cap) that keeps the original's answer, shown in the prompt as it is.
            assert len(tokenizer.encode(candidate["text"], add_special_tokens=False)) <= COMPRESSION_CAP
            assert extract_final_answer(candidate["text"]) == candidate["answer"]
            assert f"<candidate>\n{candidate['text']}\n</candidate>" in prompt["prompt"]
        if prompt["kind"] == "bcq":
            assert sorted(c["source"] for c in prompt["candidates"]) == ["student", "teacher"]
        else:
            assert {c["source"] for c in prompt["candidates"]} == {"student"}
        _check_templates(prompt, questions[prompt["question_id"]])
    # Post-cap order (Algorithm 1 line 14): a question's BCQ comes before its NCQ, and a question appears once.
    order = [(p["question_id"], p["kind"]) for p in dumped]
    assert len(order) == len(set(order)) <= cap
    for qid, kind in order:
        if kind == "ncq" and (qid, "bcq") in order:
            assert order.index((qid, "bcq")) < order.index((qid, "ncq"))


def test_zppo_text_served_teacher_and_resume(tiny_assets, tiny_teacher, ray_cluster, tmp_path):
    from transformers import AutoTokenizer

    run_dir = tmp_path / "run"
    data = tiny_assets["text-data"]
    # The run as a user runs it: the project's reward for student and teacher alike, the served tiny teacher.
    # The preset's cap (2): the 2 hardest hard questions (all fail: a seeded tie-break picks them); the first one's
    # BCQ and NCQ take both slots when the teacher gave it a compressed correct candidate, else its NCQ and the
    # second's BCQ. The tiny teacher gives one for most questions (benchmarks/README.md), so over two steps both
    # kinds get built.
    cap = CAP
    args = cpu_run_args(tiny_assets["text-model"], data, run_dir, "trainer.save_freq=1", teacher=tiny_teacher)
    first = run_main(args + ["trainer.total_training_steps=2"], ray_address=ray_cluster, cwd=tmp_path)
    assert first.returncode == 0, failure_context(first)
    steps = step_metrics(run_dir)
    assert [s["training/global_step"] for s in steps] == [1, 2]
    _check_batch(steps, buffer_before=0, cap=cap)
    for step in steps:
        _check_on_policy_and_used(step)
        # Every rollout of the step was scored by the project's reward, and the route shares are logged.
        plain = step["zppo/new_questions"] + step["zppo/replayed_questions"]
        assert step["zppo/reward/n_scored"] == plain * N + step.get("zppo/reformulated_rollouts", 0.0)
        assert abs(sum(step[f"zppo/reward/route_{r}"] for r in ROUTES) - 1.0) < 1e-6
    # The warm-started tiny student answers in the format but wrongly: hard questions; the tiny teacher solves some
    # and compresses the candidates (fresh teacher rollouts at each step, replayed questions included).
    # (The tiny teacher solves about 86% of the train questions in 4 samples and keeps the answer in about 80% of
    # its summaries of the student's answers, benchmarks/README.md: over two steps both kinds get built.)
    assert all(s["zppo/hard_questions"] > 0 for s in steps)
    assert sum(s["zppo/teacher/correct"] for s in steps) > 0
    assert sum(s["zppo/bcq_built"] for s in steps) > 0 and sum(s["zppo/ncq_built"] for s in steps) > 0
    for step in steps:  # the post-cap walk, from the counts: nothing too long, and
        assert step["zppo/skipped_for_length"] == 0  # (the derived prompt budget holds every BCQ/NCQ prompt)
        if step["zppo/aug_questions"]:  # the hardest kept question's NCQ always gets a slot,
            assert step["zppo/ncq_built"] >= 1
        if step["zppo/teacher_solvable_frac"] > 0:  # and a BCQ one whenever a kept question has a teacher candidate
            assert step["zppo/bcq_built"] >= 1
    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["text-model"])
    questions = _question_texts(data)
    for step in steps:
        _check_teacher(step, run_dir, tokenizer, questions, cap)
    assert "teacher server ready at" in first.stdout + first.stderr
    assert steps[0]["zppo/admitted"] > 0 and steps[0]["zppo/buffer_size"] == steps[0]["zppo/admitted"]
    assert steps[1]["zppo/replayed_questions"] > 0
    # The per-step line: new / replayed / hard / BCQ / NCQ / cap / buffer.
    line = re.search(r"\[zppo\] step 2: new 8 \+ replayed (\d+) \| hard (\d+) \| BCQ (\d+) \(acc [^)]*\) \| NCQ (\d+) "
                     r"\(acc [^)]*\) \| cap 2\b.* \| buffer (\d+) \(", first.stdout + first.stderr)
    assert line, failure_context(first)
    assert [int(g) for g in line.groups()] == [int(steps[1][f"zppo/{k}"]) for k in (
        "replayed_questions", "hard_questions", "bcq_built", "ncq_built", "buffer_size")]

    # In-context saturation is measured per reformulation kind (a share of that kind's groups).
    for step in steps:
        for kind in ("bcq", "ncq"):
            if step[f"zppo/{kind}_built"]:
                saturation = step[f"zppo/{kind}_zero_adv_group_frac"]
                assert 0.0 <= saturation <= 1.0
                if step[f"zppo/{kind}_acc"] in (0.0, 1.0):  # every rollout failed (or passed): every group is flat
                    assert saturation == 1.0
    # Compute accounting: every rollout of the step counted once, by kind, and the running totals add up.
    for step in steps:
        plain = step["zppo/new_questions"] + step["zppo/replayed_questions"]
        assert step["zppo/compute/rollouts"] == plain * N + step.get("zppo/reformulated_rollouts", 0.0)
        assert step.get("zppo/compute/bcq/rollouts", 0) == step["zppo/bcq_built"] * N
        assert step.get("zppo/compute/ncq/rollouts", 0) == step["zppo/ncq_built"] * N
        assert 0 < step["zppo/compute/generated_tokens"] <= step["zppo/compute/rollouts"] * 48  # response length 48
    assert steps[1]["zppo/compute/cum_generated_tokens"] == sum(s["zppo/compute/generated_tokens"] for s in steps)
    # Transfer: every question replayed at step 2 was found hard at step 1, so each replay completes one record
    # (helped: it got a BCQ/NCQ group at step 1; unhelped: none could be built).
    completed = sum(steps[1][f"zppo/transfer/{cohort}/completed"] for cohort in ("helped", "unhelped"))
    assert completed == steps[1]["zppo/replayed_questions"] > 0
    assert steps[0]["zppo/transfer/pending"] == steps[0]["zppo/hard_questions"]

    # The buffer is saved in its own file, next to zppo_state.json, and its digest is logged on save.
    buffer_path = run_dir / "global_step_2" / BUFFER_FILE
    saved_buffer = PromptReplayBuffer(capacity=BufferConfig().capacity)  # the run's (its digest covers it)
    saved = saved_buffer.load(buffer_path)
    assert len(saved_buffer) == steps[1]["zppo/buffer_size"] > 0
    assert f"questions to {buffer_path} (state sha256 {state_digest(saved)[:16]})" in first.stdout + first.stderr

    second = run_main(args + ["trainer.total_training_steps=3"], ray_address=ray_cluster, cwd=tmp_path)
    assert second.returncode == 0, failure_context(second)
    output = second.stdout + second.stderr
    match = re.search(r"restored a prompt replay buffer of (\d+) questions .* \(state sha256 (\w+)\)", output)
    assert match, failure_context(second)
    assert match.group(2) == state_digest(saved)[:16]
    assert int(match.group(1)) == int(steps[1]["zppo/buffer_size"])
    resumed = step_metrics(run_dir, launch=1)
    assert [s["training/global_step"] for s in resumed] == [3]
    assert resumed[0]["zppo/replayed_questions"] > 0  # the restored buffer is replayed
    _check_batch(resumed, buffer_before=steps[1]["zppo/buffer_size"], cap=cap)
    # The compute totals and the teacher's counters continue from the checkpoint.
    assert resumed[0]["zppo/compute/cum_rollouts"] == (
        steps[1]["zppo/compute/cum_rollouts"] + resumed[0]["zppo/compute/rollouts"])
    assert resumed[0]["zppo/teacher/cum_rollouts"] == (
        steps[1]["zppo/teacher/cum_rollouts"] + resumed[0]["zppo/teacher/rollouts"])
    _check_teacher(resumed[0], run_dir, tokenizer, questions, cap)
    for cohort in ("helped", "unhelped"):  # and so do the transfer records
        key = f"zppo/transfer/{cohort}/cum_completed"
        assert resumed[0][key] == steps[1][key] + resumed[0][f"zppo/transfer/{cohort}/completed"]


def test_zppo_vision_language_ncq_only_and_graduation(tiny_assets, ray_cluster, tmp_path):
    data = build_vl_dataset(tmp_path / "vl-data-no-teacher", teacher_responses=0)
    run_dir = tmp_path / "run"
    args = cpu_run_args(
        tiny_assets["vl-model"], data, run_dir,
        f"reward.custom_reward_function.path={TEST_REWARDS}",
        "reward.custom_reward_function.name=fails_fresh_solves_replayed",
        "trainer.total_training_steps=2",
        "zppo.console=steps",  # what make demo shows
    )
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    log = (run_dir / "run.log").read_text(errors="replace")
    assert result.returncode == 0, failure_context(result) + f"\n--- run.log tail ---\n{log[-6000:]}"
    # zppo.console=steps: the terminal holds ZPPO's lines and the progress bar only (tqdm redraws with \r); Ray's and
    # verl's output, the workers' included, went to run.log.
    shown = [part.strip() for part in re.split(r"[\r\n]", result.stdout + result.stderr) if part.strip()]
    assert shown and all(re.match(r"(zppo steps:|zppo: |\[zppo\] )", part) for part in shown), shown
    assert sum(part.startswith("[zppo] step ") for part in shown) == 2
    assert "TaskRunner" in log  # the workers' output is in the log
    # verl logs a failed rollout and goes on without it: make sure none failed.
    assert "Error in _run_prompt" not in log, log[-6000:]
    steps = step_metrics(run_dir)
    _check_batch(steps, buffer_before=0)
    for step in steps:
        _check_on_policy_and_used(step)
        # No teacher (no server, no stored response): no BCQ, counted; NCQ still built from the wrong answers.
        assert step["zppo/bcq_built"] == 0
        # (every question the pre-cap kept lacks one; the teacher had no correct response for any hard question).
        assert step["zppo/no_teacher_candidate"] == step["zppo/aug_questions"]
        assert step["zppo/no_teacher_correct"] == step["zppo/hard_questions"]
    assert sum(s["zppo/ncq_built"] for s in steps) > 0
    # Step 1: every fresh question fails and is admitted. Step 2: the replayed ones are solved and graduate.
    assert steps[0]["zppo/admitted"] == steps[0]["zppo/new_questions"] == NEW
    assert steps[1]["zppo/replayed_questions"] > 0
    assert steps[1]["zppo/replay_acc"] == 1.0
    assert steps[1]["zppo/graduated"] == steps[1]["zppo/replayed_questions"]
    assert steps[1]["zppo/buffer_size"] == (
        steps[0]["zppo/buffer_size"] - steps[1]["zppo/graduated"] + steps[1]["zppo/admitted"])
