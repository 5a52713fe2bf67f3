"""``benchmarks/bench_step.py --smoke``: GRPO and ZPPO runs through the real entry point, on the session's Ray
cluster, read back from their metrics files. Timing goals are the script's own PASS/MISS lines, not checked here.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from ..conftest import REPO_ROOT

pytestmark = pytest.mark.e2e


def test_bench_step_smoke_grpo_vs_zppo(tiny_assets, ray_cluster, tmp_path):
    out = tmp_path / "step.json"
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_step.py"), "--smoke", "--skip-fixed",
         "--ray-address", ray_cluster, "--tiny-dir", str(tiny_assets["text-model"].parents[1]),
         "--workdir", str(tmp_path / "runs"), "--out", str(out), "--timeout", "900",
         # The pipeline, not the teacher (tests/e2e/test_cpu_zppo.py runs the served teacher): stored teacher
         # responses and raw candidates, so BCQ/NCQ prompts are built whatever the tiny teacher manages.
         "--override", "zppo.teacher.source=offline", "--override", "zppo.teacher.compression.enable=false"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1200,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    runs = report["settings"]["results"]
    assert set(runs) == {"grpo", "zppo"}
    for name, run in runs.items():
        split = run["split_s"]
        assert split["step"] > 0 and run["tokens"] > 0, name
        assert sum(v for k, v in split.items() if k != "step") == pytest.approx(split["step"], rel=1e-6)
    # ZPPO's extra work is there: a second rollout phase on BCQ/NCQ prompts (the tiny model fails its questions),
    # which GRPO, through the same trainer, never runs.
    assert runs["zppo"]["split_s"]["gen_phase2"] > 0 and runs["grpo"]["split_s"]["gen_phase2"] == 0
    assert runs["zppo"]["trajectories"]["bcq"] + runs["zppo"]["trajectories"]["ncq"] > 0
    assert runs["zppo"]["tokens"] > runs["grpo"]["tokens"]
    names = {goal["name"] for goal in report["goals"]}
    assert "time per processed token, zppo / grpo" in names and "zppo host-side share of the step" in names
    assert sum(line.startswith(("PASS ", "MISS ")) for line in result.stdout.splitlines()) == len(report["goals"])
