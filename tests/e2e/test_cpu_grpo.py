"""GRPO end to end on the CPU through ``python -m recipe.zppo.main_zppo preset=cpu`` (text; the vision-language path
is covered by the ZPPO and Prefix runs, which use the same trainer).

One run checks several things (Ray start-up dominates a tiny run): the steps completed, reward metrics were
logged, the actor's weights changed, rollout and actor log-probs of the same tokens agree (weight sync), and the
checkpoint was written. Resuming from a checkpoint is checked by the ZPPO text run (test_cpu_zppo.py), through the
same trainer, with the buffer and counters that GRPO does not have.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from ..conftest import run_main
from .helpers import cpu_run_args, failure_context, load_weights, max_weight_change, read_metrics, train_steps

pytestmark = pytest.mark.e2e

REWARD = [f"reward.custom_reward_function.path={Path(__file__).with_name('reward_for_tests.py')}",
          "reward.custom_reward_function.name=parity_score"]
# Rollout (HF generate) and actor (FSDP2) log-probs of the same sampled tokens, as probabilities: both run fp32 on
# the same weights, so they differ only by kernel/batching round-off (measured ~2e-5).
PROB_AGREEMENT_TOL = 1e-3


def _common(run_dir: Path, model: Path, data: Path) -> list[str]:
    # method=grpo: the paper's GRPO row (ZPPO's estimator, no buffer, no BCQ/NCQ, App. D.2), through the same trainer
    # and data path as ZPPO
    return cpu_run_args(model, data, run_dir, "method=grpo", *REWARD)


def _check_training_run(run_dir: Path, records: list[dict], initial_model: Path, steps: list[int]) -> None:
    assert train_steps(records) == steps
    for record in records:
        data = record["data"]
        if "training/global_step" not in data:
            continue
        assert "critic/score/mean" in data and "critic/rewards/mean" in data
        assert 0.0 < data["critic/score/mean"] < 1.0, "parity reward should reward some but not all responses"
        assert data["training/rollout_probs_diff_valid"] == 1.0
        assert data["training/rollout_probs_diff_max"] < PROB_AGREEMENT_TOL, data["training/rollout_probs_diff_max"]
    final = run_dir / f"global_step_{steps[-1]}" / "actor" / "huggingface"
    assert max_weight_change(load_weights(initial_model), load_weights(final)) > 1e-6


def test_grpo_text_trains(tiny_assets, ray_cluster, tmp_path):
    run_dir = tmp_path / "run"
    args = _common(run_dir, tiny_assets["text-model"], tiny_assets["text-data"]) + ["trainer.save_freq=2"]
    result = run_main(args + ["trainer.total_training_steps=2"], ray_address=ray_cluster, cwd=tmp_path)
    assert result.returncode == 0, failure_context(result)
    launches = read_metrics(run_dir)
    assert len(launches) == 1
    _check_training_run(run_dir, launches[0], tiny_assets["text-model"], steps=[1, 2])
    assert (run_dir / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
