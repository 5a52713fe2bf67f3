"""From a training row to what the teacher is asked: the row's own chat messages, its images, a seed.

The teacher sees the messages the student sees (``prompt``, with the project's answer closer already in the user
turn), rendered with the TEACHER's chat template (``add_generation_prompt=True``). For a vision-language teacher
each ``<image>`` placeholder becomes an image part, in order, as verl's ``RLHFDataset._build_messages`` does, and
the decoded images go to the teacher's processor. A row that cannot be asked (no question id, no ground truth, a
bad prompt, an image that does not decode, placeholders that do not match the images, images for a text-only
teacher) gets a status instead; the runner keeps it with empty teacher lists.
"""

from __future__ import annotations

import hashlib
import io
import re
from dataclasses import dataclass, field
from typing import Any

from recipe.zppo.reward.routing import gold_items

IMAGE_PLACEHOLDER = "<image>"
_SPLIT = re.compile(f"({re.escape(IMAGE_PLACEHOLDER)})")

# Row statuses: "ok" or why the row got no teacher responses (counted in summary.json).
STATUS_OK = "ok"


@dataclass
class Request:
    """One question for the engine."""

    question_id: str
    seed: int
    prompt: str  # the rendered chat prompt (text, image placeholders expanded by the processor later)
    images: list = field(default_factory=list)  # PIL images, in placeholder order


@dataclass
class Prepared:
    question_id: str
    status: str
    request: Request | None = None


def question_seed(seed: int, question_id: str) -> int:
    """A 31-bit seed that depends only on (run seed, question id): a question's responses do not depend on which
    shard or batch it is in, nor on the questions before it."""
    digest = hashlib.sha256(f"{seed}\0{question_id}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFF_FFFF


def decode_image(entry: Any):
    """A PIL RGB image from a row's image entry ({"bytes": ..., "path": ...}); raises on anything undecodable."""
    from PIL import Image

    data = entry.get("bytes") if isinstance(entry, dict) else entry
    if isinstance(data, (bytes, bytearray)) and data:
        image = Image.open(io.BytesIO(data))
    elif isinstance(entry, dict) and isinstance(entry.get("path"), str) and entry["path"]:
        image = Image.open(entry["path"])
    else:
        raise ValueError("image entry has neither bytes nor a path")
    image.load()  # force the full decode here: a truncated file fails now, not inside the processor
    return image.convert("RGB")


def _messages(prompt: Any) -> list[dict] | None:
    if not isinstance(prompt, list) or not prompt:
        return None
    out = []
    for message in prompt:
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return None
        if not isinstance(message.get("content"), str):
            return None
        out.append({"role": message["role"], "content": message["content"]})
    return out


def with_image_parts(messages: list[dict]) -> list[dict]:
    """Messages whose ``<image>`` placeholders are image parts (the structured form chat templates expect)."""
    out = []
    for message in messages:
        segments = [s for s in _SPLIT.split(message["content"]) if s]
        if IMAGE_PLACEHOLDER not in segments:
            out.append(dict(message))
            continue
        parts = [{"type": "image"} if s == IMAGE_PLACEHOLDER else {"type": "text", "text": s} for s in segments]
        out.append({"role": message["role"], "content": parts})
    return out


def prepare(row: dict, row_offset: int, seed: int, renderer) -> Prepared:
    """The request for one row, or the reason there is none."""
    extra = row.get("extra_info")
    qid = extra.get("question_id") if isinstance(extra, dict) else None
    if not isinstance(qid, str) or not qid:
        return Prepared(f"row-{row_offset}", "no_question_id")
    reward_model = row.get("reward_model")
    ground_truth = reward_model.get("ground_truth") if isinstance(reward_model, dict) else None
    if not gold_items(ground_truth):
        return Prepared(qid, "no_ground_truth")
    messages = _messages(row.get("prompt"))
    if messages is None:
        return Prepared(qid, "bad_prompt")
    entries = row.get("images") or []
    placeholders = sum(m["content"].count(IMAGE_PLACEHOLDER) for m in messages)
    if entries and not renderer.is_vision_language:
        return Prepared(qid, "teacher_has_no_vision")
    if entries and placeholders != len(entries):
        return Prepared(qid, "image_count_mismatch")
    images = []
    for entry in entries:
        try:
            images.append(decode_image(entry))
        except Exception:  # PIL raises many kinds (UnidentifiedImageError, OSError, ValueError, ...)
            return Prepared(qid, "bad_image")
    try:
        prompt = renderer.render(with_image_parts(messages) if images else messages)
    except Exception:
        return Prepared(qid, "template_error")
    return Prepared(qid, STATUS_OK, Request(qid, question_seed(seed, qid), prompt, images))


class Renderer:
    """The teacher's chat template (from its processor for a vision-language teacher, else its tokenizer)."""

    def __init__(self, model: str, trust_remote_code: bool = False, template_kwargs: dict | None = None):
        from transformers import AutoConfig, AutoProcessor, AutoTokenizer

        config = AutoConfig.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.is_vision_language = getattr(config, "vision_config", None) is not None
        self.tokenizer = AutoTokenizer.from_pretrained(model, trust_remote_code=trust_remote_code)
        self.processor = (AutoProcessor.from_pretrained(model, trust_remote_code=trust_remote_code)
                          if self.is_vision_language else None)
        self.template_kwargs = dict(template_kwargs or {})
        self.config = config

    def render(self, messages: list[dict]) -> str:
        owner = self.processor if self.processor is not None else self.tokenizer
        return owner.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **self.template_kwargs)


def opened_think(prompt: str) -> str:
    """The think-block opening a template left at the end of the generation prompt ("<think>\\n"), else "".

    Qwen3.5-style templates start the assistant turn inside the think block; the generated text then lacks the
    opening tag. It is put back so that a stored response is complete on its own (reasoning included).
    """
    stripped = prompt.rstrip()
    if stripped.endswith("<think>"):
        return prompt[stripped.rfind("<think>"):]
    return ""
