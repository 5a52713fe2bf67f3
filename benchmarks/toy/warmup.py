"""The toy student: a tiny Qwen3 built by ``data_prep.tiny``'s pieces, a supervised warm-up, greedy evaluation.

``build_student(out_dir, ...)`` writes a random tiny Qwen3 (the project's tokenizer and generation config, a
somewhat larger body than the CI model) and trains it on ``task.warmup_examples``: plain short questions and
candidate-format prompts (BCQ of every length, NCQ of short lengths), loss on the response only, each batch
drawn fresh. ``greedy_accuracy`` scores greedy answers with the project's reward function (plain prompt or any
chat messages), as RL would score them.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from pathlib import Path

import torch
from tqdm import tqdm

from data_prep.tiny.models import (
    TEXT_MODEL_CONFIG,
    _generation_config,
    _quiet_transformers,
    _save_model,
    new_text_model,
)
from data_prep.tiny.warm_start import load_model

from . import task

# Larger than the CI model (2 layers x 64): the student must learn mod-10 addition and copying from a candidate.
STUDENT_CONFIG = {**TEXT_MODEL_CONFIG, "hidden_size": 128, "intermediate_size": 384, "num_hidden_layers": 4,
                  "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 32}


def write_random_student(out_dir: Path, seed: int = 0) -> None:
    out_dir = Path(out_dir)
    with _quiet_transformers():
        model, _, ids = new_text_model(out_dir, seed, STUDENT_CONFIG)
        _save_model(model, out_dir, _generation_config(ids))


def _encode(tokenizer, messages: list[dict], response: str, end_id: int) -> tuple[list[int], int]:
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    return prompt + tokenizer.encode(response, add_special_tokens=False) + [end_id], len(prompt)


def supervised_warmup(
    model_dir: Path,
    spec: task.TaskSpec,
    reserved: frozenset,
    steps: int,
    batch_size: int = 32,
    lr: float = 2e-3,
    seed: int = 0,
    max_prompt_length: int = 256,
    mix: task.WarmupMix = task.WarmupMix(),
) -> list[float]:
    """Train ``model_dir`` in place (linear warm-up, cosine decay); returns the loss of every step."""
    from recipe.zppo.algo.reformulation import Tokenization

    # One thread: on a shared 2-core machine a second OpenMP thread spins against other processes (10x slower).
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    rng = random.Random(f"toy-warmup-{seed}")
    model, tokenizer = load_model(model_dir)
    tokens = Tokenization.for_tokenizer(tokenizer)
    end_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
    pad = tokenizer.pad_token_id or 0
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
    warm = max(1, steps // 20)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / warm) * 0.5 * (1 + math.cos(math.pi * min(s, steps) / steps)))
    losses = []
    for _ in tqdm(range(steps), desc="toy warm-up", mininterval=10):
        batch = [_encode(tokenizer, m, r, end_id)
                 for _, m, r in task.warmup_examples(batch_size, rng, spec, reserved, tokens, max_prompt_length, mix)]
        width = max(len(ids) for ids, _ in batch)
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        labels = torch.full((len(batch), width), -100, dtype=torch.long)
        for row, (ids, prompt_len) in enumerate(batch):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            labels[row, prompt_len: len(ids)] = torch.tensor(ids[prompt_len:])
        # Right padding under a causal mask: no real token sees a pad, so no attention mask is needed (and
        # sdpa without one takes its fast path on a CPU).
        loss = model(input_ids=input_ids, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(float(loss.item()))
    model.eval()
    model.save_pretrained(model_dir)
    return losses


@torch.no_grad()
def greedy_responses(model, tokenizer, prompts: Sequence[list[dict]], max_new_tokens: int = 40,
                     batch_size: int = 64) -> list[str]:
    tokenizer.padding_side = "left"
    out = []
    for start in range(0, len(prompts), batch_size):
        texts = [tokenizer.apply_chat_template(m, add_generation_prompt=True, tokenize=False)
                 for m in prompts[start:start + batch_size]]
        enc = tokenizer(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        gen = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                             pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(gen[:, enc["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def greedy_accuracy(model_dir: Path, prompts: Sequence[list[dict]], answers: Sequence[str],
                    tokenizer_dir: Path | None = None) -> float:
    """Share of ``prompts`` whose greedy response the project's reward scores correct against ``answers``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipe.zppo.reward import compute_score

    if not prompts:
        return float("nan")
    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
    responses = greedy_responses(model, tokenizer, prompts)
    scores = [compute_score(task.SOURCE, r, a, {"reward_type": "string_match"})["score"]
              for r, a in zip(responses, answers)]
    return sum(scores) / len(scores)


def evaluate_plain(model_dir: Path, questions: Sequence[task.Question], tokenizer_dir: Path | None = None) -> float:
    return greedy_accuracy(model_dir, [task.plain_messages(d) for d in questions],
                           [task.answer_of(d) for d in questions], tokenizer_dir)


def evaluate_candidate_reading(model_dir: Path, spec: task.TaskSpec, reserved: frozenset, count: int,
                               seed: int = 0, max_prompt_length: int = 256) -> dict[str, float]:
    """Greedy accuracy on fresh hard-length BCQ and NCQ prompts (built by the project's reformulation)."""
    from transformers import AutoTokenizer

    from recipe.zppo.algo.reformulation import Tokenization

    tokens = Tokenization.for_tokenizer(AutoTokenizer.from_pretrained(model_dir))
    rng = random.Random(f"toy-reading-{seed}")
    prompts: dict[str, list] = {"bcq": [], "ncq": []}
    answers: dict[str, list] = {"bcq": [], "ncq": []}
    while len(prompts["bcq"]) < count:
        digits = task.sample_question(rng, spec.hard_lengths, reserved)
        for kind, messages in task.candidate_prompts(digits, rng, tokens, max_prompt_length).items():
            prompts[kind].append(messages)
            answers[kind].append(task.answer_of(digits))
    return {kind: greedy_accuracy(model_dir, prompts[kind], answers[kind]) for kind in prompts}
