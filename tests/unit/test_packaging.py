"""The installed package is this project's: ``recipe.zppo`` resolves to this repository from any folder.

TransferQueue (a verl-core dependency) installs a top-level ``recipe/`` folder of its own into site-packages.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ..conftest import REPO_ROOT


def test_recipe_imports_from_outside_the_repository(tmp_path):
    code = ("import recipe.zppo.main_zppo as m, verl_patches.plugin as p, data_prep.tiny as t; "
            "print(m.__file__); print(p.__file__); print(t.__file__)")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    for line in result.stdout.strip().splitlines()[-3:]:
        assert Path(line).resolve().is_relative_to(REPO_ROOT), line


def test_verl_plugin_entry_point_is_registered():
    from importlib.metadata import entry_points

    names = {ep.name: ep.value for ep in entry_points(group="verl.plugins")}
    assert names.get("zppo_verl_patches") == "verl_patches.plugin"
    assert names.get("zppo") == "recipe.zppo.trainer.registration"


def test_config_files_are_found_by_hydra(tmp_path):
    """The recipe config composes verl's full config from the installed package, with ZPPO's keys on top."""
    from hydra import compose, initialize_config_module

    with initialize_config_module(config_module="recipe.zppo.config", version_base=None):
        config = compose(config_name="zppo_trainer", overrides=["preset=cpu"])
    assert config.algorithm.adv_estimator == "zppo"
    assert config.trainer.v1.trainer_mode == "zppo"
    assert config.actor_rollout_ref.rollout.name == "hf" and config.trainer.device == "cpu"
    assert config.zppo.reformulation.bcq_instruction.startswith("Here are two candidate responses in <candidate>")
    assert config.zppo.teacher.rollouts == 4 and config.zppo.teacher.server.model.endswith("models/tiny-teacher")
    assert "ppo_mini_batch_size" in config.actor_rollout_ref.actor  # verl's own keys are there too
