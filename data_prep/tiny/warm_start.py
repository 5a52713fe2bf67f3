"""Teach a tiny random model the answer format, so a CPU run has something to show.

A random model never writes ``\\boxed{...}``: every rollout is wrong AND has no final answer, so ZPPO would find
hard questions but no usable wrong candidates (a response without a final answer is never a BCQ/NCQ candidate,
see recipe/zppo/algo/reformulation.py). A short run of supervised steps on synthetic, formatted answers to OTHER
questions (``<think>17+25=42</think> \\boxed{42}``, numbers drawn apart from the data sets) make the student answer
in the format, mostly wrongly: the situation ZPPO is built for. Deterministic: fixed seed, one thread, fixed
example order.
"""

from __future__ import annotations

import random
from pathlib import Path

import torch

from recipe.zppo.algo.answer_format import ANSWER_CLOSER


def format_examples(count: int, seed: int) -> list[tuple[str, str]]:
    """(user content, assistant response) pairs: 3-digit sums, never the data sets' 2-digit questions."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        question = f"What is {a} + {b}?\n\n{ANSWER_CLOSER}"
        examples.append((question, f"<think>{a} + {b} = {a + b}</think> \\boxed{{{a + b}}}"))
    return examples


def _load(model_dir: Path):
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    is_vision_language = getattr(config, "vision_config", None) is not None
    auto_cls = AutoModelForImageTextToText if is_vision_language else AutoModelForCausalLM
    model = auto_cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    return model, AutoTokenizer.from_pretrained(model_dir)


def warm_start(model_dir: Path, steps: int = 120, batch_size: int = 16, lr: float = 3e-3, seed: int = 0) -> float:
    """Train ``model_dir`` in place on formatted answers; returns the last batch's loss."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        model, tokenizer = _load(model_dir)
        model.train()
        sequences = []
        for question, answer in format_examples(steps * batch_size, seed):
            prompt = tokenizer.apply_chat_template(
                [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False
            )
            end = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
            full = prompt + tokenizer.encode(answer, add_special_tokens=False) + end
            sequences.append((full, len(prompt)))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        loss_value = train_on(model, sequences, steps, batch_size, optimizer, tokenizer.pad_token_id or 0)
        model.eval()
        model.save_pretrained(model_dir)
        return loss_value
    finally:
        torch.set_num_threads(threads)


def train_on(model, sequences: list[tuple[list[int], int]], steps: int, batch_size: int, optimizer, pad: int,
             schedule=None) -> float:
    """``steps`` supervised steps on ``(token ids, prompt length)`` pairs taken in order, loss on what follows the
    prompt; returns the last batch's loss. Shared by the students' warm start and the tiny teacher (teacher.py)."""
    model.train()
    loss_value = float("nan")
    for step in range(steps):
        chunk = sequences[step * batch_size : (step + 1) * batch_size]
        width = max(len(ids) for ids, _ in chunk)
        input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        attention = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (ids, prompt_len) in enumerate(chunk):
            input_ids[row, : len(ids)] = torch.tensor(ids)
            attention[row, : len(ids)] = 1
            labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])  # loss on the answer only
        loss = model(input_ids=input_ids, attention_mask=attention, labels=labels).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if schedule is not None:
            schedule.step()
        loss_value = float(loss.item())
    return loss_value
