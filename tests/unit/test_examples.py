"""The example scripts: valid bash, and their Hydra overrides compose into a config ZPPO and verl accept.

Nothing is run: each script prints its overrides under ZPPO_DRY_RUN=1, and the test composes them with the recipe's
config exactly as ``python -m recipe.zppo.main_zppo`` would, then applies the checks that run before Ray starts.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from recipe.zppo.baselines.compute_matching import CUM_GENERATED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GPU_SCRIPTS = sorted(p.name for p in EXAMPLES.glob("run_*.sh") if p.name != "run_cpu_tiny.sh")
METHODS = sorted(p.stem for p in (EXAMPLES.parent / "recipe/zppo/config/method").glob("*.yaml"))


def _overrides(script: str, **env) -> list[str]:
    result = subprocess.run(
        ["bash", str(EXAMPLES / script)], capture_output=True, text=True, timeout=60,
        env={**os.environ, "ZPPO_DRY_RUN": "1", "DATA": "/data/zppo77k", "HOME": "/home/user", **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.splitlines()


def _compose(overrides: list[str]):
    with initialize_config_module("recipe.zppo.config", version_base=None):
        return compose("zppo_trainer", overrides=overrides)


def _check_accepted(config) -> None:
    from verl.trainer.ppo.utils import need_critic, need_reference_policy
    from verl.utils.config import validate_config

    from recipe.zppo.trainer.preflight import check_verl_values, check_zppo_config

    OmegaConf.resolve(config)
    check_zppo_config(config)
    check_verl_values(config)
    validate_config(config=config, use_reference_policy=need_reference_policy(config), use_critic=need_critic(config))


@pytest.mark.parametrize("script", sorted(p.name for p in EXAMPLES.glob("*.sh")))
def test_script_is_valid_bash(script):
    assert subprocess.run(["bash", "-n", str(EXAMPLES / script)], capture_output=True).returncode == 0


@pytest.mark.parametrize("script", [s for s in GPU_SCRIPTS if s != "run_baselines_qwen3_5_2b.sh"])
@pytest.mark.parametrize("teacher_url", [None, "http://teacher:8000/v1"], ids=["served_by_the_run", "url"])
def test_zppo_scripts_compose(script, teacher_url):
    env = {"TEACHER_URL": teacher_url} if teacher_url else {}
    overrides = _overrides(script, **env)
    config = _compose(overrides)
    _check_accepted(config)
    assert config.zppo_method.name == "zppo" and config.algorithm.adv_estimator == "zppo"
    assert config.actor_rollout_ref.rollout.name == "vllm"
    train_files = config.data.train_files
    assert list(train_files) == ["/data/zppo77k/train-*.parquet"] or train_files == "/data/zppo77k/train-*.parquet"
    server = config.zppo.teacher.server
    assert server.url == (teacher_url or "") and server.model == "Qwen/Qwen3.5-27B-FP8"
    if teacher_url:  # served elsewhere: the student takes the node
        assert config.trainer.n_gpus_per_node == 8
    else:  # the paper's layout: the run serves the teacher on 2 of the 8 GPUs (one replica each), the student on 6
        assert config.trainer.n_gpus_per_node == 6 and server.engine == "vllm" and server.devices == "6,7"
        assert list(server.extra_args) == ["--data-parallel-size", "2"]


@pytest.mark.parametrize("method", METHODS)
def test_baseline_script_composes_every_method(method, tmp_path):
    # grpo_matched reads its reference ZPPO run's metrics before Ray starts: give it one.
    (tmp_path / "metrics").mkdir()
    record = {"step": 1, "data": {"training/global_step": 1, CUM_GENERATED: 10.0}}
    (tmp_path / "metrics" / "run.jsonl").write_text(json.dumps(record) + "\n")
    config = _compose(_overrides("run_baselines_qwen3_5_2b.sh", METHOD=method, REFERENCE=str(tmp_path)))
    assert config.zppo_method.name == method
    if method != "off_policy_distill":  # verl's SFT trainer, with its own config (checked in test_distill)
        _check_accepted(config)


def _leaves(node, prefix: str = "") -> dict:
    """Every leaf of a composed config as {dotted key: value} (interpolations left unresolved)."""
    container = OmegaConf.to_container(node, resolve=False) if not isinstance(node, dict) else node
    out = {}
    for key, value in container.items():
        if isinstance(value, dict):
            out.update(_leaves(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _differences(a, b) -> set[str]:
    left, right = _leaves(a), _leaves(b)
    return {key for key in left.keys() | right.keys() if left.get(key, "<absent>") != right.get(key, "<absent>")}


DISTILLATION_METHODS = {"on_policy_distill", "on_policy_distill_buffer", "off_policy_distill"}


@pytest.mark.parametrize("method", METHODS)
def test_every_rl_method_uses_the_two_step_estimator(method):
    # App. D.2: "GRPO is identical to ZPPO with BCQ, NCQ and buffer disabled": every RL row, baselines and
    # ablations alike, uses the two-step estimator with zero groups excluded (App. C); verl's own is an ablation.
    config = _compose([f"method={method}"])
    assert config.zppo_method.name == method
    if method == "grpo_verl":
        assert config.algorithm.adv_estimator == "grpo"
    elif method in DISTILLATION_METHODS:
        # No task-reward advantage in their loss: SFT (off-policy), or the teacher's per-token signal alone.
        assert "off_policy_distill" in config if method == "off_policy_distill" else (
            config.distillation.enabled and not config.distillation.distillation_loss.use_task_rewards)
    else:
        assert config.algorithm.adv_estimator == "zppo" and config.algorithm.zppo.norm == "batch_nonzero"


def test_grpo_is_zppo_without_bcq_ncq_and_buffer_and_grpo_verl_only_swaps_the_estimator():
    grpo, zppo, grpo_verl = (_compose([f"method={m}"]) for m in ("grpo", "zppo", "grpo_verl"))
    # zppo.enable=false turns off the buffer and both reformulations at once (schema.py); nothing else differs.
    assert _differences(grpo, zppo) == {"zppo_method.name", "zppo.enable"}
    assert not grpo.zppo.enable and zppo.zppo.enable
    assert _differences(grpo, grpo_verl) == {"zppo_method.name", "algorithm.adv_estimator"}


def test_dry_run_passes_extra_overrides_last():
    overrides = _overrides("run_zppo_qwen3_5_2b.sh") + ["trainer.total_training_steps=7"]
    extra = subprocess.run(
        ["bash", str(EXAMPLES / "run_zppo_qwen3_5_2b.sh"), "trainer.total_training_steps=7"],
        capture_output=True, text=True, env={**os.environ, "ZPPO_DRY_RUN": "1"},
    ).stdout.splitlines()
    assert extra[-1] == "trainer.total_training_steps=7" and len(extra) == len(overrides)
    assert _compose(extra).trainer.total_training_steps == 7
