"""The benchmark scripts in their reduced size (``--smoke``), so that they cannot rot.

Their goals (timings) are checked by the scripts' own PASS/MISS lines, never here: these tests check that each
script runs, prints its table and goal lines, writes its JSON report, and that what it measured is the work it
claims (the reformulation built a BCQ and an NCQ per question from every candidate, the rollout generated every
token asked for, a step's parts add up to the step).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import bench_step
from benchmarks._common import Report

REPO_ROOT = Path(__file__).resolve().parents[2]


def _run(script: str, *args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(REPO_ROOT / "benchmarks" / script), *args], cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _goal_lines(stdout: str) -> list[str]:
    return [line for line in stdout.splitlines() if line.startswith(("PASS ", "MISS ", "SKIP "))]


def test_bench_host_reduced_run_reports_every_goal_on_the_work_it_claims(tiny_assets, tmp_path):
    out = tmp_path / "host.json"
    result = _run("bench_host.py", "--smoke", "--tokenizer", str(tiny_assets["text-model"]), "--cpu", "-1",
                  "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert {row["section"] for row in report["rows"]} == {"reformulation", "buffer", "advantage"}
    sizes = report["settings"]["sizes"]
    decoded = next(row for row in report["rows"] if row["name"].startswith("decode every wrong rollout"))
    assert decoded["rollouts"] == sizes["questions"] * sizes["candidates"] > decoded["with_answer"] > 0
    # Every question got its BCQ and its NCQ, the NCQ showing every wrong rollout that has a final answer.
    built = next(row for row in report["rows"] if row["name"].startswith("reformulate: BCQ + NCQ"))
    assert built["bcq_built"] == built["ncq_built"] == sizes["questions"] and built["skipped_for_length"] == 0
    assert built["candidates_shown"] == 2 * sizes["questions"] + decoded["with_answer"]
    ratio = next(row for row in report["rows"] if row["name"] == "zppo / verl grpo")
    assert ratio["group_mode_max_abs_diff_vs_verl"] < 1e-5  # the estimators were timed on the same work
    # Every goal is reported, as a line and in the JSON, whatever the timing.
    assert len(_goal_lines(result.stdout)) == len(report["goals"]) >= 9
    assert all(goal["passed"] in (True, False) for goal in report["goals"])


def test_bench_rollout_reduced_run_generates_every_requested_token(tiny_assets, tmp_path):
    out = tmp_path / "rollout.json"
    tiny_dir = tiny_assets["text-model"].parents[1]
    result = _run("bench_rollout.py", "--smoke", "--engines", "hf", "--threads", "1", "--tiny-dir", str(tiny_dir),
                  "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    (row,) = [row for row in report["rows"] if row["name"] == "hf"]
    settings = report["settings"]
    # ignore_eos: every sample generated exactly the tokens asked for.
    assert row["generated_tokens"] == settings["prompts"] * settings["n"] * settings["response"]
    assert row["generated_per_sec"] > 0 and "hf" in result.stdout


def test_tiny_teacher_report_reduced_run_reports_rollouts_compressions_and_goals(tiny_assets, tiny_teacher, tmp_path):
    out = tmp_path / "teacher.json"
    result = _run("tiny_teacher_report.py", "--smoke", "--model", str(tiny_teacher),
                  "--student", str(tiny_assets["text-model"]), "--out", str(out))
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = [row["section"] for row in report["rows"]]
    assert sections.count("rollouts") == 1 and sections.count("compression") >= 4 and "student" in sections
    for row in report["rows"]:
        if row["section"] == "compression":
            assert row["responses"] > 0 and 0.0 <= row["ok_share"] <= 1.0
    assert len(_goal_lines(result.stdout)) == len(report["goals"]) == 2


def _step(number, **timings):
    data = {"training/global_step": number, "perf/total_num_tokens": 1000.0 * number}
    data.update({f"timing_s/{key}": value for key, value in timings.items()})
    return data


def test_step_split_adds_up_and_separates_the_phases():
    zppo = [_step(s, step=13.0, gen=6.0, **{"zppo/reformulate": 1.0, "zppo/gen_phase2": 2.0,
                                                  "zppo/teacher_wait": 0.2, "zppo/length_check": 0.3,
                                                  "zppo/buffer": 0.1, "zppo/adv_estimator": 0.05},
                  old_log_prob=1.0, adv=0.5, update_actor=2.0, update_weights=0.1) for s in (1, 2, 3, 4)]
    summary = bench_step.summarise_run(zppo, warmup=1)
    split = summary["split_s"]
    assert summary["steps_measured"] == [2, 3, 4]
    assert split["step"] == pytest.approx(13.0) and summary["step_median_s"] == 13.0
    assert split["gen_phase1"] == pytest.approx(3.0) and split["gen_phase2"] == pytest.approx(2.0)
    assert split["reformulation"] == pytest.approx(0.5)  # the length check and the wait for the teacher are split off
    assert split["adv_estimator"] == pytest.approx(0.05) and split["adv_io"] == pytest.approx(0.45)
    parts = sum(value for key, value in split.items() if key != "step")
    assert parts == pytest.approx(split["step"])
    assert summary["time_per_token_s"] == pytest.approx(13.0 / 3000.0)  # median of 13/2000, 13/3000, 13/4000
    # GRPO logs no ZPPO timers: generation is all phase 1.
    grpo = bench_step.split_of([_step(1, step=5.0, gen=3.0, adv=0.5, update_actor=1.0)])
    assert grpo["gen_phase1"] == 3.0 and grpo["gen_phase2"] == grpo["reformulation"] == 0.0


def test_goal_lines_say_pass_or_miss(capsys):
    report = Report("t", {}, facts={})
    report.goal("fast enough", 0.4, 1.0, "s")
    report.goal("too slow", 2.0, 1.0, "s", note="why")
    report.goal("not measured", None, 1.0, "s")
    report.print_goals()
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("PASS fast enough") and lines[1].startswith("MISS too slow") and lines[1].endswith("why")
    assert lines[2].startswith("SKIP not measured")


def test_bench_teacher_client_answers_every_question_and_reports_both_goals(tmp_path):
    out = tmp_path / "teacher_client.json"
    result = _run("bench_teacher_client.py", "--delay-s", "0.05", "--questions", "4", "--out", str(out), timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    concurrent = next(row for row in report["rows"] if row["name"].startswith("4 questions"))
    assert concurrent["answered"] == 4 and concurrent["peak_concurrent"] >= 2
    closed = next(row for row in report["rows"] if row["name"].startswith("closed port"))
    assert "connection failed" in closed["error"] and "3 attempts" in closed["error"]
    assert len(_goal_lines(result.stdout)) == len(report["goals"]) == 2


def test_bench_reward_bounds_measure_the_judge_down_path():
    result = _run("bench_reward.py", "--only", "bounds", timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = _goal_lines(result.stdout)
    assert len(lines) == 4
    # the pathological answers were all scored (by the grader, or given up at its deadline), not failed otherwise
    assert "pathological" in lines[2] and "internal_error" not in lines[2]
    assert "grader_failed/grader_timeout" in lines[2]  # 9**9**9**9 never finishes: stopped at its deadline
    # the judge-down figure is of refused calls and an open circuit, not of some other failure
    assert "judge_connection_error, judge_connection_error, judge_circuit_open, judge_circuit_open" in lines[3]
