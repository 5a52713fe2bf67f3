"""The toy experiment (benchmarks/toy) at smoke size: data, warm-up, zppo and grpo_matched through main_zppo, report.

One seed, one RL step per arm; the runs attach to the session's Ray head (``--ray-address``) instead of starting
their own.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_toy_smoke(ray_cluster, tmp_path):
    out = tmp_path / "toy"
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.toy.run", "--out", str(out), "--size", "smoke", "--seeds", "0",
         "--ray-address", ray_cluster],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900,
    )
    logs = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted((out / "runs").glob("*.log"))) \
        if (out / "runs").is_dir() else ""
    assert proc.returncode == 0, f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}\n{logs}"

    results = json.loads((out / "results.json").read_text())
    assert set(results["arms"]) == {"zppo", "grpo_matched"}
    runs = {r["arm"]: r for r in results["runs"]}
    for arm, run in runs.items():
        assert run["seed"] == 0 and run["steps"] == 1, arm
        assert run["cum_generated_tokens"] > 0 and run["cum_rollouts"] > 0, arm
        assert 0.0 <= run["heldout_hard_acc"] <= 1.0 and 0.0 <= run["heldout_easy_acc"] <= 1.0, arm
    # grpo_matched ran against the zppo run of its seed as its reference
    assert f"zppo.matched.reference={out / 'runs' / 'zppo_s0'}" in runs["grpo_matched"]["command"]
    assert "| zppo | 1 |" in (out / "RESULTS.md").read_text()

    # a rerun finds every stage done and only rewrites the report
    again = subprocess.run(
        [sys.executable, "-m", "benchmarks.toy.run", "--out", str(out), "--size", "smoke", "--seeds", "0",
         "--ray-address", ray_cluster],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count("done before") == 3  # warm-up and both runs
