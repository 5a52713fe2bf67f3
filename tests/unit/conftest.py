"""Fixtures shared by the unit tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def fresh_judge(monkeypatch):
    """No judge configured from the environment, and no judge client or cache left from another test."""
    from recipe.zppo.reward import judge

    for key in list(os.environ):
        if key.startswith("ZPPO_JUDGE_"):
            monkeypatch.delenv(key)
    judge.reset_clients()
    yield
    judge.reset_clients()
