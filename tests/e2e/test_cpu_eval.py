"""Evaluation end to end on the CPU: tiny copies of paper benchmarks of the three families (AIME25, AI2D, Video-MME;
published layouts, ``data_prep.benchmarks.fixtures``) and one benchmark of the extra suite (MATH-500) are converted
and evaluated with the tiny vision-language model through ``python -m recipe.zppo.eval``, which runs
the trainer's validation path. One launch checks several things (Ray start-up dominates a tiny run):

- per-benchmark numbers and family averages equal those recomputed from the per-answer dump, and verl's own
  logged ``val-core/<benchmark>/acc``; the extra benchmark is reported apart (group "extra"), never in a family
  average;
- a video row (sampled frames) goes through the vision path: its frames replace the image placeholders and the
  rollout reports no failure;
- a missing benchmark file and an unknown name are one line each, the others still run, the results mark the gap;
- the paper's decoding reaches the rollout (the CPU profile: temperature 0.6, top-p 0.95, top-k 20, and min-p /
  presence / repetition penalties through the eval agent loop; the ``hf`` rollout says once that it cannot apply the
  presence penalty), answers that used the whole response length are marked truncated;
- progress lines, per-benchmark records, and a re-run with the same OUT that evaluates nothing again (no launch);
- the report built on the evaluation shows the same numbers, and the paper-layout tables.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from data_prep.benchmarks import ConvertOptions, convert_many
from data_prep.benchmarks.fixtures import build_fixtures

from .helpers import failure_context

pytestmark = pytest.mark.e2e

FRAMES = 4
# Tiny images keep the prompts inside the CPU preset's 256-token budget (a 64x64 image is 4 visual tokens).
OPTIONS = ConvertOptions(min_pixels=32 * 32, max_pixels=64 * 64, frames=FRAMES)


PAPER = ("aime25", "ai2d", "videomme")  # one per family (Tabs 5-7); aime25's fixture has 2 rows (AIME2025-I, -II)
EXTRA = "math500"  # suite="extra": outside the paper's 31
EVALUATED = (*PAPER, EXTRA)


def _benchmarks(root: Path, data: Path) -> None:
    build_fixtures(root, ["ai2d", "videomme"], rows=2)
    build_fixtures(root, ["aime25"], rows=1)
    # MATH500's layout (test.jsonl); one gold is what the warm-started tiny model tends to answer, so the numbers
    # are not all zero (nothing below relies on it).
    (root / "math500").mkdir(parents=True)
    (root / "math500/test.jsonl").write_text("".join(
        json.dumps({"problem": p, "answer": a, "unique_id": f"q{i}", "subject": "Algebra", "level": 1}) + "\n"
        for i, (p, a) in enumerate([("What is 555 + 556?", "1111"), ("What is 3 + 4?", "7")])))
    done = convert_many(list(EVALUATED), root, data, OPTIONS, log=lambda line: None)
    assert set(done) == set(EVALUATED)


def _recompute(rows: list[dict]) -> dict[str, float]:
    per_question: dict[tuple, list[float]] = {}
    for row in rows:
        per_question.setdefault((row["data_source"], row["question_id"]), []).append(float(row["acc"]))
    per_bench: dict[str, list[float]] = {}
    for (bench, _), accs in per_question.items():
        per_bench.setdefault(bench, []).append(sum(accs) / len(accs))
    return {bench: 100 * sum(v) / len(v) for bench, v in per_bench.items()}


def test_eval_suite_on_tiny_vl_model(tiny_assets, ray_cluster, tmp_path):
    data, out = tmp_path / "data", tmp_path / "eval"
    _benchmarks(tmp_path / "src", data)
    env = {**os.environ, "RAY_ADDRESS": ray_cluster, "ZPPO_EVAL_PROGRESS_S": "5"}
    env.pop("VERL_PLATFORM", None)
    command = [sys.executable, "-m", "recipe.zppo.eval.evaluate", "--model", str(tiny_assets["vl-model"]),
               "--suite", ",".join((*EVALUATED, "aime24", "nosuch")), "--data", str(data), "--out", str(out), "--name",
               "tiny", "--launch-size", "0",  # one trainer launch for the four (Ray start-up dominates a tiny run)
               "preset=cpu", "data.val_batch_size=4"]  # 8 questions: two validation batches
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900)
    output = result.stdout + result.stderr
    # 1: some requested benchmarks were not evaluated; the others were.
    assert result.returncode == 1, failure_context(result)
    assert "Traceback" not in result.stderr.split("eval: results in")[-1]
    lines = result.stderr.splitlines()
    missing = [line for line in lines if line.startswith("eval: aime24:")]
    unknown = [line for line in lines if line.startswith("eval: nosuch:")]
    assert len(missing) == 1 and "missing" in missing[0] and "aime24.parquet" in missing[0], missing
    assert len(unknown) == 1 and "unknown" in unknown[0], unknown
    assert "Error in _run_prompt" not in output and "synthetic padding" not in output, failure_context(result)

    results = json.loads((out / "results.json").read_text())
    rows = [json.loads(line) for path in results["generations"].values()
            for line in Path(path).read_text().splitlines() if line.strip()]
    recomputed = _recompute(rows)
    benches = results["benchmarks"]
    assert benches["aime24"]["status"] == "missing" and results["unknown"] == ["nosuch"]
    for name in EVALUATED:
        entry = benches[name]
        assert entry["status"] == "ok" and entry["questions"] == entry["rows_in_file"] == 2, entry
        assert entry["acc"] == pytest.approx(recomputed[name]), name
        assert entry["verl_acc"] == pytest.approx(recomputed[name]), name  # verl's own val-core metric agrees
        assert (out / "benchmarks" / name / "done.json").is_file()
    families = results["families"]
    assert benches[EXTRA]["suite"] == benches["aime24"]["suite"] == "extra"
    assert all(benches[name]["suite"] == "paper" for name in PAPER)
    # the paper's families average their own benchmarks only; the extras are a group of their own
    assert families["llm"] == {**families["llm"], "benchmarks": ["aime25"], "missing": []}
    assert families["llm"]["avg"] == pytest.approx(recomputed["aime25"])
    assert families["vlm"]["benchmarks"] == ["ai2d"] and families["vlm"]["avg"] == pytest.approx(recomputed["ai2d"])
    assert families["video"]["avg"] == pytest.approx(recomputed["videomme"])
    assert families["extra"]["benchmarks"] == [EXTRA] and families["extra"]["missing"] == ["aime24"]
    assert families["extra"]["avg"] == pytest.approx(recomputed[EXTRA])
    assert not any(EXTRA in fam["benchmarks"] or "aime24" in fam["missing"]
                   for key, fam in families.items() if key != "extra")
    csv_rows = (out / "results.csv").read_text().splitlines()
    assert any(line.startswith(f"{tiny_assets['vl-model']}") and ",ai2d," in line for line in csv_rows)

    # Decoding: App. B.2's sampling with the CPU preset's lengths; the penalties reached the hf rollout, which says
    # once that transformers' generate has no presence penalty.
    config = results["config"]
    assert config["decoding_profile"] == "cpu" and config["decoding"]["top_k"] == 20
    assert config["decoding"]["temperature"] == 0.6 and config["decoding"]["presence_penalty"] == 1.5
    log_text = (out / "eval.log").read_text()
    assert "val_kwargs.top_k=20" in log_text and "default_agent_loop=zppo_eval_agent" in log_text
    assert "presence_penalty=1.5 is not applied" in log_text, log_text[-3000:]
    # Every answer carries the scoring's keys; one that never closes its think block is truncated.
    for row in rows:
        assert row["truncated"] in (0.0, 1.0) and row["judge_calls"] == 0.0, row
        if "<think>" in row["output"] and "</think>" not in row["output"]:
            assert row["truncated"] == 1.0, row["output"]
    assert any("benchmarks done" in line for line in lines)
    assert any(" 4/4 " in line and ": acc " in line and "judge calls" in line for line in lines), lines

    # The video rows reached the model as frames: verl replaced every <image> placeholder with image content.
    video_rows = [row for row in rows if row["data_source"] == "videomme"]
    assert len(video_rows) == 2
    for row in video_rows:
        assert f"shown as {FRAMES} frames" in row["input"] and "<image>" not in row["input"], row["input"]

    # Resume: the same command again evaluates nothing (no trainer launch) and reports the same numbers.
    again = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 1, failure_context(again)
    assert sum("finished in an earlier run" in line for line in again.stderr.splitlines()) == 4, again.stderr
    assert (out / "eval.log").read_text() == log_text  # no new launch
    resumed = json.loads((out / "results.json").read_text())
    for name in EVALUATED:
        assert resumed["benchmarks"][name]["acc"] == benches[name]["acc"]

    # The report on this evaluation shows the same numbers, and the paper-layout tables.
    from recipe.zppo.eval.report import make_report

    table = make_report([out], out, tmp_path / "report", names=["again"])
    reported = {row["benchmark"]: row["values"] for fam in table["families"] for row in fam["rows"]}
    for name in EVALUATED:
        assert reported[name] == pytest.approx([recomputed[name], recomputed[name]])
    grouped = {fam["family"]: [row["benchmark"] for row in fam["rows"]] for fam in table["families"]}
    assert EXTRA in grouped["extra"] and all(EXTRA not in names for key, names in grouped.items() if key != "extra")
    assert (tmp_path / "report" / "family_bars.png").stat().st_size > 1000
    assert "### Tab. 1 layout: 16 VLM benchmarks" in (tmp_path / "report" / "report.md").read_text()
