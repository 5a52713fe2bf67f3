"""Mistakes are reported before Ray starts, in one line naming the key and the file."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest
from omegaconf import OmegaConf

from recipe.zppo.preflight import ConfigError, check_config

from ..conftest import REPO_ROOT


def _config(model, train, val, device="cpu", rollout="hf"):
    return OmegaConf.create(
        {
            "trainer": {"device": device},
            "actor_rollout_ref": {"model": {"path": str(model)}, "rollout": {"name": rollout}},
            "data": {"train_files": str(train), "val_files": str(val), "prompt_key": "prompt",
                     "reward_fn_key": "data_source"},
        }
    )


def test_valid_config_passes(tiny_assets):
    data = tiny_assets["text-data"]
    check_config(_config(tiny_assets["text-model"], data / "train.parquet", data / "val.parquet"))


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(model="/nonexistent/model"), "actor_rollout_ref.model.path=/nonexistent/model: no such model folder"),
        (dict(train="/nonexistent/train.parquet"), "data.train_files: data file /nonexistent/train.parquet does not exist"),
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
    with pytest.raises(ConfigError, match=r"data.val_files: .*no_reward_model.parquet lacks required column\(s\) \['reward_model'\]"):
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
