"""The offline teacher-response step (``python -m data_prep.teacher_responses``) on the tiny models.

Small inputs are cut from the tiny data sets: two text shards of three rows, and one image shard with a
two-image row, a row whose image does not decode and a row without ground truth. Sampling is short (k=2,
32 new tokens) so that every run takes a few seconds on a CPU.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from data_prep.teacher_responses import InputError, Options, ResumeError, StopEarly, main, run
from recipe.zppo.algo.answer_format import extract_answer
from recipe.zppo.reward import compute_score

K = 2
COMMON = {"k": K, "max_tokens": 32, "progress": False}
TEXT_SHARDS = ("train-00000-of-00002.parquet", "train-00001-of-00002.parquet")


def _write(rows: list[dict], schema: pa.Schema, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), str(path))
    return path


def _step(data, teacher, out, **overrides) -> dict:
    return run(Options(data=str(data), teacher=str(teacher), out=str(out), **{**COMMON, **overrides}))


def _rows(path: Path) -> list[dict]:
    return pq.read_table(str(path)).to_pylist()


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def inputs(tiny_assets, tmp_path_factory):
    base = tmp_path_factory.mktemp("teacher_inputs")
    text = pq.read_table(str(tiny_assets["text-data"] / "train.parquet")).slice(0, 6)
    text_rows = text.to_pylist()
    for i, name in enumerate(TEXT_SHARDS):
        _write(text_rows[3 * i: 3 * i + 3], text.schema, base / "text" / name)
    vl = pq.read_table(str(tiny_assets["vl-data"] / "train.parquet"))
    vl_rows = vl.to_pylist()
    two_images = next(r for r in vl_rows if len(r["images"]) == 2)
    single = [r for r in vl_rows if len(r["images"]) == 1][:4]
    broken, no_truth = single[2], single[3]
    broken["images"] = [{"bytes": b"\x89PNG\r\n\x1a\n not really a png"}]
    no_truth["reward_model"] = {"style": "rule", "ground_truth": None}
    _write([single[0], two_images, broken, single[1], no_truth], vl.schema, base / "vl" / "train.parquet")
    return {
        "text": base / "text", "vl": base / "vl", "text_rows": text_rows, "text_schema": text.schema,
        "text_model": tiny_assets["text-model"], "vl_model": tiny_assets["vl-model"],
        "broken_id": broken["extra_info"]["question_id"], "no_truth_id": no_truth["extra_info"]["question_id"],
    }


@pytest.fixture(scope="module")
def text_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher_text") / "out"
    summary = _step(inputs["text"], inputs["text_model"], out, batch_size=1)
    return out, summary


@pytest.fixture(scope="module")
def vl_run(inputs, tmp_path_factory):
    out = tmp_path_factory.mktemp("teacher_vl") / "out"
    summary = _step(inputs["vl"], inputs["vl_model"], out, batch_size=2)
    return out, summary


def _assert_scored_like_compute_score(row: dict) -> None:
    extra = row["extra_info"]
    assert len(extra["teacher_responses"]) == len(extra["teacher_correct"]) == K
    scoring_extra = {k: v for k, v in extra.items() if k not in ("teacher_responses", "teacher_correct")}
    expected = [bool(compute_score(data_source=row["data_source"], solution_str=text,
                                   ground_truth=row["reward_model"]["ground_truth"], extra_info=scoring_extra)["acc"])
                for text in extra["teacher_responses"]]
    assert extra["teacher_correct"] == expected


def _without_teacher(row: dict) -> dict:
    extra = {k: v for k, v in row["extra_info"].items() if k not in ("teacher_responses", "teacher_correct")}
    return {**row, "extra_info": extra}


def test_text_shards_get_k_scored_responses_and_keep_every_other_field(inputs, text_run):
    out, summary = text_run
    for name in TEXT_SHARDS:
        source, result = _rows(inputs["text"] / name), _rows(out / name)
        assert [_without_teacher(r) for r in result] == [_without_teacher(r) for r in source]
        for before, after in zip(source, result):
            _assert_scored_like_compute_score(after)
            # the tiny data's synthetic teacher responses are replaced by the model's
            assert after["extra_info"]["teacher_responses"] != before["extra_info"]["teacher_responses"]
    rows = [r for name in TEXT_SHARDS for r in _rows(out / name)]
    solved = sum(any(r["extra_info"]["teacher_correct"]) for r in rows)
    assert summary["rows"] == summary["rows_answered"] == 6
    assert summary["responses"] == 6 * K
    assert summary["correct_responses"] == sum(sum(r["extra_info"]["teacher_correct"]) for r in rows)
    assert summary["questions_with_correct"] == solved
    assert summary["by_data_source"]["tiny_arith"]["rows"] == 6
    assert summary["generation"]["completion_tokens"] > 0
    assert json.loads((out / "summary.json").read_text()) == summary


def test_a_right_answer_is_flagged_correct(inputs, text_run, tmp_path):
    """Same question id and prompt -> same responses; with one response's answer as the gold answer, that
    response (and only responses with that answer) is flagged correct."""
    out, _ = text_run
    row = _rows(out / TEXT_SHARDS[1])[0]
    answers = [extract_answer(t).answer for t in row["extra_info"]["teacher_responses"]]
    gold = next((a for a in answers if a), None)
    assert gold is not None, f"the tiny teacher gave no final answer: {row['extra_info']['teacher_responses']}"
    source = next(r for r in inputs["text_rows"] if r["extra_info"]["question_id"] == row["extra_info"]["question_id"])
    source = {**source, "reward_model": {"style": "rule", "ground_truth": gold},
              "extra_info": {**source["extra_info"], "answer": gold}}
    data = _write([source], inputs["text_schema"], tmp_path / "in" / "one.parquet")
    _step(data, inputs["text_model"], tmp_path / "out")
    (result,) = _rows(tmp_path / "out" / "one.parquet")
    assert result["extra_info"]["teacher_responses"] == row["extra_info"]["teacher_responses"]
    assert result["extra_info"]["teacher_correct"] == [a == gold for a in answers]
    assert any(result["extra_info"]["teacher_correct"])


def test_two_runs_give_identical_bytes_whatever_the_batching_and_sharding(inputs, text_run, tmp_path):
    out, _ = text_run
    again = tmp_path / "again"
    _step(inputs["text"], inputs["text_model"], again, batch_size=3)
    for name in TEXT_SHARDS:
        assert _sha(again / name) == _sha(out / name)
    # re-sharded from a glob: other file boundaries, same responses per question
    resharded = tmp_path / "resharded"
    summary = _step(str(inputs["text"] / "train-*.parquet"), inputs["text_model"], resharded, shard_rows=2)
    assert summary["shards"] == [f"train-0000{i}-of-00002-0000{j}-of-00002.parquet" for i in (0, 1) for j in (0, 1)]
    pieces = [_rows(resharded / name) for name in summary["shards"]]
    assert [len(p) for p in pieces] == [2, 1, 2, 1]
    assert [r for p in pieces for r in p] == [r for name in TEXT_SHARDS for r in _rows(out / name)]


def test_interrupted_after_a_shard_resumes_without_touching_it(inputs, text_run, tmp_path):
    out, _ = text_run
    target = tmp_path / "out"
    argv = ["--data", str(inputs["text"]), "--teacher", str(inputs["text_model"]), "--out", str(target),
            "--k", str(K), "--max-tokens", "32", "--no-progress"]
    assert main(argv + ["--stop-after-shards", "1"]) == 3
    first, second = target / TEXT_SHARDS[0], target / TEXT_SHARDS[1]
    assert first.is_file() and not second.exists()
    before = (first.stat().st_ino, first.stat().st_mtime_ns, _sha(first))
    assert main(argv) == 0
    assert (first.stat().st_ino, first.stat().st_mtime_ns, _sha(first)) == before
    for name in TEXT_SHARDS:
        assert _sha(target / name) == _sha(out / name)
    summary = json.loads((target / "summary.json").read_text())
    this_run = summary["this_run"]
    assert (this_run["shards_skipped"], this_run["shards_finished"], this_run["rows_generated"]) == (1, 1, 3)
    assert summary["rows"] == 6
    # a third run has nothing left to do and rewrites nothing
    assert main(argv) == 0
    assert (first.stat().st_ino, first.stat().st_mtime_ns) == before[:2]
    this_run = json.loads((target / "summary.json").read_text())["this_run"]
    assert (this_run["shards_skipped"], this_run["rows_generated"]) == (2, 0)


def test_interrupted_mid_shard_continues_after_the_last_flushed_rows(inputs, text_run, tmp_path):
    out, _ = text_run
    target = tmp_path / "out"
    with pytest.raises(StopEarly):
        _step(inputs["text"], inputs["text_model"], target, batch_size=1, stop_after_rows=2)
    assert not (target / TEXT_SHARDS[0]).exists()
    summary = _step(inputs["text"], inputs["text_model"], target, batch_size=1)
    assert summary["this_run"]["rows_generated"] == 4
    for name in TEXT_SHARDS:
        assert _sha(target / name) == _sha(out / name)
    assert not list((target / ".teacher_responses" / "parts").rglob("*.parquet"))


def test_other_options_are_refused_unless_overwrite(inputs, tmp_path):
    data = _write(inputs["text_rows"][:1], inputs["text_schema"], tmp_path / "in" / "one.parquet")
    out = tmp_path / "out"
    _step(data, inputs["text_model"], out)
    with pytest.raises(ResumeError, match="sampling"):
        _step(data, inputs["text_model"], out, k=3)
    summary = _step(data, inputs["text_model"], out, k=3, overwrite=True)
    assert summary["responses"] == 3
    assert len(_rows(out / "one.parquet")[0]["extra_info"]["teacher_responses"]) == 3
    # changed input under the same OUT
    _write(inputs["text_rows"][1:2], inputs["text_schema"], data)
    with pytest.raises(ResumeError, match="inputs"):
        _step(data, inputs["text_model"], out, k=3)


def test_images_reach_the_vl_teacher_and_bad_rows_are_kept_empty(inputs, vl_run):
    out, summary = vl_run
    source, result = _rows(inputs["vl"] / "train.parquet"), _rows(out / "train.parquet")
    assert [r["images"] for r in result] == [r["images"] for r in source]
    assert [_without_teacher(r) for r in result] == [_without_teacher(r) for r in source]
    bad = {inputs["broken_id"], inputs["no_truth_id"]}
    for row in result:
        if row["extra_info"]["question_id"] in bad:
            assert row["extra_info"]["teacher_responses"] == [] and row["extra_info"]["teacher_correct"] == []
        else:
            _assert_scored_like_compute_score(row)
    assert summary["rows"] == 5 and summary["rows_answered"] == 3
    assert summary["rows_without_responses"] == {"bad_image": 1, "no_ground_truth": 1}
    assert summary["rows_without_responses_sample_ids"] == {"bad_image": [inputs["broken_id"]],
                                                            "no_ground_truth": [inputs["no_truth_id"]]}


def test_zppo_dataset_reads_the_teacher_fields(inputs, text_run, vl_run, tmp_path):
    from omegaconf import OmegaConf
    from transformers import AutoProcessor, AutoTokenizer

    from recipe.zppo.trainer.dataset import ZPPODataset

    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    cases = [(text_run[0], TEXT_SHARDS, inputs["text_model"], None),
             (vl_run[0], ("train.parquet",), inputs["vl_model"], AutoProcessor)]
    for out, names, model, processor_cls in cases:
        files = [str(out / name) for name in names]
        processor = processor_cls.from_pretrained(str(model)) if processor_cls else None
        dataset = ZPPODataset(files, AutoTokenizer.from_pretrained(str(model)), config, processor)
        rows = [r for f in files for r in _rows(Path(f))]
        assert dataset.question_ids == [r["extra_info"]["question_id"] for r in rows]
        for row in rows:
            extra = row["extra_info"]
            assert dataset.teacher_responses(extra["question_id"]) == list(
                zip(extra["teacher_responses"], extra["teacher_correct"]))


def test_unflagged_teacher_responses_are_scored_once_and_then_remembered(inputs, text_run, tmp_path):
    from omegaconf import OmegaConf
    from transformers import AutoTokenizer

    from recipe.zppo.trainer.dataset import ZPPODataset

    out, _ = text_run
    rows = _rows(out / TEXT_SHARDS[0])
    for row in rows:  # the same responses without their flags
        row["extra_info"] = {k: v for k, v in row["extra_info"].items() if k != "teacher_correct"}
    path = tmp_path / "unflagged.parquet"
    pq.write_table(pa.Table.from_pylist(rows), str(path))
    config = OmegaConf.create({"filter_overlong_prompts": False, "cache_dir": str(tmp_path / "cache")})
    dataset = ZPPODataset([str(path)], AutoTokenizer.from_pretrained(str(inputs["text_model"])), config, None)
    row = rows[0]
    question, texts = row["extra_info"]["question_id"], row["extra_info"]["teacher_responses"]
    with pytest.raises(ValueError, match="no scorer"):
        dataset.teacher_responses(question)
    calls = []

    def score(text, _row):  # the first response is correct, the others wrong
        calls.append(text)
        return len(calls) == 1

    expected = [(text, i == 0) for i, text in enumerate(texts)]
    assert dataset.teacher_responses(question, score=score) == expected
    assert dataset.teacher_responses(question, score=score) == expected and len(calls) == len(texts)  # scored once


def test_missing_columns_are_named_with_the_file(inputs, tmp_path):
    rows = [dict(r) for r in inputs["text_rows"][:2]]
    no_reward = pa.Table.from_pylist(rows, schema=inputs["text_schema"]).drop_columns(["reward_model"])
    path = tmp_path / "no_reward.parquet"
    pq.write_table(no_reward, str(path))
    with pytest.raises(InputError, match=r"no_reward\.parquet.*reward_model\.ground_truth"):
        _step(path, inputs["text_model"], tmp_path / "out")
    table = pa.Table.from_pylist(rows, schema=inputs["text_schema"])
    extra = table.column("extra_info").combine_chunks()
    keep = [f.name for f in extra.type if f.name != "question_id"]
    no_id = table.set_column(table.schema.get_field_index("extra_info"), "extra_info",
                             pa.StructArray.from_arrays([extra.field(n) for n in keep], names=keep))
    path = tmp_path / "no_id.parquet"
    pq.write_table(no_id, str(path))
    with pytest.raises(InputError, match=r"no_id\.parquet.*extra_info\.question_id"):
        _step(path, inputs["text_model"], tmp_path / "out")


def test_cli_reports_bad_input_and_a_missing_vllm(inputs, tmp_path):
    """The module runs as a command; errors are one line and exit code 2 (vLLM is absent on CPU machines)."""
    base = [sys.executable, "-m", "data_prep.teacher_responses", "--teacher", str(inputs["text_model"]),
            "--no-progress"]
    missing = subprocess.run(base + ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o1")],
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    try:
        import vllm  # noqa: F401
    except ImportError:
        data = _write(inputs["text_rows"][:1], inputs["text_schema"], tmp_path / "in" / "one.parquet")
        with pytest.raises(Exception, match="needs vLLM"):
            _step(data, inputs["text_model"], tmp_path / "o2", engine="vllm")


def test_vllm_engine_sends_seeded_requests_and_survives_a_failing_batch(inputs, monkeypatch):
    """The vLLM glue against a stand-in ``vllm`` module (no GPU here): one SamplingParams per question with n=k and
    the question's seed, token-id prompts for text, and a failing batch retried question by question."""
    import types

    from data_prep.teacher_responses.engines import Sampling, VLLMEngine
    from data_prep.teacher_responses.prompts import Renderer, Request

    calls = []

    class SamplingParams:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs):
            self.kwargs = kwargs

        def generate(self, prompts, params, use_tqdm=False):
            calls.append((prompts, params))
            if len(prompts) > 1:
                raise ValueError("one prompt is too long")
            if len(prompts[0]["prompt_token_ids"]) > 40:
                raise ValueError("this prompt is too long")
            n = params[0].kwargs["n"]
            outputs = [types.SimpleNamespace(text=f"<think>x</think> \\boxed{{{i}}}", token_ids=[1, 2, 3],
                                             finish_reason="length" if i == 0 else "stop") for i in range(n)]
            return [types.SimpleNamespace(prompt_token_ids=prompts[0]["prompt_token_ids"], outputs=outputs)]

    monkeypatch.setitem(sys.modules, "vllm", types.SimpleNamespace(LLM=LLM, SamplingParams=SamplingParams))
    renderer = Renderer(str(inputs["text_model"]))
    engine = VLLMEngine(str(inputs["text_model"]), renderer, seed=5)
    short = renderer.render([{"role": "user", "content": "What is 1 + 1?"}])
    long = renderer.render([{"role": "user", "content": "What is 1 + 1? " * 20}])
    sampling = Sampling(k=3, temperature=0.6, top_p=0.95, top_k=20, max_tokens=64)
    results = engine.generate([Request("q1", 11, short), Request("q2", 22, long)], sampling)
    assert engine.llm.kwargs["seed"] == 5 and "limit_mm_per_prompt" not in engine.llm.kwargs
    batch_prompts, batch_params = calls[0]
    assert [p.kwargs["seed"] for p in batch_params] == [11, 22]
    assert all(p.kwargs["n"] == 3 and p.kwargs["max_tokens"] == 64 and p.kwargs["top_k"] == 20 for p in batch_params)
    assert batch_prompts[0]["prompt_token_ids"] == renderer.tokenizer(short, add_special_tokens=False)["input_ids"]
    assert results[0].status == "ok" and len(results[0].texts) == 3 and results[0].truncated == 1
    assert results[0].completion_tokens == 9
    assert results[1].status == "generation_error:ValueError" and results[1].texts == []
