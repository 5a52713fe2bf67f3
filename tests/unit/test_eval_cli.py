"""recipe.zppo.eval.evaluate without a run: which model folder it evaluates, which benchmarks it runs, what it asks the
trainer for."""

from __future__ import annotations

import pytest

from recipe.zppo.eval.evaluate import (
    actor_dir_of,
    build_overrides,
    compute_score_with_ids,
    prepare_model,
    select_benchmarks,
)


def _checkpoint(run_dir, step=3):
    actor = run_dir / f"global_step_{step}" / "actor"
    actor.mkdir(parents=True)
    (actor / "model_world_size_1_rank_0.pt").write_bytes(b"")
    (run_dir / "latest_checkpointed_iteration.txt").write_text(str(step))
    return actor


def test_checkpoint_folders_resolve_to_the_actor(tmp_path):
    actor = _checkpoint(tmp_path / "run")
    assert actor_dir_of(tmp_path / "run") == actor
    assert actor_dir_of(actor.parent) == actor
    assert actor_dir_of(actor) == actor
    assert actor_dir_of(tmp_path) is None


def test_a_hf_folder_is_evaluated_as_is_and_anything_else_is_refused(tmp_path):
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf/config.json").write_text("{}")
    assert prepare_model(tmp_path / "hf", tmp_path / "out", print) == (tmp_path / "hf").resolve()
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="neither a Hugging Face model folder"):
        prepare_model(tmp_path / "empty", tmp_path / "out", print)


def test_missing_files_and_unknown_names_are_marked(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_prep.benchmarks.common import ROW_SCHEMA

    pq.write_table(pa.Table.from_pylist([], schema=ROW_SCHEMA), str(tmp_path / "mmstar.parquet"))
    lines = []
    run, entries, unknown = select_benchmarks(["mmstar", "math500", "nosuch"], tmp_path, lines.append)
    assert run == ["mmstar"] and unknown == ["nosuch"]
    assert entries["math500"]["status"] == "missing" and entries["math500"]["family"] == "llm"
    assert len(lines) == 2 and any("math500" in line and "missing" in line for line in lines)


def test_overrides_run_validation_only_with_the_papers_decoding_and_user_overrides_win(tmp_path):
    from recipe.zppo.eval.decoding import AGENT_NAME, profile_values

    paper = profile_values("paper")
    overrides = build_overrides(tmp_path / "m", ["/d/a.parquet", "/d/b.parquet"], tmp_path, n=4,
                                decoding_values=paper, user=["actor_rollout_ref.rollout.val_kwargs.n=2"])
    assert "trainer.val_only=true" in overrides and "trainer.val_before_train=true" in overrides
    assert "data.val_files=['/d/a.parquet','/d/b.parquet']" in overrides
    # App. B.2: temperature 0.6, top-p 0.95, top-k 20, 12,288 new tokens, max model length 262,144
    for expected in ("actor_rollout_ref.rollout.val_kwargs.do_sample=true",
                     "actor_rollout_ref.rollout.val_kwargs.temperature=0.6",
                     "actor_rollout_ref.rollout.val_kwargs.top_p=0.95", "actor_rollout_ref.rollout.val_kwargs.top_k=20",
                     "data.max_response_length=12288", "actor_rollout_ref.rollout.max_model_len=262144",
                     f"actor_rollout_ref.rollout.agent.default_agent_loop={AGENT_NAME}"):
        assert expected in overrides, expected
    # min-p, presence and repetition penalties reach the rollout through the eval agent loop's config
    agent_yaml = (tmp_path / "eval_agent_loop.yaml").read_text()
    assert f"agent_loop_config_path={tmp_path / 'eval_agent_loop.yaml'}" in " ".join(overrides)
    assert "presence_penalty: 1.5" in agent_yaml and "min_p: 0.0" in agent_yaml
    assert "repetition_penalty: 1.0" in agent_yaml and "recipe.zppo.eval.agent_loop.EvalAgentLoop" in agent_yaml
    assert overrides[-1] == "actor_rollout_ref.rollout.val_kwargs.n=2"  # last wins in Hydra
    # the CPU profile: the same sampling, the lengths left to the CPU preset
    cpu = build_overrides(tmp_path / "m", ["/d/a.parquet"], tmp_path, n=1, decoding_values=profile_values("cpu"),
                          user=[])
    assert "actor_rollout_ref.rollout.val_kwargs.top_k=20" in cpu
    assert not any(o.startswith(("data.max_response_length=", "actor_rollout_ref.rollout.max_model_len=")) for o in cpu)
    greedy = build_overrides(tmp_path / "m", ["/d/a.parquet"], tmp_path, n=1,
                             decoding_values=profile_values("greedy"), user=[])
    assert "actor_rollout_ref.rollout.val_kwargs.do_sample=false" in greedy


def test_eval_reward_is_the_project_reward_plus_ids_for_rows_without_scoring(tmp_path):
    from recipe.zppo.reward import compute_score

    info = {"question_id": "mmstar-3", "reward_type": "multiple_choice", "choices": ["red", "blue"]}
    plain = compute_score("mmstar", "<think>x</think> \\boxed{B}", "B", info)
    wrapped = compute_score_with_ids("mmstar", "<think>x</think> \\boxed{B}", "B", info,
                                     progress_dir=str(tmp_path / "progress"))
    assert {k: wrapped[k] for k in plain} == plain
    assert wrapped["data_source"] == "mmstar" and wrapped["question_id"] == "mmstar-3"
    assert (wrapped["judge_calls"], wrapped["truncated"]) == (0.0, 0.0)
    # the row was counted in this process's progress file
    from recipe.zppo.eval.evaluate import read_progress

    assert read_progress(tmp_path / "progress")["rows"] >= 1


def test_text_only_models_are_recognised(tmp_path):
    from recipe.zppo.eval.evaluate import is_vision_model

    (tmp_path / "text").mkdir()
    (tmp_path / "text/config.json").write_text('{"model_type": "qwen3"}')
    (tmp_path / "vl").mkdir()
    (tmp_path / "vl/config.json").write_text('{"model_type": "qwen3_5", "vision_config": {"depth": 2}}')
    assert not is_vision_model(tmp_path / "text") and is_vision_model(tmp_path / "vl")


# ------------------------------------------------------------------------------------------------ resume and progress


def _fake_trainer(calls: list, fail: set):
    """Stands in for ``main_zppo``: writes verl's per-answer dump for the launch's files (every question right on
    even rows), one progress file, or fails for a benchmark in ``fail``."""
    import json as _json
    import re as _re
    from pathlib import Path as _Path

    def run(overrides, log_path, echo=True):
        values = dict(o.split("=", 1) for o in overrides if "=" in o)
        files = _re.findall(r"'([^']+)'", values["data.val_files"])
        names = [_Path(f).stem for f in files]
        calls.append(names)
        if fail & set(names):
            return 3
        dump = _Path(values["trainer.validation_data_dir"])
        dump.mkdir(parents=True, exist_ok=True)
        lines = [_json.dumps({"data_source": name, "question_id": f"{name}-{q}", "uid": f"u{q}", "acc": float(q % 2),
                              "score": float(q % 2), "route": "grader", "judge_calls": 0.0, "truncated": 0.0,
                              "input": "x", "output": "y"}) for name in names for q in range(4)]
        (dump / "0.jsonl").write_text("\n".join(lines) + "\n")
        return 0

    return run


def test_a_rerun_resumes_and_only_evaluates_unfinished_benchmarks(tmp_path, monkeypatch, capsys):
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from data_prep.benchmarks import BENCHMARKS
    from data_prep.benchmarks.common import ROW_SCHEMA
    from recipe.zppo.eval import evaluate

    names = list(BENCHMARKS)[:3]
    data = tmp_path / "data"
    data.mkdir()
    for name in names:
        pq.write_table(pa.Table.from_pylist([], schema=ROW_SCHEMA), str(data / f"{name}.parquet"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"vision_config": {}}')
    out = tmp_path / "out"
    argv = ["--model", str(model), "--suite", ",".join(names), "--data", str(data), "--out", str(out), "preset=cpu"]

    calls: list = []
    monkeypatch.setattr(evaluate, "run_trainer", _fake_trainer(calls, fail={names[1]}))
    assert evaluate.main(argv) == 3  # the second benchmark's launch crashed
    assert calls == [[names[0]], [names[1]], [names[2]]]  # one launch per benchmark by default
    first = json.loads((out / "results.json").read_text())
    assert [first["benchmarks"][n]["status"] for n in names] == ["ok", "failed", "ok"]
    assert first["benchmarks"][names[0]]["acc"] == 50.0  # 2 of 4 questions right
    assert first["config"]["decoding_profile"] == "cpu"  # chosen by preset=cpu
    assert (out / "benchmarks" / names[0] / "done.json").is_file()
    assert not (out / "benchmarks" / names[1] / "done.json").exists()
    err = capsys.readouterr().err
    assert f"[{'#' * 7}" in err and "1/3" in err and f"{names[0]}: acc 50.00 over 4 questions" in err

    calls.clear()
    monkeypatch.setattr(evaluate, "run_trainer", _fake_trainer(calls, fail=set()))
    assert evaluate.main(argv) == 0
    assert calls == [[names[1]]]  # only the unfinished benchmark ran again
    second = json.loads((out / "results.json").read_text())
    assert all(second["benchmarks"][n]["status"] == "ok" for n in names)
    assert second["benchmarks"][names[0]]["acc"] == first["benchmarks"][names[0]]["acc"]
    assert "finished in an earlier run" in capsys.readouterr().err

    # another decoding is another evaluation: nothing is reused
    calls.clear()
    assert evaluate.main([*argv, "--temperature", "1.0", "--launch-size", "0"]) == 0
    assert calls == [names]  # all in one launch


def test_progress_lines_sum_the_reward_processes(tmp_path):
    from recipe.zppo.eval.evaluate import ProgressMonitor, progress_bar

    (tmp_path / "a.json").write_text('{"rows": 5, "judge_calls": 2}')
    (tmp_path / "b.json").write_text('{"rows": 7, "judge_calls": 1}')
    monitor = ProgressMonitor(tmp_path, done=2, total=4, rows=40, names=["x", "y"], log=print)
    line = monitor.line()
    assert line == f"eval: {progress_bar(2, 4)} benchmarks done; running x, y: 12 of 40 rows scored, 3 judge calls"
    assert monitor.line() is None  # nothing moved
    assert progress_bar(2, 4, width=4) == "[##--] 2/4"
