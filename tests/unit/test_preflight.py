"""Mistakes are reported before Ray starts, in one line naming the key and the file."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from hydra import compose, initialize_config_module
from omegaconf import OmegaConf, open_dict

from recipe.zppo.trainer.preflight import ConfigError, check_config


def _config(model, train, val, device="cpu", rollout="hf", *extra):
    """The recipe's composed CPU config (as main_zppo builds it) with these paths, device, rollout and overrides."""
    with initialize_config_module("recipe.zppo.config", version_base=None):
        return compose("zppo_trainer", overrides=[
            "preset=cpu", f"trainer.device={device}", f"actor_rollout_ref.rollout.name={rollout}",
            f"actor_rollout_ref.model.path={model}", f"data.train_files={train}", f"data.val_files={val}", *extra,
        ])


def test_valid_config_passes(tiny_assets):
    data = tiny_assets["text-data"]
    check_config(_config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet"))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model="/nonexistent/model"), "actor_rollout_ref.model.path=/nonexistent/model: no such model folder"),
        (dict(train="/nonexistent/train.parquet"),
         "data.train_files: data file /nonexistent/train.parquet does not exist"),
        (dict(device="cpu", rollout="vllm"), "trainer.device=cpu but actor_rollout_ref.rollout.name=vllm needs a GPU"),
        (dict(device="cuda", rollout="hf"), "rollout.name=hf is the CPU-only engine but trainer.device=cuda"),
    ],
)
def test_mistakes_are_named(tiny_assets, change, message):
    data = tiny_assets["text-data"]
    kwargs = dict(model=tiny_assets["text-model"], train=data / "train.parquet", val=data / "val.parquet")
    kwargs.update(change)
    with pytest.raises(ConfigError) as error:
        check_config(_config(**kwargs))
    assert message in str(error.value)


def test_missing_column_names_file_and_column(tiny_assets, tmp_path):
    frame = pd.read_parquet(tiny_assets["text-data"] / "train.parquet").drop(columns=["reward_model"])
    broken = tmp_path / "no_reward_model.parquet"
    frame.to_parquet(broken)
    expected = r"data.val_files: .*no_reward_model.parquet lacks required column\(s\) \['reward_model'\]"
    with pytest.raises(ConfigError, match=expected):
        check_config(_config(tiny_assets["text-model"], tiny_assets["text-data"] / "train.parquet", broken))


def test_folder_without_config_is_not_a_model(tmp_path, tiny_assets):
    data = tiny_assets["text-data"]
    with pytest.raises(ConfigError, match="no config.json"):
        check_config(_config(tmp_path, data / "train.parquet", data / "val.parquet"))


def test_command_line_error_is_one_line_without_traceback(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "recipe.zppo.main_zppo", "preset=cpu", "actor_rollout_ref.model.path=/nonexistent/m"],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert lines == ["zppo: configuration error: actor_rollout_ref.model.path=/nonexistent/m: no such model folder"]
    assert "Traceback" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("trainer.v1.trainer_mode=colocate_async", "ZPPO runs only with trainer_mode=zppo"),
        ("algorithm.filter_groups.enable=true",
         "algorithm.filter_groups (dynamic sampling) discards the zero-advantage groups"),
        ("trainer.v1.sampler.sync_refill_failed_groups=true",
         "would refill failed BCQ/NCQ groups with fresh questions"),
        ("actor_rollout_ref.rollout.n=1", "actor_rollout_ref.rollout.n must be >= 2"),
        ("zppo.replay.ratio=1.5", "zppo.replay.ratio=1.5: must be in [0, 1]"),
        ("zppo.aug_ratio=-0.25", "zppo.aug_ratio=-0.25: must be in [0, 1]"),
        ("zppo.wrong_answer_tokens=0", "zppo.wrong_answer_tokens=0: must be >= 1"),
        ("zppo.reformulation.seed=-1", "zppo.reformulation.seed must be >= 0"),
        ("zppo.teacher.rollouts=0", "zppo.teacher: rollouts and max_tokens must be >= 1"),
        ("zppo.teacher.source=cached", "zppo.teacher.source='cached'"),
        ("zppo.dump_prompts=-2", "zppo.dump_prompts=-2"),
    ],
)
def test_settings_that_break_zppo_are_refused_before_ray(tiny_assets, override, message):
    # In process: check_config is what main_zppo runs before Ray (the command line's exit code 2 and one-line
    # message are checked once, by test_command_line_error_is_one_line_without_traceback).
    data = tiny_assets["text-data"]
    with pytest.raises(ConfigError) as error:
        check_config(_config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet", "cpu", "hf",
                             override))
    assert message in str(error.value)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("zppo.buffer.capacity", 0, "zppo.buffer.capacity=0: must be >= 1"),
        ("zppo.hard_threshold", float("nan"), "zppo.hard_threshold=nan: must be in (0, 1]"),
        ("zppo.update.loss_weighting", "sometimes", "zppo.update.loss_weighting='sometimes': expected one of"),
        ("zppo.guidance.mode", "hints", "zppo.guidance.mode='hints': expected one of"),
        ("algorithm.zppo.norm", "batch", "algorithm.zppo.norm='batch' is not one of"),
        ("data.max_prompt_length", -5, "data.max_prompt_length=-5: must be a positive integer"),
        ("data.train_batch_size", 0, "data.train_batch_size=0: must be a positive integer"),
    ],
)
def test_bad_values_are_one_line_errors_naming_the_key(tiny_assets, key, value, message):
    data = tiny_assets["text-data"]
    config = _config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet")
    with open_dict(config):
        OmegaConf.update(config, key, value)
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_loss_weighting_needs_verls_token_mean(tiny_assets):
    data = tiny_assets["text-data"]
    config = _config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet")
    OmegaConf.update(config, "zppo.update.loss_weighting", "per_kind")  # (DictConfig has an update method)
    config.actor_rollout_ref.actor.loss_agg_mode = "seq-mean-token-mean"
    with pytest.raises(ConfigError, match="needs actor_rollout_ref.actor.loss_agg_mode=token-mean"):
        check_config(config)
    config.actor_rollout_ref.actor.loss_agg_mode = "token-mean"
    check_config(config)


def test_unknown_zppo_key_is_refused_when_composing():
    with initialize_config_module("recipe.zppo.config", version_base=None):
        with pytest.raises(Exception, match="capacityy"):
            compose("zppo_trainer", overrides=["zppo.buffer.capacityy=3"])
        # The separate admission / graduation thresholds are gone: one tau (zppo.hard_threshold) decides both.
        for old in ("zppo.buffer.admission_threshold=0.5", "zppo.buffer.graduation_threshold=0.5"):
            with pytest.raises(Exception, match="threshold"):
                compose("zppo_trainer", overrides=[old])


# ----------------------------------------------------------------------------------------------------------
# The rollout's prompt length: derived for BCQ/NCQ prompts, checked against the model's context.
def test_prompt_length_is_derived_for_bcq_ncq_unless_set(tiny_assets, capsys):
    from recipe.zppo.algo.prompt_budget import reformulated_prompt_budget
    from recipe.zppo.algo.reformulation import ReformulationConfig
    from recipe.zppo.trainer.preflight import prompt_length_is_explicit

    data = tiny_assets["text-data"]
    paths = (tiny_assets["text-model"], data / "train.parquet", data / "val.parquet")
    config = _config(*paths)
    assert not prompt_length_is_explicit(config)  # verl's default: ${oc.select:data.max_prompt_length,512}
    check_config(config, derive_prompt_length=True)
    # The CPU preset: plain 256, n 4, compression cap 64, 64 tokens per listed answer; NCQ is the longest.
    expected = reformulated_prompt_budget(256, 4, 64, 64, 64, ReformulationConfig())
    assert config.actor_rollout_ref.rollout.prompt_length == expected.total == expected.ncq > 256 + 4 * (64 + 64)
    assert f"actor_rollout_ref.rollout.prompt_length={expected.total} (derived" in capsys.readouterr().out
    # Compression off: raw candidates, bounded by the student's response length (48) and the teacher's cap (48).
    raw = _config(*paths, "cpu", "hf", "zppo.teacher.compression.enable=false")
    check_config(raw, derive_prompt_length=True)
    assert raw.actor_rollout_ref.rollout.prompt_length == reformulated_prompt_budget(
        256, 4, 48, 48, 64, ReformulationConfig()).total
    # Set by the user: kept (main_zppo only derives when prompt_length_is_explicit is False).
    explicit = _config(*paths, "cpu", "hf", "actor_rollout_ref.rollout.prompt_length=3000")
    assert prompt_length_is_explicit(explicit)
    check_config(explicit, derive_prompt_length=False)
    assert explicit.actor_rollout_ref.rollout.prompt_length == 3000
    # A run that builds no BCQ/NCQ prompt keeps verl's default (the plain prompts' length).
    grpo = _config(*paths, "cpu", "hf", "method=grpo")
    check_config(grpo, derive_prompt_length=True)
    assert grpo.actor_rollout_ref.rollout.prompt_length == 256


@pytest.mark.parametrize(
    "overrides, message",
    [
        # 256 plain + BCQ/NCQ derived (about 1,000) + 3,800 response tokens > the tiny model's 4,096.
        (["data.max_response_length=3800"],
         "actor_rollout_ref.rollout.prompt_length (%d) + data.max_response_length (3800) = %d exceeds the model's "
         "context (max_position_embeddings 4096 in "),
        (["actor_rollout_ref.rollout.prompt_length=200"],
         "actor_rollout_ref.rollout.prompt_length=200 is below data.max_prompt_length=256: verl would cut plain"),
    ],
)
def test_prompt_length_too_long_for_the_context_or_too_short_is_one_line(tiny_assets, overrides, message):
    from recipe.zppo.trainer.preflight import prompt_length_is_explicit

    data = tiny_assets["text-data"]
    config = _config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet", "cpu", "hf",
                     *overrides)
    with pytest.raises(ConfigError) as error:
        check_config(config, derive_prompt_length=not prompt_length_is_explicit(config))
    text = str(error.value)
    if "%d" in message:
        derived = config.actor_rollout_ref.rollout.prompt_length
        message = message % (derived, derived + 3800)
    assert text.startswith(message) and "\n" not in text
    # Without the derived BCQ/NCQ budget (plain GRPO) the same response length fits: 256 + 3,800 <= 4,096.
    if "3800" in overrides[0]:
        check_config(_config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet", "cpu", "hf",
                             "method=grpo", *overrides), derive_prompt_length=True)


def test_model_context_reads_a_vl_models_text_config(tmp_path):
    import json

    from recipe.zppo.trainer.preflight import model_context_length

    (tmp_path / "config.json").write_text(json.dumps(
        {"vision_config": {"max_position_embeddings": 99}, "text_config": {"max_position_embeddings": 262144}}))
    assert model_context_length(tmp_path) == 262144
    (tmp_path / "config.json").write_text(json.dumps({"max_position_embeddings": 4096}))
    assert model_context_length(tmp_path) == 4096
    (tmp_path / "config.json").write_text("{}")
    assert model_context_length(tmp_path) is None
    assert model_context_length("Qwen/Qwen3.5-2B") is None  # a hub id: not checked here


def _without_teacher_responses(source, target):
    """A copy of a tiny data file whose extra_info has no teacher fields."""
    frame = pd.read_parquet(source)
    frame["extra_info"] = [
        {k: v for k, v in info.items() if k not in ("teacher_responses", "teacher_correct")}
        for info in frame["extra_info"]
    ]
    frame.to_parquet(target)
    return target


@pytest.mark.parametrize(
    "overrides, reason",
    [
        ({"zppo": {"teacher": {"source": "offline"}, "guidance": {"mode": "prefix"}}}, "zppo.guidance.mode=prefix"),
        ({"zppo": {"teacher": {"source": "offline"}, "guidance": {"mode": "hint"}}}, "zppo.guidance.mode=hint"),
        ({"zppo": {"teacher": {"source": "offline"}, "reformulation": {"build_bcq": True, "build_ncq": False}}},
         "BCQ only"),
    ],
)
def test_a_method_that_reads_stored_teacher_responses_refuses_data_without_them(tiny_assets, tmp_path, overrides,
                                                                                reason):
    data = tiny_assets["text-data"]
    bare = _without_teacher_responses(data / "train.parquet", tmp_path / "bare.parquet")
    config = OmegaConf.merge(_config(tiny_assets["text-model"], bare, data / "val.parquet"), overrides)
    with pytest.raises(ConfigError) as error:
        check_config(config)
    assert reason in str(error.value) and "bare.parquet has no extra_info.teacher_responses" in str(error.value)
    # ZPPO itself draws its teacher's responses fresh from the served teacher: the same data is fine (and so is it
    # for the Hint and Prefix baselines, which draw theirs fresh too: App. D.2, Algorithms 5-6).
    online = {"zppo": {"teacher": {"source": "online"}}}
    check_config(OmegaConf.merge(_config(tiny_assets["text-model"], bare, data / "val.parquet"), overrides, online))
    # And data with stored teacher responses passes.
    check_config(OmegaConf.merge(
        _config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet"), overrides))


def test_zppo_without_a_teacher_to_serve_is_refused_before_ray(tiny_assets):
    data = tiny_assets["text-data"]
    config = _config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet")
    with pytest.raises(ConfigError, match="zppo.teacher.server.model is empty"):
        check_config(OmegaConf.merge(config, {"zppo": {"teacher": {"server": {"model": ""}}}}))
    for server in ({"url": "http://127.0.0.1:1/v1", "model": ""}, {"model": "Qwen/Qwen3.5-27B-FP8"}):
        check_config(OmegaConf.merge(config, {"zppo": {"teacher": {"server": server}}}))
    # No teacher at all: stored responses, raw candidates (a documented deviation) need no server.
    check_config(OmegaConf.merge(config, {"zppo": {"teacher": {
        "server": {"model": ""}, "source": "offline", "compression": {"enable": False}}}}))


def test_data_directory_and_glob_expand_to_sorted_shards(tmp_path):
    from recipe.zppo.trainer.preflight import expand_data_files

    for name in ("train-00001-of-00002.parquet", "train-00000-of-00002.parquet", "notes.txt"):
        (tmp_path / name).write_text("x")
    shards = [str(tmp_path / f"train-0000{i}-of-00002.parquet") for i in (0, 1)]
    assert expand_data_files(str(tmp_path)) == shards
    assert expand_data_files([str(tmp_path / "train-*.parquet"), "/elsewhere/val.parquet"]) == [
        *shards, "/elsewhere/val.parquet"]
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ConfigError, match="holds no \\*.parquet files"):
        expand_data_files(str(empty))


@pytest.mark.parametrize("overrides", [["preset=paper"], ["preset=paper", "zppo.teacher.compression.enable=false"],
                                       ["preset=cpu"]])
def test_derived_prompt_length_is_within_the_memory_estimates_bound(overrides):
    # The GPU scripts size verl's token budgets with trainer/memory.py's explicit bound; the rollout's derived prompt
    # length must not exceed it, or a budget sized that way would be refused at start.
    from recipe.zppo.config.schema import load_zppo_config
    from recipe.zppo.trainer import memory
    from recipe.zppo.trainer.preflight import reformulated_budget

    with initialize_config_module("recipe.zppo.config", version_base=None):
        config = compose("zppo_trainer", overrides=overrides)
    budget = reformulated_budget(config, load_zppo_config(config))
    assert config.data.max_prompt_length < budget.total <= memory.longest_prompt_bound(config)
