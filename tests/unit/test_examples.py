"""The example scripts: valid bash, and their Hydra overrides compose into a config ZPPO and verl accept.

Nothing is run: each script prints its overrides under ZPPO_DRY_RUN=1, and the test composes them with the recipe's
config exactly as ``python -m recipe.zppo.main_zppo`` would, then applies the checks that run before Ray starts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf

from recipe.zppo.baselines.compute_matching import CUM_GENERATED

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
GPU_SCRIPTS = sorted(p.name for p in EXAMPLES.glob("run_*.sh") if p.name != "run_cpu_tiny.sh")
METHODS = sorted(p.stem for p in (EXAMPLES.parent / "recipe/zppo/config/method").glob("*.yaml"))
PAPER_PRESET = EXAMPLES.parent / "recipe/zppo/config/preset/paper.yaml"

# Table 8 of arXiv 2606.18216 (App. D.1), key by key: what preset=paper must give every run built on it.
TABLE_8 = {
    "actor_rollout_ref.actor.optim.optimizer": "AdamW",
    "actor_rollout_ref.actor.optim.betas": [0.9, 0.999],
    "actor_rollout_ref.actor.optim.override_optimizer_config.eps": 1e-8,
    "actor_rollout_ref.actor.optim.weight_decay": 0.1,
    "actor_rollout_ref.actor.optim.lr": 1e-6,
    "actor_rollout_ref.actor.optim.lr_scheduler_type": "constant",
    "actor_rollout_ref.actor.optim.lr_warmup_steps": 0,
    "actor_rollout_ref.actor.optim.clip_grad": 1.0,
    "actor_rollout_ref.actor.clip_ratio_low": 0.2,
    "actor_rollout_ref.actor.clip_ratio_high": 0.28,
    "actor_rollout_ref.actor.clip_ratio_c": 10.0,
    "actor_rollout_ref.actor.loss_agg_mode": "token-mean",
    "actor_rollout_ref.actor.use_kl_loss": False,
    "algorithm.use_kl_in_reward": False,
    "actor_rollout_ref.rollout.n": 8,
    "actor_rollout_ref.rollout.temperature": 1.0,
    "actor_rollout_ref.rollout.top_p": 1.0,
    "zppo.teacher.rollouts": 4,
    "zppo.teacher.temperature": 1.0,
    "zppo.teacher.top_p": 1.0,
    "zppo.teacher.max_tokens": 12288,
    "data.max_prompt_length": 4096,
    "data.max_response_length": 12288,
    "data.train_batch_size": 384,
    "actor_rollout_ref.actor.ppo_mini_batch_size": 96,
    "zppo.update.num_mini_batches": 4,
    "actor_rollout_ref.actor.ppo_epochs": 1,
    "trainer.total_training_steps": 200,
    "zppo.hard_threshold": 0.5,
    "zppo.replay.ratio": 0.25,
    "zppo.aug_ratio": 0.25,
    "zppo.buffer.capacity": 10000,
    "zppo.teacher.compression.enable": True,
    "zppo.teacher.compression.max_tokens": 512,
}
# What a script may set on top of the preset: the paper's micro-batch 4 is a memory knob (the scripts now use token
# budgets instead, tests/unit/test_gpu_runs.py).
PER_SCALE_KEYS = {"actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu",
                  "actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu"}


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
    _assert_table_8(config)
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
    env = {"TEACHER_URL": "http://teacher:8000"} if method.startswith("off_policy_distill") else {}
    config = _compose(_overrides("run_baselines_qwen3_5_2b.sh", METHOD=method, REFERENCE=str(tmp_path), **env))
    assert config.zppo_method.name == method
    _assert_table_8(config)
    _check_accepted(config)


def _assert_table_8(config) -> None:
    for key, expected in TABLE_8.items():
        value = OmegaConf.select(config, key)
        value = OmegaConf.to_container(value) if OmegaConf.is_config(value) else value
        assert value == pytest.approx(expected) if isinstance(expected, float) else value == expected, (key, value)
    from verl.trainer.ppo.utils import need_reference_policy

    assert not need_reference_policy(config)  # Table 8: no KL term, so verl builds no reference model


def test_paper_preset_gives_table_8_and_passes_verls_checks():
    config = _compose(["preset=paper"])
    _check_accepted(config)
    _assert_table_8(config)


def test_paper_preset_prints_without_a_gpu():
    result = subprocess.run(
        [sys.executable, "-m", "recipe.zppo.main_zppo", "preset=paper", "--cfg", "job"], capture_output=True,
        text=True, timeout=300, cwd=EXAMPLES.parent, env={**os.environ, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    assert printed["data"]["train_batch_size"] == 384 and printed["trainer"]["total_training_steps"] == 200
    assert printed["actor_rollout_ref"]["actor"]["clip_ratio_c"] == 10.0


@pytest.mark.parametrize("script", GPU_SCRIPTS)
def test_scripts_run_the_paper_preset_and_add_only_per_scale_keys(script):
    overrides = _overrides(script, METHOD="zppo")
    assert "preset=paper" in overrides
    preset_keys = set(_leaves(yaml.safe_load(PAPER_PRESET.read_text())))
    assert set(TABLE_8) <= preset_keys  # every Table 8 value comes from the preset, none from a script
    script_keys = {item.split("=", 1)[0].lstrip("+~") for item in overrides if "=" in item}
    assert script_keys & preset_keys <= PER_SCALE_KEYS, script_keys & preset_keys - PER_SCALE_KEYS


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


DISTILLATION_METHODS = {"on_policy_distill", "on_policy_distill_buffer", "off_policy_distill",
                        "off_policy_distill_buffer"}


@pytest.mark.parametrize("method", METHODS)
def test_every_rl_method_uses_the_two_step_estimator(method):
    # App. D.2: "GRPO is identical to ZPPO with BCQ, NCQ and buffer disabled": every RL row, baselines and
    # ablations alike, uses the two-step estimator with zero groups excluded (App. C); verl's own is an ablation.
    config = _compose([f"method={method}"])
    assert config.zppo_method.name == method
    if method == "grpo_verl":
        assert config.algorithm.adv_estimator == "grpo"
    elif method in DISTILLATION_METHODS:
        # No task-reward advantage in their loss: the per-token JSD to the teacher alone.
        assert config.distillation.enabled and not config.distillation.distillation_loss.use_task_rewards
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


# The paper's RL rows (Tabs 1-4; App. D.2): which branches each has on, (buffer, BCQ, NCQ, guidance). Everything else
# is the one recipe of Tab. 8: "All RL rows ... inherit every entry below; the only differences live in which student
# rollout source enters the gradient" (App. D.1).
RL_ROWS = {
    "grpo": (False, False, False, "none"),
    "grpo_buffer": (True, False, False, "none"),  # GRPO†
    "grpo_both": (False, True, True, "none"),  # GRPO + Both
    "grpo_buffer_bcq": (True, True, False, "none"),  # GRPO† + BCQ
    "grpo_buffer_ncq": (True, False, True, "none"),  # GRPO† + NCQ
    "hint": (True, False, False, "hint"),  # GRPO† + Hint
    "prefix": (True, False, False, "prefix"),  # GRPO† + Prefix
    "zppo": (True, True, True, "none"),  # GRPO† + Both
}
BRANCH_KEYS = {"zppo_method.name", "zppo.enable", "zppo.replay.enable", "zppo.reformulation.build_bcq",
               "zppo.reformulation.build_ncq", "zppo.guidance.mode"}


@pytest.mark.parametrize("method", sorted(RL_ROWS))
def test_rl_rows_share_the_papers_recipe_and_differ_only_in_their_branches(method):
    from recipe.zppo.config.schema import load_zppo_config

    config, zppo = (_compose(["preset=paper", f"method={m}"]) for m in (method, "zppo"))
    # The recipe: two-step estimator with zero groups excluded, clip-higher, token-level loss, no KL, I = 4.
    assert config.algorithm.adv_estimator == "zppo" and config.algorithm.zppo.norm == "batch_nonzero"
    actor = config.actor_rollout_ref.actor
    assert (actor.clip_ratio_low, actor.clip_ratio_high, actor.loss_agg_mode) == (0.2, 0.28, "token-mean")
    assert not actor.use_kl_loss and not config.algorithm.use_kl_in_reward and actor.kl_loss_coef == 0.0
    assert config.zppo["update"].num_mini_batches == 4 and actor.ppo_epochs == 1
    # Nothing but the branch switches differs from ZPPO's config...
    assert _differences(config, zppo) <= BRANCH_KEYS, _differences(config, zppo) - BRANCH_KEYS
    # ...and the branches on are the row's.
    loaded = load_zppo_config(config)
    on = loaded.enable
    assert (on and loaded.replay.enable, on and loaded.reformulation.build_bcq, on and loaded.reformulation.build_ncq,
            loaded.guidance.mode if on else "none") == RL_ROWS[method]
    # GRPO rows build no BCQ/NCQ and need no teacher; the rows with BCQ, a hint or a prefix draw fresh teacher rollouts.
    assert loaded.needs_candidates == (RL_ROWS[method][1] or RL_ROWS[method][2])
    assert loaded.needs_teacher_service == (any(RL_ROWS[method][1:3]) or RL_ROWS[method][3] != "none")
    if method == "prefix":
        assert loaded.guidance.prefix_fraction == 0.4  # alpha (App. D.2, Algorithm 6)


# Every row of Tabs 1-4 (the distillation rows by method name), what run_baselines_qwen3_5_2b.sh runs without METHOD.
PAPER_ROWS = ["off_policy_distill", "off_policy_distill_buffer", "on_policy_distill", "on_policy_distill_buffer",
              "grpo", "grpo_buffer", "grpo_both", "grpo_buffer_bcq", "grpo_buffer_ncq", "hint", "prefix", "zppo"]


def test_baseline_script_runs_every_row_of_tables_1_to_4():
    script = (EXAMPLES / "run_baselines_qwen3_5_2b.sh").read_text()
    declared = script.split("PAPER_ROWS=(", 1)[1].split(")", 1)[0].split()
    assert declared == PAPER_ROWS
    assert set(PAPER_ROWS) <= set(METHODS)
    # no METHOD: every row, one run after the other; the off-policy rows' fresh teacher rollouts need TEACHER_URL,
    # checked before the first run
    missing = subprocess.run(["bash", str(EXAMPLES / "run_baselines_qwen3_5_2b.sh")], capture_output=True, text=True,
                             timeout=60, env={k: v for k, v in os.environ.items() if k != "TEACHER_URL"}
                             | {"ZPPO_DRY_RUN": "1", "DATA": "/data/zppo77k"})
    assert missing.returncode != 0 and "TEACHER_URL" in missing.stderr and not missing.stdout
    overrides = _overrides("run_baselines_qwen3_5_2b.sh", TEACHER_URL="http://teacher:8000/v1")
    assert [line for line in overrides if line.startswith("method=")] == [f"method={row}" for row in PAPER_ROWS]
    readme = (EXAMPLES / "README.md").read_text()
    for method in METHODS:  # every method is in the README's table
        assert f"| `{method}`" in readme, method


def test_hint_runs_derive_a_prompt_budget_that_holds_a_full_hint():
    from recipe.zppo.algo.reformulation import Tokenization
    from recipe.zppo.baselines.teacher_guidance import GuidanceMaterial, build_hints
    from recipe.zppo.config.schema import load_zppo_config
    from recipe.zppo.trainer.preflight import set_rollout_prompt_length

    config = _compose(["preset=paper", "method=hint"])
    zppo = load_zppo_config(config)
    assert "hint prompts" in set_rollout_prompt_length(config, zppo)
    budget = config.actor_rollout_ref.rollout.prompt_length
    # The longest plain prompt (4,096) with the longest hint (hint_max_tokens; a token per byte at most) fits...
    chars = Tokenization(decode=lambda ids: "".join(map(chr, ids)), count_text_tokens=lambda t: len(t.encode()),
                         encode=lambda t: [ord(c) for c in t])
    longest = GuidanceMaterial("q", [{"role": "user", "content": "x"}], prompt_length=4096, ground_truth="1",
                               teacher_text="t", hint="h" * zppo.guidance.hint_max_tokens)
    assert len(build_hints([longest], chars, budget, zppo.guidance).prompts) == 1
    # ...with a few tokens to spare (the tags), and runs without hints keep verl's default.
    assert 4096 + 512 < budget < 4096 + 512 + 32
    grpo = _compose(["preset=paper", "method=grpo_buffer"])
    assert set_rollout_prompt_length(grpo, load_zppo_config(grpo)) is None
