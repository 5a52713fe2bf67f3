"""Supervised warm start of the tiny models: teach a random model the answer format, or a task.

The student models: a random model never writes ``\\boxed{...}``. Every rollout is wrong AND has no final answer,
so ZPPO would find hard questions but no usable wrong candidates (a response without a final answer is never a
BCQ/NCQ candidate, see recipe/zppo/algo/reformulation.py). A short run of supervised steps fixes that
(``warm_start``). It trains on synthetic, formatted answers to OTHER questions
(``<think>17+25=42</think> \\boxed{42}``, numbers drawn apart from the data sets). The student then answers in
the format, mostly wrongly: the situation ZPPO is built for.

The teacher (teacher.py) trains with the same loop (``train``) on its own (user, assistant) pairs.

Deterministic: fixed seed, one thread, fixed example order.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from recipe.zppo.algo.answer_format import ANSWER_CLOSER

# A training pair: (user content, assistant answer). The answer is text, or token ids when its exact ids matter
# (encoding the decoded text again can merge tokens).
Pair = tuple[str, "str | Sequence[int]"]
# An encoded example: (prompt + answer + <|im_end|> token ids, prompt length); the loss is on the answer part.
Encoded = tuple[list[int], int]

# The fast path shares a common prompt prefix only when it is at least this long (else it is not worth a pass).
MIN_SHARED_PREFIX = 32


def format_examples(count: int, seed: int) -> list[tuple[str, str]]:
    """(user content, assistant response) pairs: 3-digit sums, never the data sets' 2-digit questions."""
    rng = random.Random(seed)
    examples = []
    for _ in range(count):
        a, b = rng.randint(100, 999), rng.randint(100, 999)
        question = f"What is {a} + {b}?\n\n{ANSWER_CLOSER}"
        examples.append((question, f"<think>{a} + {b} = {a + b}</think> \\boxed{{{a + b}}}"))
    return examples


def load_model(model_dir: Path):
    """(model in float32 with sdpa attention, tokenizer) of a tiny model folder."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoTokenizer

    config = AutoConfig.from_pretrained(model_dir)
    is_vision_language = getattr(config, "vision_config", None) is not None
    auto_cls = AutoModelForImageTextToText if is_vision_language else AutoModelForCausalLM
    model = auto_cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa")
    return model, AutoTokenizer.from_pretrained(model_dir)


def encode_pairs(tokenizer, pairs: Iterable[Pair], **template_kwargs) -> list[Encoded]:
    """Each pair as one chat turn (the chat template's generation prompt, rendered with ``template_kwargs``, e.g.
    ``enable_thinking=False``) followed by the answer and <|im_end|>."""
    end = [tokenizer.convert_tokens_to_ids("<|im_end|>")]
    encoded = []
    for question, answer in pairs:
        prompt = tokenizer.apply_chat_template(
            [{"role": "user", "content": question}], add_generation_prompt=True, tokenize=True, return_dict=False,
            **template_kwargs,
        )
        answer_ids = tokenizer.encode(answer, add_special_tokens=False) if isinstance(answer, str) else list(answer)
        encoded.append((prompt + answer_ids + end, len(prompt)))
    return encoded


@dataclass(frozen=True)
class TrainOptions:
    """How ``train`` optimises.

    The defaults are the student's warm start: AdamW, constant rate, the model's own loss over the whole batch.
    ``schedule`` multiplies the rate at each step (``LambdaLR``). ``fast`` is the teacher's path: logits only
    where there is a label, and a prompt prefix that all rows of a batch share is run once and its key/value
    cache reused by every row. The loss is the same (mean over the batch's answer tokens), up to rounding.
    """

    lr: float = 3e-3
    betas: tuple[float, float] = (0.9, 0.999)
    schedule: Callable[[int], float] | None = None
    fast: bool = False


def train(model, batches: Sequence[Sequence[Encoded]], pad_id: int, options: TrainOptions = TrainOptions()) -> float:
    """One optimiser step per batch on the answer tokens; parameters without ``requires_grad`` stay as they are.

    Returns the last batch's loss. The model is left in eval mode.
    """
    model.train()
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=options.lr, betas=options.betas, weight_decay=0.0
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, options.schedule) if options.schedule else None
    loss_value = float("nan")
    for chunk in batches:
        loss = _fast_loss(model, chunk, pad_id) if options.fast else _model_loss(model, chunk, pad_id)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        loss_value = float(loss.item())
    model.eval()
    return loss_value


def _model_loss(model, chunk: Sequence[Encoded], pad: int):
    """The model's own loss on a right-padded batch, answer tokens labelled."""
    width = max(len(ids) for ids, _ in chunk)
    input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    labels = torch.full((len(chunk), width), -100, dtype=torch.long)
    attention = torch.zeros((len(chunk), width), dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(chunk):
        input_ids[row, : len(ids)] = torch.tensor(ids)
        attention[row, : len(ids)] = 1
        labels[row, prompt_len : len(ids)] = torch.tensor(ids[prompt_len:])  # loss on the answer only
    return model(input_ids=input_ids, attention_mask=attention, labels=labels).loss


def _shared_prefix(chunk: Sequence[Encoded]) -> int:
    """Length of the token prefix common to every row, ending before the first position that predicts a label."""
    first = chunk[0][0]
    length = min(prompt_len for _, prompt_len in chunk) - 1
    for ids, _ in chunk[1:]:
        k = 0
        while k < length and ids[k] == first[k]:
            k += 1
        length = k
    return length if length >= MIN_SHARED_PREFIX else 0


def _fast_loss(model, chunk: Sequence[Encoded], pad: int):
    """Mean cross-entropy over the answer tokens, computed only at those positions, with a shared prefix run once.

    Rows are right-padded. Causal attention keeps padding out of every real position, so no mask is needed.
    """
    from transformers import DynamicCache

    shared = _shared_prefix(chunk)
    width = max(len(ids) for ids, _ in chunk) - shared
    input_ids = torch.full((len(chunk), width), pad, dtype=torch.long)
    targets = torch.full((len(chunk), width), -100, dtype=torch.long)  # targets[r, j]: token after position j
    for row, (ids, prompt_len) in enumerate(chunk):
        input_ids[row, : len(ids) - shared] = torch.tensor(ids[shared:])
        start = prompt_len - 1 - shared
        targets[row, start : len(ids) - 1 - shared] = torch.tensor(ids[prompt_len:])
    backbone = model.model
    if shared:
        cache = DynamicCache(config=model.config)
        backbone(input_ids=torch.tensor([chunk[0][0][:shared]]), past_key_values=cache, use_cache=True)
        cache.batch_repeat_interleave(len(chunk))
        hidden = backbone(input_ids=input_ids, past_key_values=cache, use_cache=True).last_hidden_state
    else:
        hidden = backbone(input_ids=input_ids).last_hidden_state
    mask = targets != -100
    logits = model.lm_head(hidden[mask])
    return torch.nn.functional.cross_entropy(logits, targets[mask])


def warm_start(model_dir: Path, steps: int = 120, batch_size: int = 16, lr: float = 3e-3, seed: int = 0) -> float:
    """Train ``model_dir`` in place on formatted answers (``format_examples``); returns the last batch's loss."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch.manual_seed(seed)
    try:
        model, tokenizer = load_model(model_dir)
        sequences = encode_pairs(tokenizer, format_examples(steps * batch_size, seed))
        batches = [sequences[step * batch_size : (step + 1) * batch_size] for step in range(steps)]
        loss = train(model, batches, tokenizer.pad_token_id or 0, TrainOptions(lr=lr))
        model.save_pretrained(model_dir)
        return loss
    finally:
        torch.set_num_threads(threads)
