"""Distillation baselines (recipe/zppo/distill.py): SFT examples from the RL rows, verl's SFT config, start-up checks.

The end-to-end runs are in tests/e2e/test_cpu_distill.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from hydra import compose, initialize_config_module

from recipe.zppo.baselines.distill import (
    NoSFTExamples,
    SFTBuildStats,
    chat_length_counter,
    compose_sft_config,
    prepare_on_policy_distill,
    reward_scorer,
    run_off_policy_distill,
    sft_examples_of_row,
    sft_overrides,
    write_sft_parquet,
)
from recipe.zppo.trainer.preflight import ConfigError

PROMPT = [{"role": "user", "content": "What is 2 + 3?"}]


def _row(responses, correct=None, images=None):
    extra = {"question_id": "q1", "teacher_responses": responses}
    if correct is not None:
        extra["teacher_correct"] = correct
    row = {"prompt": PROMPT, "data_source": "toy", "reward_model": {"ground_truth": "5"}, "extra_info": extra}
    if images is not None:
        row["images"] = images
    return row


def _compose(*overrides: str):
    with initialize_config_module("recipe.zppo.config", version_base=None):
        return compose("zppo_trainer", overrides=list(overrides))


# ------------------------------------------------------------------------------------------- SFT examples of a row


def test_one_example_per_correct_response_in_order():
    row = _row(["A \\boxed{5}", "B \\boxed{4}", "C \\boxed{5}"], [True, False, True])
    examples, stats = sft_examples_of_row(row, where="row 0")
    assert [e["messages"][-1] for e in examples] == [
        {"role": "assistant", "content": "A \\boxed{5}"},
        {"role": "assistant", "content": "C \\boxed{5}"},
    ]
    assert all(e["messages"][:-1] == PROMPT for e in examples)
    assert (stats.examples, stats.wrong_responses, stats.rows_without_correct_response) == (2, 1, 0)


def test_row_without_correct_response_is_counted_not_used():
    examples, stats = sft_examples_of_row(_row(["x \\boxed{1}", ""], [False, True]), where="row 0")
    assert examples == []
    assert (stats.rows_without_correct_response, stats.wrong_responses, stats.empty_responses) == (1, 1, 1)
    examples, stats = sft_examples_of_row(_row([]), where="row 1")
    assert examples == [] and stats.rows_without_teacher_responses == 1


def test_cap_and_images():
    images = [{"bytes": b"png"}]
    examples, stats = sft_examples_of_row(
        _row(["a", "b", "c"], [True, True, True], images=images), where="row 0", max_responses_per_question=1
    )
    assert len(examples) == 1 and stats.responses_over_cap == 2
    assert examples[0]["images"] == images


def test_scorer_decides_when_correctness_is_not_stored():
    seen = []

    def score(text, row):
        seen.append(text)
        return text.endswith("{5}")

    examples, _ = sft_examples_of_row(_row(["\\boxed{5}", "\\boxed{6}"]), where="row 0", score=score)
    assert seen == ["\\boxed{5}", "\\boxed{6}"]
    assert [e["messages"][-1]["content"] for e in examples] == ["\\boxed{5}"]
    with pytest.raises(ValueError, match="row 7.*teacher_correct"):
        sft_examples_of_row(_row(["\\boxed{5}"]), where="row 7")


def test_bad_prompt_names_the_row():
    row = _row(["a"], [True])
    row["prompt"] = "not messages"
    with pytest.raises(ValueError, match="train.parquet row 3: column 'prompt'"):
        sft_examples_of_row(row, where="train.parquet row 3")


def test_over_length_examples_are_skipped_and_counted():
    examples, stats = sft_examples_of_row(
        _row(["short", "a much longer response"], [True, True]), where="row 0",
        example_length=lambda messages: len(messages[-1]["content"]), max_length=10,
    )
    assert [e["messages"][-1]["content"] for e in examples] == ["short"]
    assert stats.over_length_examples == 1


# ------------------------------------------------------------------------------------------- SFT file


@pytest.fixture(scope="module")
def tiny_text(tmp_path_factory):
    from data_prep.tiny import build_text_dataset, build_text_model

    root = tmp_path_factory.mktemp("tiny_distill")
    data = build_text_dataset(root / "data", n_train=40, n_val=8, teacher_responses=2)
    model = build_text_model(root / "model", warm_start_steps=0)
    return {"data": data, "model": model}


def test_sft_file_holds_every_correct_teacher_response(tiny_text, tmp_path):
    rows = pq.read_table(tiny_text["data"] / "train.parquet").to_pylist()
    expected = [
        (row["prompt"], text)
        for row in rows
        for text, ok in zip(row["extra_info"]["teacher_responses"], row["extra_info"]["teacher_correct"])
        if ok
    ]
    out = tmp_path / "sft" / "train.parquet"
    stats = write_sft_parquet(str(tiny_text["data"] / "train.parquet"), out)
    written = pq.read_table(out).to_pylist()
    assert [(r["messages"][:-1], r["messages"][-1]["content"]) for r in written] == expected
    assert stats.examples == len(expected) and stats.rows == len(rows)
    assert stats.rows_without_correct_response == sum(not any(r["extra_info"]["teacher_correct"]) for r in rows)
    assert json.loads(out.with_name("train.stats.json").read_text())["examples"] == len(expected)


def test_verl_sft_dataset_trains_on_exactly_the_teacher_tokens(tiny_text, tmp_path):
    """The file is in verl's SFT layout: its loss mask covers the teacher response (and the turn's end), not the
    prompt."""
    from transformers import AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    out = tmp_path / "train.parquet"
    write_sft_parquet(str(tiny_text["data"] / "train.parquet"), out)
    tokenizer = AutoTokenizer.from_pretrained(tiny_text["model"])
    dataset = MultiTurnSFTDataset(str(out), tokenizer, {"pad_mode": "no_padding", "max_length": 512}, max_samples=4)
    first = pq.read_table(out).to_pylist()[0]["messages"][-1]["content"]
    item = dataset[0]
    trained = tokenizer.decode(item["input_ids"][item["loss_mask"].bool()])
    assert trained.startswith(first) and "What is" not in trained


def test_over_length_budget_uses_the_chat_template(tiny_text, tmp_path):
    from transformers import AutoTokenizer

    counter = chat_length_counter(AutoTokenizer.from_pretrained(tiny_text["model"]))
    lengths = sorted(
        counter(r["messages"]) for r in pq.read_table(write_sft_parquet_all(tiny_text, tmp_path)).to_pylist()
    )
    distinct = sorted(set(lengths))
    assert len(distinct) > 1, "the tiny responses should differ in length"
    budget = distinct[len(distinct) // 2 - 1]  # some examples fit, some do not
    stats = write_sft_parquet(
        str(tiny_text["data"] / "train.parquet"), tmp_path / "cut.parquet", example_length=counter, max_length=budget
    )
    assert stats.over_length_examples == sum(length > budget for length in lengths) > 0
    assert stats.examples == sum(length <= budget for length in lengths)


def write_sft_parquet_all(tiny_text, tmp_path) -> Path:
    out = tmp_path / "all.parquet"
    write_sft_parquet(str(tiny_text["data"] / "train.parquet"), out)
    return out


def test_no_correct_response_anywhere_is_an_error(tmp_path):
    import pyarrow as pa

    source = tmp_path / "rl.parquet"
    pq.write_table(pa.Table.from_pylist([_row(["\\boxed{4}"], [False])]), source)
    with pytest.raises(NoSFTExamples, match="no SFT example"):
        write_sft_parquet(str(source), tmp_path / "sft.parquet")
    assert not (tmp_path / "sft.parquet").exists()


def test_missing_correctness_is_scored_with_the_runs_reward():
    score = reward_scorer(_compose("method=off_policy_distill", "preset=cpu"))  # the project's verifier
    row = _row(["unused"])
    assert score("<think>2+3=5</think> \\boxed{5}", row)
    assert not score("<think>2+3=6</think> \\boxed{6}", row)
    assert not score("<think>unfinished", row)


def test_stats_add_and_summary():
    total = SFTBuildStats()
    total.add(SFTBuildStats(rows=1, examples=2))
    total.add(SFTBuildStats(rows=1, wrong_responses=1, rows_without_correct_response=1))
    assert (total.rows, total.examples, total.wrong_responses) == (2, 2, 1)
    assert "2 SFT examples from 2 rows" in total.summary()


# ------------------------------------------------------------------------------------------- configs


def test_sft_config_takes_the_recipe_settings(tmp_path):
    config = _compose(
        "method=off_policy_distill", "preset=cpu", "actor_rollout_ref.model.path=/models/student",
        f"trainer.default_local_dir={tmp_path}", "trainer.total_training_steps=3", "data.train_batch_size=8",
        "+off_policy_distill.sft.data.use_dynamic_bsz=false",
    )
    overrides = sft_overrides(config, "/sft/train.parquet", None)
    sft = compose_sft_config(overrides)
    assert sft.model.path == "/models/student"
    assert (sft.engine.strategy, sft.engine.dtype) == ("fsdp2", "float32")
    assert sft.model.override_config.attn_implementation == "sdpa"
    assert sft.optim.lr == config.actor_rollout_ref.actor.optim.lr
    assert (sft.data.train_files, sft.data.train_batch_size, sft.data.use_dynamic_bsz) == (
        "/sft/train.parquet", 8, False)
    assert sft.data.max_length == config.data.max_prompt_length + config.data.max_response_length
    assert (sft.trainer.total_training_steps, sft.trainer.device, sft.trainer.default_local_dir) == (
        3, "cpu", str(tmp_path))
    assert "hf_model" in sft.checkpoint.save_contents  # the trained model is readable by transformers

    from verl.utils.config import omega_conf_to_dataclass

    for section in ("engine", "optim", "checkpoint"):
        omega_conf_to_dataclass(sft[section])  # verl accepts what we filled in


def test_off_policy_distill_refuses_the_replay_buffer(tmp_path):
    config = _compose("method=off_policy_distill", "preset=cpu", "zppo.enable=true",
                      f"trainer.default_local_dir={tmp_path}")
    with pytest.raises(ConfigError, match="no prompt replay buffer"):
        run_off_policy_distill(config)
    assert not any(tmp_path.iterdir())  # refused before anything was written


@pytest.mark.parametrize("method", ["on_policy_distill", "on_policy_distill_buffer"])
def test_on_policy_distill_needs_a_teacher(method):
    config = _compose(f"method={method}", "preset=cpu")
    with pytest.raises(ConfigError, match="distillation.teacher_models.teacher_model.model_path is not set"):
        prepare_on_policy_distill(config)
    config = _compose(f"method={method}", "preset=cpu",
                      "distillation.teacher_models.teacher_model.model_path=/no/such/dir")
    with pytest.raises(ConfigError, match="teacher_model.model_path=/no/such/dir: no such model folder"):
        prepare_on_policy_distill(config)


def test_on_policy_distill_methods_differ_in_the_buffer_only(tiny_text):
    teacher = f"distillation.teacher_models.teacher_model.model_path={tiny_text['model']}"
    plain = _compose("method=on_policy_distill", "preset=cpu", teacher)
    buffered = _compose("method=on_policy_distill_buffer", "preset=cpu", teacher)
    assert plain.distillation == buffered.distillation and plain.distillation.enabled
    assert (plain.zppo.enable, buffered.zppo.enable, buffered.zppo.replay.enable) == (False, True, True)
    assert not buffered.zppo.reformulation.build_bcq and not buffered.zppo.reformulation.build_ncq


def test_local_cpu_cluster_gets_the_teachers_gpu(tiny_text):
    config = _compose(
        "method=on_policy_distill", "preset=cpu",
        f"distillation.teacher_models.teacher_model.model_path={tiny_text['model']}",
    )
    assert config.ray_kwargs.ray_init.num_gpus == 1
    prepare_on_policy_distill(config)
    assert config.ray_kwargs.ray_init.num_gpus == 2  # student pool + teacher pool
    grpo = _compose("method=grpo", "preset=cpu")
    prepare_on_policy_distill(grpo)
    assert grpo.ray_kwargs.ray_init.num_gpus == 1
