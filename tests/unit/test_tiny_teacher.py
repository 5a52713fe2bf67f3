"""The tiny teacher (data_prep.tiny, artefact ``teacher-model``): its fixed-offset heads, its compression targets, a
deterministic build with the students' tokenizer, and, on the real build, greedy answers to train questions and
compressions that ``parse_compression`` accepts.

The real build takes about a minute; the session builds it once (conftest's ``tiny_teacher``). The quality
thresholds are loose (a random model scores 0 on each).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
import torch

from data_prep.tiny import (
    ARTEFACT_DIRS,
    ARTEFACTS,
    build_teacher_model,
    build_text_rows,
    teacher_model_params,
)
from data_prep.tiny._common import is_built
from data_prep.tiny.teacher import (
    COMPRESSION_TEMPLATE,
    COPY_WINDOW,
    LOCAL_OFFSETS,
    TEACHER_MODEL_CONFIG,
    CopyLayout,
    build_fixed_offset_heads,
    compression_target,
    head_offsets,
    student_like_response,
    teacher_answer,
)
from data_prep.tiny.tokenizer import save_hf_tokenizer
from recipe.zppo.algo.answer_format import extract_final_answer
from recipe.zppo.algo.compression import OK, compression_messages, parse_compression
from recipe.zppo.algo.reformulation import clean_candidate_text

TEACHER_RESPONSES = 2  # what `make tiny` builds the data (and so the teacher) with


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return save_hf_tokenizer(tmp_path_factory.mktemp("tok"), tokenizer_class="Qwen2Tokenizer")


@pytest.fixture(scope="module")
def teacher(tiny_teacher) -> Path:
    return tiny_teacher  # the session's build (conftest), which the served end-to-end run uses too


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _greedy(model, tokenizer, user_turns: list[str], max_new_tokens: int, template: dict | None = None) -> list[str]:
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": u}], add_generation_prompt=True,
                                           tokenize=False, **(template or {})) for u in user_turns]
    batch = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
    end = [tokenizer.convert_tokens_to_ids("<|im_end|>"), tokenizer.pad_token_id]
    with torch.no_grad():
        ids = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=end)
    return tokenizer.batch_decode(ids[:, batch["input_ids"].shape[1] :], skip_special_tokens=True)


# ---------------------------------------------------------------------------------------------- construction


def test_artefact_is_registered():
    assert "teacher-model" in ARTEFACTS and ARTEFACT_DIRS["teacher-model"] == "models/tiny-teacher"


def test_fixed_offset_heads_attend_to_their_distance(tokenizer):
    from transformers import Qwen3Config, Qwen3ForCausalLM

    cfg = Qwen3Config(**TEACHER_MODEL_CONFIG, attn_implementation="eager")
    torch.manual_seed(0)
    model = Qwen3ForCausalLM(cfg).eval()
    offsets = head_offsets(CopyLayout.of(tokenizer))
    assert offsets[3:] == list(LOCAL_OFFSETS) and offsets[1] == offsets[0] + 1 == offsets[2] - 1
    build_fixed_offset_heads(model, offsets, seed=0)
    ids = torch.randint(0, 2000, (1, offsets[2] + 60))
    with torch.no_grad():
        attention = model(input_ids=ids, output_attentions=True).attentions[0][0]  # heads x T x T
    for head, d in enumerate(offsets):
        weights = torch.stack([attention[head, m, m - d] for m in range(d, ids.shape[1])])
        assert weights.min() > 0.99, (head, d, weights.min())
    frozen = model.model.layers[0].self_attn
    assert not any(p.requires_grad for m in (frozen.q_proj, frozen.k_proj, frozen.q_norm) for p in m.parameters())
    assert frozen.v_proj.weight.requires_grad and model.model.layers[1].self_attn.q_proj.weight.requires_grad


def test_compression_target_copies_a_short_response_and_the_box_of_a_long_one(tokenizer):
    layout = CopyLayout.of(tokenizer)
    # The run sends compression with thinking off: the template pre-fills an empty think block.
    tail = "\n</response><|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"
    assert layout.tail == len(tokenizer.encode(tail, add_special_tokens=False))
    assert layout.offset == layout.tail + COPY_WINDOW + len(layout.header) - 1

    short = "<think>12+7=19</think> \\boxed{19}"
    reply = compression_target(tokenizer, layout, short)
    assert len(reply) == len(layout.header) + COPY_WINDOW + len(layout.footer)
    text = tokenizer.decode(reply)
    assert text.startswith("<summary>\n") and text.endswith(clean_candidate_text(short) + "</summary>")
    assert parse_compression(text, "19") == parse_compression(f"<summary>{clean_candidate_text(short)}</summary>", "19")
    assert parse_compression(text, "19").reason == OK

    long = "<think>" + " + ".join(str(i) for i in range(100, 130)) + "</think> \\boxed{4711}"
    result = parse_compression(tokenizer.decode(compression_target(tokenizer, layout, long)), "4711")
    assert result.reason == OK and result.text == "\\boxed{4711}"

    assert compression_target(tokenizer, layout, "The answer is 5") is None  # no box to copy
    assert compression_target(tokenizer, layout, "<think>unfinished") is None  # no final answer


def test_student_like_responses_are_varied_and_mostly_compressible(tokenizer):
    rng = random.Random(0)
    responses = [student_like_response(rng) for _ in range(200)]
    assert len(set(responses)) > 190
    layout = CopyLayout.of(tokenizer)
    assert sum(compression_target(tokenizer, layout, r) is not None for r in responses) > 150


def test_teacher_answer_format():
    assert teacher_answer("What is 12 + 7?", "19") == "<think>12+7=19</think> \\boxed{19}"
    with pytest.raises(ValueError):
        teacher_answer("How many circles?", "3")


def test_build_is_deterministic_with_the_students_tokenizer(tmp_path, tokenizer):
    short = {"arithmetic_steps": 3, "compression_steps": 2}
    first = build_teacher_model(tmp_path / "a", training=short)
    second = build_teacher_model(tmp_path / "b", training=short)
    a, b = _files(first), _files(second)
    assert sorted(a) == sorted(b) and all(a[name] == b[name] for name in a)
    assert {"config.json", "generation_config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
            "chat_template.jinja", "tiny_manifest.json"} == set(a)
    # the same vocabulary and chat template as the tiny students (save_hf_tokenizer with Qwen2Tokenizer)
    assert a["tokenizer.json"] == Path(tokenizer.name_or_path, "tokenizer.json").read_bytes()
    assert a["chat_template.jinja"] == Path(tokenizer.name_or_path, "chat_template.jinja").read_bytes()
    assert is_built("teacher-model", first, teacher_model_params(training=short))
    assert not is_built("teacher-model", first, teacher_model_params(teacher_responses=2, training=short))


# ------------------------------------------------------------------------------------------- the real build


@pytest.fixture(scope="module")
def loaded(teacher):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(teacher, dtype=torch.float32).eval()
    assert type(model).__name__ == "Qwen3ForCausalLM"
    return model, AutoTokenizer.from_pretrained(teacher)


def test_teacher_answers_training_questions(loaded):
    model, tokenizer = loaded
    rows = build_text_rows(320, 32, 0, TEACHER_RESPONSES)["train"][:16]
    replies = _greedy(model, tokenizer, [row["prompt"][0]["content"] for row in rows], max_new_tokens=40)
    answers = [extract_final_answer(reply) for reply in replies]
    assert sum(a is not None for a in answers) >= 12  # the format
    correct = sum(a == row["reward_model"]["ground_truth"] for a, row in zip(answers, rows))
    assert correct >= 4, list(zip(replies, [row["reward_model"]["ground_truth"] for row in rows]))


def test_teacher_compressions_parse(loaded):
    model, tokenizer = loaded
    rng = random.Random("unit-test")
    responses = ["<think>12+7=19</think> \\boxed{19}", "<think>25 + 8 = 31</think> \\boxed{31}"]
    while len(responses) < 14:
        response = student_like_response(rng)
        if extract_final_answer(response) is not None:
            responses.append(response)
    replies = _greedy(model, tokenizer, [compression_messages(r)[0]["content"] for r in responses],
                      max_new_tokens=96, template=COMPRESSION_TEMPLATE)
    results = [parse_compression(reply, extract_final_answer(r)) for reply, r in zip(replies, responses)]
    assert results[0].text == "12+7=19\n \\boxed{19}" and results[1].text == "25 + 8 = 31\n \\boxed{31}"
    assert sum(result.reason == OK for result in results) >= 9, list(zip(responses, replies))
