"""The distillation baselines end to end on the CPU (``python -m recipe.zppo.main_zppo method=... preset=cpu``), 2 steps
each, three runs for the four methods (the plain variants differ from the dagger ones by the buffer alone, which
tests/unit/test_distill.py checks on the composed configs):

- ``on_policy_distill_buffer`` (Algorithm 3 + buffer): verl's teacher pool (the tiny model with perturbed weights,
  ``hf`` engine, its own resource pool) rescores the STUDENT's samples; the update's loss IS the per-token JSD
  (non-negative, no task reward), one update per step, the weights move; failed questions are admitted and replayed.
- ``off_policy_distill_buffer`` (Algorithm 2 + buffer): the served tiny teacher draws G_T fresh rollouts for every
  prompt (new and replayed) each step; the trained responses are exactly the correct ones' tokens (the student's
  tokenizer + EOS); the JSD on them is the loss; admitted and replayed questions as above.
- ``off_policy_distill``: the same without the buffer (nothing replayed), and the weights move.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

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

JSD = "actor/distillation/loss"  # verl's distillation loss: here the token-mean per-token JSD estimate


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


def _run(method: str, tiny_assets, teacher: Path, ray_cluster, tmp_path, *extra: str,
         served: Path | None = None) -> tuple[Path, list[dict]]:
    run_dir = tmp_path / "run"
    args = cpu_run_args(
        tiny_assets["text-model"], tiny_assets["text-data"], run_dir, f"method={method}",
        f"distillation.teacher_models.teacher_model.model_path={teacher}", "trainer.save_freq=2", *extra,
        teacher=served,
    )
    result = run_main(args, ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    if served is None:  # on-policy: whole groups of n fill the update's batch multiple; off-policy's row count is the
        # number of correct teacher rollouts, which verl pads (padding rows carry no loss token)
        assert "synthetic padding" not in result.stdout + result.stderr, failure_context(result)
    assert train_steps(read_metrics(run_dir)[0]) == [1, 2]
    steps = step_metrics(run_dir)
    for data in steps:
        # The per-token JSD estimate is >= 0 token by token; use_task_rewards=false: it is the whole loss.
        assert math.isfinite(data[JSD]) and data[JSD] >= 0, data[JSD]
        assert data["actor/loss"] == pytest.approx(data[JSD], rel=1e-4, abs=1e-6)
        assert data["zppo/update/mini_batches"] == 1  # one update per step (App. D.2)
        assert data.get("zppo/bcq_built", 0) == 0 and data.get("zppo/ncq_built", 0) == 0
    final = run_dir / "global_step_2" / "actor" / "huggingface"
    assert max_weight_change(load_weights(tiny_assets["text-model"]), load_weights(final)) > 1e-6
    return run_dir, steps


def _admits_and_replays(steps: list[dict]) -> None:
    first, second = steps
    # The tiny student fails (nearly) every question: step 1 admits them, step 2 gives the buffer its share.
    assert first["zppo/admitted"] > 0 and first["zppo/buffer_size"] == first["zppo/admitted"]
    assert second["zppo/replayed_questions"] > 0


def test_on_policy_distill_buffer_trains_on_the_jsd_of_student_samples(tiny_assets, teacher_model, ray_cluster,
                                                                       tmp_path):
    _, steps = _run("on_policy_distill_buffer", tiny_assets, teacher_model, ray_cluster, tmp_path)
    for data in steps:
        # The teacher rescored the student's own samples: a teacher that differs gives a non-zero log-ratio.
        assert abs(data["actor/distillation/log_ratio"]) > 1e-3, data["actor/distillation/log_ratio"]
        assert "zppo/distill/trajectories" not in data  # no teacher trajectories on-policy
    _admits_and_replays(steps)


def _check_off_policy(run_dir: Path, steps: list[dict], tiny_assets) -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_assets["text-model"])
    for step, data in enumerate(steps, start=1):
        prompts = data["zppo/new_questions"] + data.get("zppo/replayed_questions", 0)
        # Algorithm 2: G_T fresh teacher rollouts for EVERY prompt of the step, new and replayed alike.
        assert data["zppo/distill/questions"] == prompts
        assert data["zppo/distill/rollouts_requested"] > 0
        assert data["zppo/distill/rollouts_requested"] % prompts == 0
        assert data["zppo/distill/trajectories"] > 0 and data["zppo/distill/skipped_update"] == 0
        assert data["zppo/distill/trajectories"] <= data["zppo/distill/rollouts_correct"]
        assert data["zppo/distill/response_mismatch"] == 0  # the update's responses are the teacher's tokens
        assert data["zppo/compute/teacher_rescoring/rollouts"] > 0
        rows = [json.loads(line) for line in (run_dir / "zppo_distill" / f"step_{step}.jsonl").read_text().splitlines()]
        assert len(rows) == data["zppo/distill/trajectories"]
        for row in rows:  # a correct teacher rollout, in the student's tokens + EOS
            assert row["token_ids"] == tokenizer.encode(row["text"], add_special_tokens=False) + [
                tokenizer.eos_token_id]


def test_off_policy_distill_buffer_trains_on_fresh_correct_teacher_rollouts(tiny_assets, tiny_teacher, ray_cluster,
                                                                             tmp_path):
    run_dir, steps = _run("off_policy_distill_buffer", tiny_assets, tiny_teacher, ray_cluster, tmp_path,
                          served=tiny_teacher)
    _check_off_policy(run_dir, steps, tiny_assets)
    _admits_and_replays(steps)
    # The replayed questions of step 2 got teacher rollouts of their own that step (no cache across visits).
    assert steps[1]["zppo/distill/questions"] > steps[1]["zppo/new_questions"]


def test_off_policy_distill_without_buffer(tiny_assets, tiny_teacher, ray_cluster, tmp_path):
    run_dir, steps = _run("off_policy_distill", tiny_assets, tiny_teacher, ray_cluster, tmp_path,
                          served=tiny_teacher)
    _check_off_policy(run_dir, steps, tiny_assets)
    for data in steps:
        assert data.get("zppo/replayed_questions", 0) == 0 and data.get("zppo/buffer_size", 0) == 0
