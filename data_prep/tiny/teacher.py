"""The tiny TEACHER for CPU runs: a Qwen3 text model (wider and deeper than the student, same tokenizer) taught the two
things the paper's teacher does in a ZPPO step (arXiv 2606.18216, Sec. 3.2, Fig. 16):

1. answer the tiny arithmetic set's TRAIN questions in the answer format (``<think>a+b=v</think> \\boxed{v}``),
   exactly as the student sees them (closer included), so its fresh rollouts are sometimes correct;
2. compress a response with the Fig. 16 prompt into ``<summary>reasoning\\n\\boxed{answer}</summary>``, keeping the
   boxed answer: responses like the student's (``<think>a op b = c</think> \\boxed{c}``, mostly wrong) and its own.

A random model can do neither, so without this a CPU run never builds a compressed candidate. Deterministic: fixed
seed, one thread, fixed example order. What it reaches (correct answers, compressions accepted) is measured in
``benchmarks/README.md`` ("Tiny teacher").
"""

from __future__ import annotations

import math
import random
import re
from pathlib import Path

import torch

from recipe.zppo.algo.compression import compression_messages

from .datasets import build_text_rows
from .warm_start import train_on

# What differs from the student's TEXT_MODEL_CONFIG (models.py merges the two): wider and deeper.
TEACHER_MODEL_CONFIG = {"hidden_size": 128, "intermediate_size": 256, "num_hidden_layers": 4}
TEACHER_STEPS = 300
TEACHER_BATCH = 16
TEACHER_LR = 2e-3

_QUESTION = re.compile(r"(\d+) ([+\-*]) (\d+)")


def teacher_answer(question: str, value: str) -> str:
    """The answer-format response to an arithmetic question of the tiny set."""
    a, op, b = _QUESTION.search(question).groups()
    return f"<think>{a}{op}{b}={value}</think> \\boxed{{{value}}}"


def _student_like(rng: random.Random) -> tuple[str, str, str]:
    """(response, its reasoning, its boxed answer) shaped like the tiny student's, the answer mostly wrong."""
    a, b, op = rng.randint(0, 60), rng.randint(0, 60), rng.choice("+-*")
    c = rng.randint(0, 150)
    return f"<think>{a} {op} {b} = {c}</think> \\boxed{{{c}}}", f"{a} {op} {b} = {c}", str(c)


def teacher_examples(count: int, seed: int) -> list[tuple[list[dict], str]]:
    """(messages, target) pairs, answers and compressions alternating. Compression prompts are rendered without a
    thinking block (as the run asks for them: ``zppo.teacher.compression.thinking=false``)."""
    rng = random.Random(f"tiny-teacher-{seed}")
    rows = build_text_rows(seed=seed)["train"]
    examples = []
    for i in range(count):
        if i % 2 == 0:
            row = rng.choice(rows)
            messages = [dict(m) for m in row["prompt"]]
            examples.append((messages, teacher_answer(messages[-1]["content"], row["reward_model"]["ground_truth"])))
            continue
        if rng.random() < 0.3:  # its own correct answers, as the server returns them: with or without the think part
            row = rng.choice(rows)
            value = row["reward_model"]["ground_truth"]
            response = teacher_answer(row["prompt"][-1]["content"], value)
            reasoning = response.split("</think>")[0][len("<think>"):]
            if rng.random() < 0.5:
                response = response.split("</think>", 1)[1]
        else:
            response, reasoning, value = _student_like(rng)
        examples.append((compression_messages(response), f"<summary>{reasoning}\n\\boxed{{{value}}}</summary>"))
    return examples


def teach(model_dir: Path, steps: int = TEACHER_STEPS, batch_size: int = TEACHER_BATCH, lr: float = TEACHER_LR,
          seed: int = 0) -> float:
    """Train ``model_dir`` in place (warm-up then cosine learning rate); returns the last batch's loss."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
        tokenizer = AutoTokenizer.from_pretrained(model_dir)
        end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        sequences = []
        for messages, target in teacher_examples(steps * batch_size, seed):
            compressing = target.startswith("<summary>")
            prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                   return_dict=False, enable_thinking=not compressing)
            sequences.append((prompt + tokenizer.encode(target, add_special_tokens=False) + [end], len(prompt)))
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.0)
        warmup = max(1, steps // 20)
        schedule = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * s / steps)))
        loss_value = train_on(model, sequences, steps, batch_size, optimizer, tokenizer.pad_token_id or 0, schedule)
        model.eval()
        model.save_pretrained(model_dir)
        return loss_value
    finally:
        torch.set_num_threads(threads)
