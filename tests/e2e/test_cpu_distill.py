"""The distillation baselines end to end on the CPU (``python -m recipe.zppo.main_zppo method=... preset=cpu``).

- ``on_policy_distill``: verl's on-policy distillation on ZPPO's trainer, with a teacher that differs from the
  student (the tiny model with perturbed weights) served by the ``hf`` engine in its own resource pool: every
  step logs the teacher KL term, the update's loss IS that term (no task reward in the loss), and it moves the
  student's weights.
- ``on_policy_distill_buffer``: the same plus the prompt replay buffer: failed questions are admitted and replayed,
  no BCQ/NCQ are built.
- ``off_policy_distill``: verl's SFT trainer on the stored correct teacher responses; the saved model gives those
  responses a lower NLL than the initial model on the same training rows (measured explicitly, not read from the
  trainer's own loss).
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file, save_file

from recipe.zppo.baselines.distill import teacher_token_nll

from ..conftest import run_main
from .helpers import (
    cpu_run_args,
    failure_context,
    load_weights,
    max_weight_change,
    read_metrics,
    step_metrics,
    train_steps,
)

pytestmark = pytest.mark.e2e

TEACHER_KL = "actor/distillation/loss"  # verl's distillation loss: token-mean k1 = log p_student - log p_teacher
TEACHER_KL_ABS = "actor/distillation/abs_loss"
# Rows of the SFT training file evaluated before/after (the tiny model scores them in a few seconds).
NLL_ROWS = 64


@pytest.fixture(scope="module")
def teacher_model(tiny_assets, tmp_path_factory) -> Path:
    """The tiny student with seeded noise on its weight matrices: same tokenizer, different distribution."""
    teacher = tmp_path_factory.mktemp("teacher") / "tiny-teacher"
    shutil.copytree(tiny_assets["text-model"], teacher)
    weights_file = next(teacher.glob("*.safetensors"))
    weights = load_file(str(weights_file))
    generator = torch.Generator().manual_seed(7)
    noisy = {
        name: (w + 0.5 * w.float().std() * torch.randn(w.shape, generator=generator)).to(w.dtype) if w.dim() > 1 else w
        for name, w in weights.items()
    }
    save_file(noisy, str(weights_file), metadata={"format": "pt"})
    return teacher


def _on_policy_run(method: str, tiny_assets, teacher_model, ray_cluster, tmp_path,
                   *extra: str) -> tuple[Path, list[dict]]:
    run_dir = tmp_path / "run"
    args = cpu_run_args(
        tiny_assets["text-model"], tiny_assets["text-data"], run_dir, f"method={method}",
        f"distillation.teacher_models.teacher_model.model_path={teacher_model}", *extra,
    )
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    assert "synthetic padding" not in result.stdout + result.stderr, failure_context(result)
    assert train_steps(read_metrics(run_dir)[0]) == [1, 2]
    steps = step_metrics(run_dir)
    for data in steps:
        assert math.isfinite(data[TEACHER_KL]), data[TEACHER_KL]
        # A teacher that differs from the student: the per-token log-ratio is far from 0.
        assert data[TEACHER_KL_ABS] > 1e-2, data[TEACHER_KL_ABS]
        assert data["zppo/bcq_built"] == 0 and data["zppo/ncq_built"] == 0
    return run_dir, steps


def test_on_policy_distill_trains_on_the_teacher_kl(tiny_assets, teacher_model, ray_cluster, tmp_path):
    run_dir, steps = _on_policy_run(
        "on_policy_distill", tiny_assets, teacher_model, ray_cluster, tmp_path, "trainer.save_freq=2"
    )
    for data in steps:
        # use_task_rewards=false: the update's loss is the distillation term alone.
        assert data["actor/loss"] == pytest.approx(data[TEACHER_KL], rel=1e-4, abs=1e-6)
        assert data.get("zppo/buffer_size", 0) == 0 and data.get("zppo/replayed_questions", 0) == 0
    final = run_dir / "global_step_2" / "actor" / "huggingface"
    assert max_weight_change(load_weights(tiny_assets["text-model"]), load_weights(final)) > 1e-6


def test_on_policy_distill_with_buffer_replays_failed_questions(tiny_assets, teacher_model, ray_cluster, tmp_path):
    _, steps = _on_policy_run("on_policy_distill_buffer", tiny_assets, teacher_model, ray_cluster, tmp_path)
    first, second = steps
    # The tiny student fails (nearly) every question: step 1 admits them, step 2 gives the buffer its share.
    assert first["zppo/admitted"] > 0 and first["zppo/buffer_size"] == first["zppo/admitted"]
    assert second["zppo/replayed_questions"] > 0


def test_off_policy_distill_lowers_teacher_nll(tiny_assets, tmp_path):
    run_dir = tmp_path / "run"
    args = cpu_run_args(tiny_assets["text-model"], tiny_assets["text-data"], run_dir, "method=off_policy_distill")
    result = run_main(args, ray_address=None, cwd=tmp_path)  # verl's SFT trainer under torchrun: no Ray
    assert result.returncode == 0, failure_context(result)

    # The SFT file holds exactly the correct stored teacher responses of the training rows.
    rows = pq.read_table(tiny_assets["text-data"] / "train.parquet").to_pylist()
    correct = sum(sum(row["extra_info"]["teacher_correct"]) for row in rows)
    stats = json.loads((run_dir / "sft_data" / "train.stats.json").read_text())
    assert stats["examples"] == correct
    assert stats["rows_without_correct_response"] == sum(not any(r["extra_info"]["teacher_correct"]) for r in rows)

    records = read_metrics(run_dir)[0]
    assert [r["step"] for r in records if "train/loss" in r["data"]] == [1, 2]
    assert (run_dir / "latest_checkpointed_iteration.txt").read_text().strip() == "2"

    sft_file = run_dir / "sft_data" / "train.parquet"
    before = teacher_token_nll(tiny_assets["text-model"], sft_file, max_rows=NLL_ROWS)
    after = teacher_token_nll(run_dir / "global_step_2" / "huggingface", sft_file, max_rows=NLL_ROWS)
    assert before["tokens"] == after["tokens"] > 0
    assert after["nll"] < before["nll"] - 0.05, (before, after)
