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


def test_overrides_run_validation_only_and_user_overrides_win(tmp_path):
    overrides = build_overrides(tmp_path / "m", ["/d/a.parquet", "/d/b.parquet"], tmp_path, n=4, temperature=0.7,
                                top_p=0.95, user=["actor_rollout_ref.rollout.val_kwargs.n=2"])
    assert "trainer.val_only=true" in overrides and "trainer.val_before_train=true" in overrides
    assert "data.val_files=['/d/a.parquet','/d/b.parquet']" in overrides
    assert "actor_rollout_ref.rollout.val_kwargs.do_sample=true" in overrides
    assert overrides[-1] == "actor_rollout_ref.rollout.val_kwargs.n=2"  # last wins in Hydra
    greedy = build_overrides(tmp_path / "m", ["/d/a.parquet"], tmp_path, n=1, temperature=0.0, top_p=1.0, user=[])
    assert "actor_rollout_ref.rollout.val_kwargs.do_sample=false" in greedy


def test_eval_reward_is_the_project_reward_plus_ids():
    from recipe.zppo.reward import compute_score

    info = {"question_id": "mmstar-3", "reward_type": "multiple_choice", "choices": ["red", "blue"]}
    plain = compute_score("mmstar", "<think>x</think> \\boxed{B}", "B", info)
    wrapped = compute_score_with_ids("mmstar", "<think>x</think> \\boxed{B}", "B", info)
    assert {k: wrapped[k] for k in plain} == plain
    assert wrapped["data_source"] == "mmstar" and wrapped["question_id"] == "mmstar-3"


def test_text_only_models_are_recognised(tmp_path):
    from recipe.zppo.eval.evaluate import is_vision_model

    (tmp_path / "text").mkdir()
    (tmp_path / "text/config.json").write_text('{"model_type": "qwen3"}')
    (tmp_path / "vl").mkdir()
    (tmp_path / "vl/config.json").write_text('{"model_type": "qwen3_5", "vision_config": {"depth": 2}}')
    assert not is_vision_model(tmp_path / "text") and is_vision_model(tmp_path / "vl")
