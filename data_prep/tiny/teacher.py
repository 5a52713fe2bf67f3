"""The tiny TEACHER: a small Qwen3 that answers the tiny arithmetic set and compresses candidates (Fig. 16).

A CPU run serves it (``transformers serve``, or ``python -m recipe.zppo.teacher.server``) for two jobs:

1. G_T teacher rollouts on hard questions of the tiny text set. The user turn is exactly the student's
   (``datasets.user_content``). The answer is ``<think>12+7=19</think> \\boxed{19}``, the format of the data set's
   synthetic teacher responses.
2. Candidate compression: the user turn is ``compression_messages(response)`` (recipe/zppo/algo/compression.py).
   The answer is a ``<summary>`` that ``parse_compression`` accepts, so its boxed answer equals the response's.

A random model does neither, so the teacher is warm-started (warm_start.py's ``train``) on both kinds of pairs.
The pairs are the TRAIN split of the tiny text set (same generator, parameters and seed as ``build_text_rows``,
so the teacher knows those answers) and synthetic responses to compress.

Two tasks and only ~60 s of CPU, so the weights are not all random at the start. Learning to locate and copy
tokens (an induction-like circuit) took far longer than that in trials, so layer 0's attention is built by hand
as a bank of fixed-offset heads. Each head attends from every position to the position ``d`` tokens back,
whatever the content: the query and key are constant (projection biases, zero weights) and the rotary embedding
alone makes the score peak at distance ``d``. Value and output projections start as orthonormal maps; these, and
everything else, are trained. The query/key parts of layer 0 stay frozen.

* Offsets 1..7 (``LOCAL_OFFSETS``) show each position the tokens just before it: the operands before ``=``, and
  the value after ``=`` when the box repeats it. With these the model memorises the 320 answers in a few hundred
  steps.
* Offsets D, D+1, D+2 (``CopyLayout.offset``) serve compression. The compression prompt ends with a fixed tail after
  the response (``\\n</response>`` and the chat template's ``<|im_end|>\\n<|im_start|>assistant\\n``). The reply
  starts with a fixed header (``<summary>``). So the i-th token after the header sits at a fixed distance D from
  the i-th of the response's last ``COPY_WINDOW`` tokens, and D does not depend on the response. The summary
  is that window, token by token. A token before the response (template text) becomes a line break, and so does
  a token of a response longer than the window, up to its first backslash token (the ``\\boxed`` of its final
  answer). Heads D+1 and D+2 show the two source tokens before, which marks where the response starts.

The summary of a short response is therefore the response itself (reasoning and box, think tags already
turned into line breaks by ``clean_candidate_text``), after some leading line breaks. The summary of a long one
is its final box. ``parse_compression`` strips the line breaks. A response with no box in its last
``COPY_WINDOW`` tokens (an answer found by another rule, e.g. "The answer is 5") gets no usable summary.
"""

from __future__ import annotations

import math
import random
import re
from dataclasses import dataclass
from pathlib import Path

from recipe.zppo.teacher.candidates import CompressionConfig

from .tokenizer import TARGET_VOCAB

TEACHER_MODEL_CONFIG = {
    "vocab_size": TARGET_VOCAB,
    "hidden_size": 128,
    "intermediate_size": 256,
    "num_hidden_layers": 2,
    "num_attention_heads": 10,  # layer 0: 3 copy heads + 7 local heads (see the module docstring)
    "num_key_value_heads": 2,
    "head_dim": 16,
    "attention_bias": True,  # the fixed-offset heads' constant queries and keys are biases
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}

COPY_WINDOW = 32  # tokens of the response's end that a summary reproduces
LOCAL_OFFSETS = (1, 2, 3, 4, 5, 6, 7)
POSITIONAL_PAIRS = 4  # rotary frequency pairs (the fastest) that shape the fixed-offset attention
POSITIONAL_GAIN = 6.0  # q_norm/k_norm weight of layer 0: ~17 logits between the target and any other position
VALUE_GAIN = 1.0

# Training (one thread, fixed order). The rate is constant after a warm-up, then falls linearly over the last
# decay_fraction of the steps to min_lr_factor of its peak (a cosine from the start memorised far less in trials).
# An arithmetic step (32 questions) costs ~0.1 s of CPU, a compression step (16 prompts of ~290 tokens) ~0.2 s.
TEACHER_TRAINING = {
    "arithmetic_steps": 300,
    "compression_steps": 80,
    "batch_size": 32,
    "compression_batch_size": 16,
    "lr": 1e-2,
    "betas": [0.9, 0.95],
    "warmup_steps": 20,
    "decay_fraction": 0.3,
    "min_lr_factor": 0.05,
}

SUMMARY_HEADER = "<summary>"
SUMMARY_FOOTER = "</summary>"

_QUESTION = re.compile(r"(\d+) ([+\-*]) (\d+)\?")


# --------------------------------------------------------------------------------------------- arithmetic pairs


def teacher_answer(question: str, value: str) -> str:
    """``<think>12+7=19</think> \\boxed{19}`` for "What is 12 + 7?" (value "19")."""
    match = _QUESTION.search(question)
    if match is None:
        raise ValueError(f"not a tiny arithmetic question: {question!r}")
    a, op, b = match.groups()
    return f"<think>{a}{op}{b}={value}</think> \\boxed{{{value}}}"


def arithmetic_pairs(rows: list[dict]) -> list[tuple[str, str]]:
    """(user turn exactly as the student sees it, correct formatted answer) for each row of the text set."""
    pairs = []
    for row in rows:
        answer = teacher_answer(row["extra_info"]["question"], row["reward_model"]["ground_truth"])
        pairs.append((row["prompt"][0]["content"], answer))
    return pairs


# ------------------------------------------------------------------------------------------- compression pairs


def student_like_response(rng: random.Random) -> str:
    """A response of the kind the tiny models write, right or (mostly) wrong, now and then garbled.

    Operands of the data sets (0..50, 2..12 for products) and of the students' warm start (3 digits); the
    student's spaced reasoning (``a + b = c``) or the teacher's (``a+b=c``); values right, near, or random.
    Garbles seen in the tiny student's samples: an extra term, a broken equation, a bare number, stray words, a
    long rambling reasoning, a box that disagrees with the reasoning or holds a leading zero, a space or a word,
    a doubled think tag or closing brace; and the warm-up corpus's long form.
    """
    from .tokenizer import _WORDS

    op = rng.choice("+-*")
    if rng.random() < 0.5:
        a, b = (rng.randint(2, 12), rng.randint(2, 12)) if op == "*" else (rng.randint(0, 50), rng.randint(0, 50))
    else:
        a, b = rng.randint(0, 999), rng.randint(0, 999)
    true = a + b if op == "+" else a - b if op == "-" else a * b
    kind = rng.random()
    if kind < 0.3:
        value = true
    elif kind < 0.6:
        value = true + rng.choice([-10, -2, -1, 1, 2, 10])
    else:
        value = rng.randint(0, 99) if rng.random() < 0.5 else rng.randint(0, 9999)
    reasoning = f"{a} {op} {b} = {value}" if rng.random() < 0.6 else f"{a}{op}{b}={value}"
    garble = rng.random()
    if garble < 0.08:
        reasoning += f" {rng.choice('+-*')} {rng.randint(0, 99999)}"
    elif garble < 0.14:
        reasoning = reasoning.replace("=", rng.choice(["+", "= =", "=="]), 1)
    elif garble < 0.18:
        reasoning = str(rng.randint(0, 99999))
    elif garble < 0.24:
        reasoning = " ".join(f"{rng.randint(0, 999)} {rng.choice('+-*=')}" for _ in range(rng.randint(6, 12)))
    elif garble < 0.32:
        words = reasoning.split(" ")
        words.insert(rng.randint(0, len(words)), rng.choice(_WORDS))
        reasoning = " ".join(words)
    boxed = str(value)
    extra = rng.random()
    if extra < 0.1:
        boxed = str(rng.randint(0, 9999))
    elif extra < 0.14:
        boxed = "0" + boxed
    elif extra < 0.18:
        boxed += "}"
    elif extra < 0.21:
        boxed = " " + boxed
    elif extra < 0.24:
        boxed = f"{rng.choice(_WORDS)} {boxed}"
    form = rng.random()
    if form < 0.08:
        return f"<think>\nWe compute {reasoning}.\n</think>\n\nThe answer is \\boxed{{{boxed}}}."
    opening = "<think><think>" if form < 0.12 else "<think>"
    closing = "</think></think>" if 0.12 <= form < 0.16 else "</think>"
    return f"{opening}{reasoning}{closing} \\boxed{{{boxed}}}"


@dataclass(frozen=True)
class CopyLayout:
    """Token facts of the compression prompt and reply that the fixed-offset copy relies on.

    tail: tokens after the response in the prompt; header: ``<summary>``; offset: the distance D from the
    position that predicts a window token to that token in the prompt.
    """

    tail: int
    header: tuple[int, ...]
    footer: tuple[int, ...]
    newline: int
    backslashes: frozenset[int]
    window: int = COPY_WINDOW

    @property
    def offset(self) -> int:
        return self.tail + self.window + len(self.header) - 1

    @classmethod
    def of(cls, tokenizer, window: int = COPY_WINDOW) -> CopyLayout:
        from recipe.zppo.algo.compression import compression_messages

        probe = "1 + 2 = 3\n \\boxed{3}"
        text = _chat_text(tokenizer, compression_messages(probe))
        ids, offsets = _ids_and_offsets(tokenizer, text)
        end = text.rindex(probe) + len(probe)
        tail = len(ids) - next(i for i, (start, _) in enumerate(offsets) if start >= end)
        backslashes = frozenset(i for t, i in tokenizer.get_vocab().items()
                                if tokenizer.convert_tokens_to_string([t]).strip() == "\\")
        return cls(
            tail=tail,
            header=tuple(tokenizer.encode(SUMMARY_HEADER, add_special_tokens=False)),
            footer=tuple(tokenizer.encode(SUMMARY_FOOTER, add_special_tokens=False)),
            newline=tokenizer.encode("\n", add_special_tokens=False)[0],
            backslashes=backslashes,
            window=window,
        )


# A run sends compression requests with the thinking switch of ``zppo.teacher.compression.thinking`` (default off:
# the template pre-fills an empty think block), so the teacher learns compression on prompts rendered that way; the
# copy heads' distance depends on it.
COMPRESSION_TEMPLATE = {"enable_thinking": CompressionConfig.thinking}


def _chat_text(tokenizer, messages: list[dict]) -> str:
    """The compression prompt as the run renders it."""
    return tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **COMPRESSION_TEMPLATE)


def _ids_and_offsets(tokenizer, text: str) -> tuple[list[int], list[tuple[int, int]]]:
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    return list(enc["input_ids"]), [tuple(o) for o in enc["offset_mapping"]]


def compression_target(tokenizer, layout: CopyLayout, response: str) -> list[int] | None:
    """The reply's token ids for compressing ``response`` (header, window, footer; no end token), or None when
    the layout does not hold for this response or the result would not parse with the response's answer."""
    from recipe.zppo.algo.answer_format import extract_final_answer
    from recipe.zppo.algo.compression import compression_messages, parse_compression
    from recipe.zppo.algo.reformulation import clean_candidate_text

    answer = extract_final_answer(response)
    if answer is None:
        return None
    cleaned = clean_candidate_text(response)
    text = _chat_text(tokenizer, compression_messages(response))
    ids, offsets = _ids_and_offsets(tokenizer, text)
    start = text.rindex("<response>\n" + cleaned + "\n</response>") + len("<response>\n")
    end = start + len(cleaned)
    first = next(i for i, (s, _) in enumerate(offsets) if s >= start)
    tail_start = next(i for i, (s, _) in enumerate(offsets) if s >= end)
    if len(ids) - tail_start != layout.tail:  # the last response character merged into the tail's first token
        return None
    window_start = tail_start - layout.window
    copy_from = first if first >= window_start else next(
        (i for i in range(window_start, tail_start) if ids[i] in layout.backslashes), None)
    if copy_from is None:
        return None
    body = [ids[i] if i >= copy_from else layout.newline for i in range(window_start, tail_start)]
    reply = [*layout.header, *body, *layout.footer]
    if not parse_compression(tokenizer.decode(reply), answer).ok:
        return None
    return reply


def compression_pairs(tokenizer, layout: CopyLayout, count: int, rng: random.Random) -> list[tuple[str, list[int]]]:
    """``count`` (compression user turn, reply ids) pairs for fresh student-like responses."""
    from recipe.zppo.algo.compression import compression_messages

    pairs = []
    while len(pairs) < count:
        response = student_like_response(rng)
        reply = compression_target(tokenizer, layout, response)
        if reply is not None:
            pairs.append((compression_messages(response)[0]["content"], reply))
    return pairs


# --------------------------------------------------------------------------------------------------- the model


def head_offsets(layout: CopyLayout) -> list[int]:
    """Layer 0's attention distance per head: the copy heads (D, D+1, D+2), then ``LOCAL_OFFSETS``."""
    d = layout.offset
    offsets = [d, d + 1, d + 2, *LOCAL_OFFSETS]
    assert len(offsets) == TEACHER_MODEL_CONFIG["num_attention_heads"]
    return offsets


def build_fixed_offset_heads(model, offsets: list[int], seed: int) -> None:
    """Make layer 0's heads attend to fixed distances (see the module docstring) and freeze their queries/keys.

    Query of the head with distance d: in each of the ``POSITIONAL_PAIRS`` fastest rotary pairs, the unit
    vector at angle -d*theta. Key: the unit vector at angle 0. After the rotary embedding, the score between
    positions m and n is proportional to the sum over pairs of cos((m - n - d) * theta), largest at m - n = d.
    """
    import torch

    attention = model.model.layers[0].self_attn
    cfg = model.config
    head_dim, heads, kv_heads = cfg.head_dim, cfg.num_attention_heads, cfg.num_key_value_heads
    half = head_dim // 2
    theta = model.model.rotary_emb.inv_freq.tolist()
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for proj in (attention.q_proj, attention.k_proj):
            proj.weight.zero_()
            proj.bias.zero_()
        for h, d in enumerate(offsets):
            for i in range(POSITIONAL_PAIRS):
                attention.q_proj.bias[h * head_dim + i] = math.cos(d * theta[i])
                attention.q_proj.bias[h * head_dim + half + i] = -math.sin(d * theta[i])
        for g in range(kv_heads):
            attention.k_proj.bias[g * head_dim : g * head_dim + POSITIONAL_PAIRS] = 1.0
        attention.q_norm.weight.fill_(POSITIONAL_GAIN)
        attention.k_norm.weight.fill_(POSITIONAL_GAIN)
        # Values: one orthonormal read-out per key/value head; outputs: one orthonormal write-back per head.
        hidden = cfg.hidden_size
        for g in range(kv_heads):
            basis, _ = torch.linalg.qr(torch.randn(hidden, head_dim, generator=generator))
            attention.v_proj.weight[g * head_dim : (g + 1) * head_dim] = basis.T * VALUE_GAIN
        for h in range(heads):
            basis, _ = torch.linalg.qr(torch.randn(hidden, head_dim, generator=generator))
            attention.o_proj.weight[:, h * head_dim : (h + 1) * head_dim] = basis * VALUE_GAIN / math.sqrt(heads)
    for module in (attention.q_proj, attention.k_proj, attention.q_norm, attention.k_norm):
        for parameter in module.parameters():
            parameter.requires_grad_(False)


def _lr_factor(step: int, total: int, training: dict) -> float:
    warm = min(1.0, (step + 1) / training["warmup_steps"])
    decay_steps = training["decay_fraction"] * total
    return warm * min(1.0, max(training["min_lr_factor"], (total - step) / decay_steps))


def training_batches(tokenizer, rows: list[dict], seed: int, training: dict = TEACHER_TRAINING) -> list[list]:
    """The encoded batches (``warm_start.Encoded``) in training order: arithmetic batches walk through shuffled
    epochs of ``rows``; each compression batch has fresh responses; the two kinds are interleaved at random."""
    from .warm_start import encode_pairs

    rng = random.Random(f"tiny-teacher-{seed}")
    layout = CopyLayout.of(tokenizer)
    arithmetic = encode_pairs(tokenizer, arithmetic_pairs(rows))  # encoded once, reused every epoch
    size = training["batch_size"]
    kinds = ["a"] * training["arithmetic_steps"] + ["c"] * training["compression_steps"]
    rng.shuffle(kinds)
    order: list[int] = []
    batches = []
    for kind in kinds:
        if kind == "c":
            pairs = compression_pairs(tokenizer, layout, training["compression_batch_size"], rng)
            batches.append(encode_pairs(tokenizer, pairs, **COMPRESSION_TEMPLATE))
            continue
        batch = []
        for _ in range(size):
            if not order:
                order = list(range(len(arithmetic)))
                rng.shuffle(order)
            batch.append(arithmetic[order.pop()])
        batches.append(batch)
    return batches


def write_teacher_model(out_dir: Path, rows: list[dict], seed: int = 0, training: dict = TEACHER_TRAINING) -> float:
    """Write the tiny teacher (tokenizer, weights, configs) into ``out_dir``; returns the last batch's loss.

    ``rows``: the text set's train rows whose answers the teacher learns.
    """
    import torch

    from .models import _generation_config, _quiet_transformers, _save_model, new_text_model
    from .warm_start import TrainOptions, train

    out_dir = Path(out_dir)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with _quiet_transformers():
            model, tokenizer, ids = new_text_model(out_dir, seed, TEACHER_MODEL_CONFIG)
            model.config._attn_implementation = "sdpa"
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(seed)
                build_fixed_offset_heads(model, head_offsets(CopyLayout.of(tokenizer)), seed)
                batches = training_batches(tokenizer, rows, seed, training)
                total = len(batches)
                options = TrainOptions(
                    lr=training["lr"],
                    betas=tuple(training["betas"]),
                    schedule=lambda step: _lr_factor(step, total, training),
                    fast=True,
                )
                loss = train(model, batches, tokenizer.pad_token_id, options)
            for parameter in model.parameters():
                parameter.requires_grad_(True)
            _save_model(model, out_dir, _generation_config(ids))
        return loss
    finally:
        torch.set_num_threads(threads)
