"""Tiny offline assets (data_prep.tiny): determinism, tokenizer and chat template, VL processor, forward and
generate on CPU, verl's RLHFDataset on the parquet files, and the data set layout.

The session's build (``tiny_assets``, which the end-to-end runs use too), plus a second same-seed build and a
different-seed text model for determinism. The teacher model has its own tests (test_tiny_teacher.py): these check
the four student-side artefacts only.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from data_prep.tiny import (
    ARTEFACTS,
    EXTRA_INFO_KEYS,
    REQUIRED_COLUMNS,
    artefact_paths,
    build_all,
    build_text_dataset,
    build_text_model,
    build_vl_model,
)
from data_prep.tiny.tokenizer import QWEN_ADDED_TOKENS
from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_final_answer

REPO = Path(__file__).resolve().parents[2]
MAX_PROMPT = 512
STUDENT_ARTEFACTS = tuple(kind for kind in ARTEFACTS if kind != "teacher-model")


TEACHER_RESPONSES = 2  # stored teacher responses per question in the session's build (tests/conftest.py)


@pytest.fixture(scope="module")
def assets(tiny_assets):
    # the session's build: one build of the students and data per test session, shared with the e2e runs
    return tiny_assets


@pytest.fixture(scope="module")
def hf_datasets_cache(tmp_path_factory):
    """Keep the `datasets` cache of RLHFDataset's parquet loads out of the home folder."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", str(tmp_path_factory.mktemp("hf_datasets")))
        yield


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ determinism


def test_same_seed_byte_identical(assets, tmp_path):
    other = build_all(tmp_path / "again", seed=0, only=STUDENT_ARTEFACTS, teacher_responses=TEACHER_RESPONSES)
    assert set(other) == set(STUDENT_ARTEFACTS) == set(ARTEFACTS) - {"teacher-model"}
    for kind in STUDENT_ARTEFACTS:
        a, b = _files(assets[kind]), _files(other[kind])
        assert sorted(a) == sorted(b), kind
        for name in a:
            assert a[name] == b[name], f"{kind}/{name} differs between two builds with the same seed"
    expected = {
        "text-model": {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                       "tokenizer_config.json", "chat_template.jinja", "tiny_manifest.json"},
        "vl-model": {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                     "tokenizer_config.json", "chat_template.jinja", "processor_config.json", "tiny_manifest.json"},
        "text-data": {"train.parquet", "val.parquet", "tiny_manifest.json"},
        "vl-data": {"train.parquet", "val.parquet", "tiny_manifest.json"},
    }
    for kind, names in expected.items():
        assert set(_files(assets[kind])) == names, kind


def test_other_seed_other_weights_same_tokenizer(assets, tmp_path):
    # Seeds 0 and 1 without the warm start (the initial weights: where the seed goes; seconds instead of a minute),
    # same config; the tokenizer also equals the session's (warm-started) seed-0 build's.
    for kind, build in (("text-model", build_text_model), ("vl-model", build_vl_model)):
        seed0 = build(tmp_path / kind / "s0", seed=0, warm_start_steps=0)
        seed1 = build(tmp_path / kind / "s1", seed=1, warm_start_steps=0)
        assert (seed1 / "model.safetensors").read_bytes() != (seed0 / "model.safetensors").read_bytes(), kind
        assert (seed1 / "config.json").read_bytes() == (seed0 / "config.json").read_bytes(), kind
        assert (seed1 / "tokenizer.json").read_bytes() == (assets[kind] / "tokenizer.json").read_bytes(), kind
    data = build_text_dataset(tmp_path / "d1", seed=1, teacher_responses=TEACHER_RESPONSES)
    assert (data / "train.parquet").read_bytes() != (assets["text-data"] / "train.parquet").read_bytes()


def test_manifest_skips_and_rebuilds(tmp_path, capsys):
    out = tmp_path / "arith"
    build_text_dataset(out, n_train=8, n_val=4)
    mtime = (out / "train.parquet").stat().st_mtime_ns
    capsys.readouterr()
    build_text_dataset(out, n_train=8, n_val=4)
    assert "up to date" in capsys.readouterr().out
    assert (out / "train.parquet").stat().st_mtime_ns == mtime
    build_text_dataset(out, n_train=9, n_val=4)  # other parameters
    assert "built" in capsys.readouterr().out and pq.read_table(out / "train.parquet").num_rows == 9
    (out / "val.parquet").write_bytes(b"broken")  # a damaged file
    build_text_dataset(out, n_train=9, n_val=4)
    assert "built" in capsys.readouterr().out and pq.read_table(out / "val.parquet").num_rows == 4


def test_cli_builds_only_the_named_artefact_and_rejects_unknown_names(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    cmd = [sys.executable, "-m", "data_prep.tiny", "--out", str(tmp_path), "--only", "text-data", "--seed", "3"]
    res = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    lines = res.stdout.strip().splitlines()
    assert len(lines) == 1 and "text-data: built" in lines[0]
    assert (artefact_paths(tmp_path)["text-data"] / "train.parquet").is_file()
    assert not artefact_paths(tmp_path)["text-model"].exists()
    bad = subprocess.run(cmd[:-4] + ["--only", "nope"], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0 and "unknown artefact" in bad.stderr


# -------------------------------------------------------------------------------------------------- tokenizer


@pytest.mark.parametrize("kind, cls", [("text-model", "Qwen2Tokenizer"), ("vl-model", "Qwen3_5Tokenizer")])
def test_tokenizer_chat_template_round_trip(assets, kind, cls):
    from tokenizers import Tokenizer
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets[kind])
    assert type(tok).__name__ == cls
    assert len(tok) == 2048
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    ids = {t: tok.convert_tokens_to_ids(t) for t, _ in QWEN_ADDED_TOKENS}
    assert len(set(ids.values())) == len(QWEN_ADDED_TOKENS) and min(ids.values()) >= 2048 - len(QWEN_ADDED_TOKENS)
    for t, i in ids.items():  # each special token is one id, also inside running text
        assert tok.encode(f"a{t}b", add_special_tokens=False).count(i) == 1, t

    question = "What is 17 + 25?\n\n" + ANSWER_CLOSER
    msgs = [{"role": "user", "content": question}]
    text = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert text == f"<|im_start|>user\n{question}<|im_end|>\n<|im_start|>assistant\n"
    enc = tok(text, add_special_tokens=False)["input_ids"]
    assert tok.decode(enc) == text
    assert enc[0] == ids["<|im_start|>"] and enc.count(ids["<|im_end|>"]) == 1
    assert enc.count(ids["<think>"]) == 1 and enc.count(ids["</think>"]) == 1  # from the closer
    # what AutoTokenizer rebuilds tokenizes like the saved tokenizer.json
    raw = Tokenizer.from_file(str(assets[kind] / "tokenizer.json"))
    assert raw.encode(text, add_special_tokens=False).ids == enc
    # tokenize=True gives the same ids
    via_template = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True)
    via_template = via_template["input_ids"] if hasattr(via_template, "keys") else via_template
    assert list(via_template) == enc

    # a response: <think> survives skip_special_tokens (verl decodes that way), <|im_end|> does not
    response = "<think>17+25=42</think> \\boxed{42}"
    r_ids = tok(response + "<|im_end|>", add_special_tokens=False)["input_ids"]
    decoded = tok.decode(r_ids, skip_special_tokens=True)
    assert decoded == response and extract_final_answer(decoded) == "42"
    # thinking switch, multi-turn, non-ASCII
    off = tok.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False, enable_thinking=False)
    assert off.endswith("<|im_start|>assistant\n<think>\n\n</think>\n\n")
    conv = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "naïve café 😀?"},
        {"role": "assistant", "content": "\\boxed{1}", "reasoning_content": "ok"},
    ]
    t2 = tok.apply_chat_template(conv, tokenize=False)
    assert t2 == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nnaïve café 😀?<|im_end|>\n"
        "<|im_start|>assistant\n<think>\nok\n</think>\n\n\\boxed{1}<|im_end|>\n"
    )
    assert tok.decode(tok(t2, add_special_tokens=False)["input_ids"]) == t2


# ----------------------------------------------------------------------------------------------------- models


def _png_image(size=96):
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (size, size), (255, 255, 255))
    ImageDraw.Draw(img).ellipse([20, 20, 50, 50], fill=(200, 30, 30))
    return img


def test_vl_processor_one_image(assets):
    from transformers import AutoProcessor

    proc = AutoProcessor.from_pretrained(assets["vl-model"])
    assert type(proc).__name__ == "Qwen3VLProcessor"
    assert type(proc.image_processor).__name__ == "Qwen2VLImageProcessor"
    img = _png_image(96)
    msgs = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    assert "<|vision_start|><|image_pad|><|vision_end|>How many?" in text
    out = proc(text=[text], images=[img], return_tensors="pt")
    merge = proc.image_processor.merge_size
    patch, tps = proc.image_processor.patch_size, proc.image_processor.temporal_patch_size
    assert (merge, patch, tps) == (2, 16, 2)
    assert out["image_grid_thw"].tolist() == [[1, 6, 6]]  # 96 px / 16 = 6 patches a side
    n_patches = int(out["image_grid_thw"].prod())
    assert tuple(out["pixel_values"].shape) == (n_patches, 3 * tps * patch * patch)
    n_pad = int((out["input_ids"] == proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")).sum())
    assert n_pad == n_patches // merge**2 == 9
    # the pixel budget: 64x64 .. 128x128, so small and large images give 4 .. 16 visual tokens
    for size, tokens in ((40, 4), (200, 16)):
        grid = proc(text=["<|vision_start|><|image_pad|><|vision_end|>"], images=[_png_image(size)])["image_grid_thw"]
        assert int(torch.as_tensor(grid).prod()) // merge**2 == tokens


def test_text_model_forward_generate(assets):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(assets["text-model"])
    model = AutoModelForCausalLM.from_pretrained(assets["text-model"]).eval()
    assert type(model).__name__ == "Qwen3ForCausalLM"
    cfg = model.config
    assert (cfg.model_type, cfg.hidden_size, cfg.num_hidden_layers, cfg.num_attention_heads) == ("qwen3", 64, 2, 4)
    assert (cfg.num_key_value_heads, cfg.head_dim, cfg.vocab_size) == (2, 32, 2048)
    assert sum(p.numel() for p in model.parameters()) < 300_000
    batch = tok.apply_chat_template(
        [{"role": "user", "content": "What is 1 + 2?"}], add_generation_prompt=True, return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], 2048) and torch.isfinite(logits).all()
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=6, do_sample=True, pad_token_id=tok.pad_token_id)
    assert out.shape[1] <= batch["input_ids"].shape[1] + 6
    assert isinstance(tok.decode(out[0]), str)


def test_vl_model_forward_generate(assets):
    from transformers import AutoModelForImageTextToText, AutoProcessor

    proc = AutoProcessor.from_pretrained(assets["vl-model"])
    model = AutoModelForImageTextToText.from_pretrained(assets["vl-model"]).eval()
    assert type(model).__name__ == "Qwen3_5ForConditionalGeneration"
    assert model.config.text_config.layer_types == ["linear_attention", "full_attention"]
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()  # tied
    img = _png_image(96)
    msgs = [{"role": "user", "content": [{"type": "image", "image": img}, {"type": "text", "text": "How many?"}]}]
    text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    batch = proc(text=[text], images=[img], return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (1, batch["input_ids"].shape[1], 2048) and torch.isfinite(logits).all()
    torch.manual_seed(0)
    out = model.generate(**batch, max_new_tokens=6, do_sample=True, pad_token_id=proc.tokenizer.pad_token_id)
    assert out.shape[1] <= batch["input_ids"].shape[1] + 6


# ------------------------------------------------------------------------------------------------------ verl


def _verl_data_config(tmp_path):
    """A minimal verl data config. ``filter_overlong_prompts_workers=None`` keeps the length filter in-process:
    datasets 5.x forks a pool even for one worker, and a fork after torch has run its CPU thread pool (earlier
    tests) can deadlock in the child inside the image processor."""
    from omegaconf import OmegaConf

    return OmegaConf.create(
        {
            "prompt_key": "prompt",
            "image_key": "images",
            "max_prompt_length": MAX_PROMPT,
            "filter_overlong_prompts": True,
            "filter_overlong_prompts_workers": None,
            "cache_dir": str(tmp_path / "verl_cache"),
        }
    )


def test_verl_rlhf_dataset_text(assets, tmp_path, hf_datasets_cache):
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset, collate_fn

    tok = hf_tokenizer(str(assets["text-model"]))
    assert hf_processor(str(assets["text-model"])) is None  # text-only: verl uses the tokenizer alone
    path = assets["text-data"] / "train.parquet"
    ds = RLHFDataset(str(path), tok, _verl_data_config(tmp_path))
    assert len(ds) == pq.read_metadata(path).num_rows  # nothing filtered as over-long
    items = [ds[i] for i in range(4)]
    for item in items:
        ids = tok.apply_chat_template(item["raw_prompt"], add_generation_prompt=True, tokenize=True)
        ids = ids["input_ids"] if hasattr(ids, "keys") else ids
        assert 0 < len(ids) <= MAX_PROMPT
        assert item["reward_model"]["ground_truth"] == item["extra_info"]["answer"]
    batch = collate_fn(items)
    assert list(batch["index"]) == [0, 1, 2, 3]


def test_verl_rlhf_dataset_vl(assets, tmp_path, hf_datasets_cache):
    from verl.utils import hf_processor, hf_tokenizer
    from verl.utils.dataset.rl_dataset import RLHFDataset
    from verl.utils.tokenizer import build_multimodal_processor_inputs

    proc = hf_processor(str(assets["vl-model"]))
    tok = hf_tokenizer(str(assets["vl-model"]))
    assert type(proc).__name__ == "Qwen3VLProcessor" and hasattr(proc, "get_rope_index")
    cfg = _verl_data_config(tmp_path)
    path = assets["vl-data"] / "train.parquet"
    ds = RLHFDataset(str(path), tok, cfg, processor=proc)
    assert len(ds) == pq.read_metadata(path).num_rows
    assert ds.image_patch_size == 16
    image_id = proc.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    seen_two = False
    for i in range(16):  # the agent loop's path: vision info, chat template, processor, M-RoPE position ids
        messages = ds[i]["raw_prompt"]
        images, videos, _ = RLHFDataset._process_multi_modal_info(messages, ds.image_patch_size, cfg)
        text = proc.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        inputs = build_multimodal_processor_inputs(proc, text=[text], images=images, videos=videos)
        ids = inputs["input_ids"]
        assert ids.shape[1] <= MAX_PROMPT
        grid = inputs["image_grid_thw"]
        assert grid.shape[0] == len(images) and int((ids == image_id).sum()) == int(grid.prod(-1).sum()) // 4
        seen_two |= len(images) == 2
        mm = torch.zeros_like(ids)
        mm[ids == image_id] = 1
        pos, _ = proc.get_rope_index(
            input_ids=ids, attention_mask=inputs["attention_mask"], image_grid_thw=grid, video_grid_thw=None,
            mm_token_type_ids=mm,
        )
        assert pos.shape == (3, 1, ids.shape[1])
    assert seen_two  # the set has two-image rows


def test_verl_patched_qwen3_5_matches_hf(assets):
    """verl's Qwen3.5 monkey patch (class-level, so in a subprocess) with agent-loop style 4-row position ids
    gives the logits of the unpatched Hugging Face forward."""
    code = textwrap.dedent(
        f"""
        import torch
        from PIL import Image, ImageDraw
        from transformers import AutoModelForImageTextToText
        from verl.utils import hf_processor
        from verl.models.transformers.monkey_patch import apply_monkey_patch
        path = {str(assets["vl-model"])!r}
        proc = hf_processor(path)
        model = AutoModelForImageTextToText.from_pretrained(path, attn_implementation="sdpa").eval()
        img = Image.new("RGB", (96, 64), (255, 255, 255))
        ImageDraw.Draw(img).ellipse([10, 10, 40, 40], fill=(0, 0, 200))
        content = [{{"type": "image", "image": img}}, {{"type": "text", "text": "Count."}}]
        msgs = [{{"role": "user", "content": content}}]
        text = proc.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
        inp = proc(text=[text], images=[img], return_tensors="pt")
        with torch.no_grad():
            ref = model(**inp).logits
        ids, am = inp["input_ids"], inp["attention_mask"]
        vis, _ = proc.get_rope_index(input_ids=ids, attention_mask=am, image_grid_thw=inp["image_grid_thw"],
                                     video_grid_thw=None, mm_token_type_ids=inp["mm_token_type_ids"])
        pos = torch.cat([torch.arange(ids.shape[1]).view(1, 1, -1), vis], dim=0)
        apply_monkey_patch(model, use_remove_padding=False)
        with torch.no_grad():
            out = model(input_ids=ids, attention_mask=am, position_ids=pos, pixel_values=inp["pixel_values"],
                        image_grid_thw=inp["image_grid_thw"], use_cache=False).logits
        diff = (out - ref).abs().max().item()
        assert diff < 1e-5, diff
        print("OK", diff)
        """
    )
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    res = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 and "OK" in res.stdout, res.stdout[-2000:] + res.stderr[-4000:]


# ------------------------------------------------------------------------------------------------------- data


@pytest.mark.parametrize("kind", ["text-data", "vl-data"])
def test_dataset_rows_follow_the_trainer_schema_with_unique_question_ids(assets, kind):
    has_images = kind == "vl-data"
    qids = set()
    for split, n_expected in (("train", 320 if kind == "text-data" else 200), ("val", 32)):
        table = pq.read_table(assets[kind] / f"{split}.parquet")
        assert table.num_rows == n_expected
        assert set(REQUIRED_COLUMNS) <= set(table.column_names)
        assert ("images" in table.column_names) == has_images
        schema = table.schema
        assert schema.field("extra_info").type.field("teacher_responses").type == pa.list_(pa.string())
        assert schema.field("extra_info").type.field("teacher_correct").type == pa.list_(pa.bool_())
        if has_images:
            assert schema.field("images").type == pa.list_(pa.struct([("bytes", pa.binary())]))
        for i, row in enumerate(table.to_pylist()):
            info = row["extra_info"]
            assert set(info) == set(EXTRA_INFO_KEYS)
            assert info["index"] == i and info["split"] == split
            assert info["question_id"] not in qids
            qids.add(info["question_id"])
            assert row["prompt"] == [{"role": "user", "content": info["question"] + "\n\n" + ANSWER_CLOSER}]
            assert ANSWER_CLOSER not in info["question"]
            assert row["reward_model"] == {"style": "rule", "ground_truth": info["answer"]}
            assert info["reward_type"] in ("numeric", "string_match")
            assert len(info["teacher_responses"]) == len(info["teacher_correct"]) == TEACHER_RESPONSES
            if info["reward_type"] == "numeric":
                int(info["answer"])
            if has_images:
                from PIL import Image

                assert info["question"].count("<image>") == len(row["images"]) >= 1
                im = Image.open(io.BytesIO(row["images"][0]["bytes"]))
                assert im.format == "PNG" and im.size == (96, 96)
            else:
                assert "<image>" not in info["question"] and info["question"].startswith("What is ")


def test_teacher_responses_option(tmp_path):
    from data_prep.tiny import build_vl_dataset

    t = build_text_dataset(tmp_path / "t", n_train=40, n_val=4, teacher_responses=3, teacher_wrong_prob=0.3)
    v = build_vl_dataset(tmp_path / "v", n_train=24, n_val=4, teacher_responses=2, teacher_wrong_prob=0.3)
    for folder in (t, v):
        rows = pq.read_table(folder / "train.parquet").to_pylist()
        flags = []
        for row in rows:
            info = row["extra_info"]
            assert len(info["teacher_responses"]) == len(info["teacher_correct"]) > 0
            for resp, ok in zip(info["teacher_responses"], info["teacher_correct"]):
                assert resp.startswith("<think>") and "</think> \\boxed{" in resp
                assert (extract_final_answer(resp) == info["answer"]) == ok
                flags.append(ok)
        assert any(flags) and not all(flags)
