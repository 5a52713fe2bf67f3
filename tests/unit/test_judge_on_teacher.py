"""main_zppo._judge_on_teacher: the reward's judge is the run's teacher server (App. D.1) unless one is named."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from recipe.zppo.main_zppo import _judge_on_teacher


def _config(url="http://127.0.0.1:9/v1", teacher_judges=True, **reward_kwargs):
    return OmegaConf.create({
        "zppo": {"teacher": {"judge": teacher_judges, "server": {"url": url, "model": "/models/teacher"}}},
        "reward": {"custom_reward_function": {"reward_kwargs": reward_kwargs}},
        "ray_kwargs": {"ray_init": {"runtime_env": {"env_vars": {}}}},
    })


@pytest.fixture(autouse=True)
def clean_env(monkeypatch):
    # _judge_on_teacher writes os.environ itself: setenv first so that monkeypatch restores (removes) the keys after
    # the test (delenv of an absent key records nothing, and a leaked ZPPO_JUDGE_URL would hand every later test in
    # the process, and its subprocesses, a judge at a closed port)
    for key in ("ZPPO_JUDGE_URL", "ZPPO_JUDGE_MODEL"):
        monkeypatch.setenv(key, "")
        monkeypatch.delenv(key)


@pytest.mark.parametrize("kwargs", [{}, {"judge_unresolved": True}])
def test_teacher_server_becomes_the_judge(kwargs):
    import os

    config = _config(**kwargs)
    _judge_on_teacher(config)
    env = config.ray_kwargs.ray_init.runtime_env.env_vars
    assert env.ZPPO_JUDGE_URL == os.environ["ZPPO_JUDGE_URL"] == "http://127.0.0.1:9/v1"
    assert env.ZPPO_JUDGE_MODEL == os.environ["ZPPO_JUDGE_MODEL"] == "/models/teacher"


@pytest.mark.parametrize("config", [
    _config(judge_url="http://judge:8000/v1", judge_model="j"),  # the reward names its judge
    _config(judge={"url": "http://judge:8000/v1", "model": "j"}),
    _config(teacher_judges=False),  # zppo.teacher.judge=false
    _config(url=""),  # no teacher server (a GRPO row)
])
def test_left_alone(config):
    import os

    _judge_on_teacher(config)
    assert dict(config.ray_kwargs.ray_init.runtime_env.env_vars) == {} and "ZPPO_JUDGE_URL" not in os.environ


def test_environment_judge_wins(monkeypatch):
    monkeypatch.setenv("ZPPO_JUDGE_URL", "http://elsewhere:1/v1")
    config = _config()
    _judge_on_teacher(config)
    assert dict(config.ray_kwargs.ray_init.runtime_env.env_vars) == {}
