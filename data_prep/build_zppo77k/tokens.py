"""Prompt length with the student's processor: text tokens of the chat-templated prompt plus image tokens.

The ZPPO paper (App. D.1, "Prompt length budget") gives plain rollouts a 4,096-token prompt budget and enforces it
only at data construction: every base prompt -- question text, its image tokens after the processor, and the
shared RL closer -- must fit. ``PromptCounter.count`` gives the length the trainer's dataset (verl's
``RLHFDataset``) sees for a builder row: the user turn is ``[image] * n + [question + "\\n\\n" + ANSWER_CLOSER]``,
rendered with the processor's chat template (generation prompt added), tokenized without special tokens, and
each image placeholder token expanded to the processor's number of visual tokens for the stored image size.

Image tokens are computed from the image size alone (no pixels decoded), as the processor's image processor
sizes it: ``smart_resize`` to multiples of ``patch_size * merge_size`` within the processor's ``min_pixels`` /
``max_pixels``, then one token per ``merge_size x merge_size`` patches. The unit tests check the result against
the processor run on the real image and text.

The chat template is rendered once per image count with a marker in place of the text; each row then costs one
tokenizer call (the marker layout is checked against a full rendering when the counter is made, and a template
that does not keep the text verbatim falls back to rendering every row).
"""

from __future__ import annotations

from pathlib import Path

from recipe.zppo.algo.answer_format import ANSWER_CLOSER

_MARKER = "\ue000ZPPO-QUESTION\ue000"


class TokenCounterError(ValueError):
    """The processor cannot be loaded or is not a Qwen-VL style processor (the message says which)."""


def _quiet_load(path: str):
    from transformers import AutoProcessor

    try:
        return AutoProcessor.from_pretrained(path)
    except Exception as exc:  # not found, not a processor, no hub access: one clear message
        raise TokenCounterError(f"--processor {path}: cannot load a processor: {type(exc).__name__}: {exc}") from exc


class PromptCounter:
    """Token length of a builder prompt for one processor (see the module docstring)."""

    def __init__(self, path: str | Path):
        self.path = str(path)
        self.processor = _quiet_load(self.path)
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        image_processor = getattr(self.processor, "image_processor", None)
        if self.tokenizer is None or image_processor is None:
            raise TokenCounterError(f"--processor {self.path}: needs a tokenizer and an image processor")
        self.patch = int(getattr(image_processor, "patch_size", 14))
        self.merge = int(getattr(image_processor, "merge_size", 2))
        size = getattr(image_processor, "size", None) or {}
        self.min_pixels = int(getattr(image_processor, "min_pixels", None) or size.get("shortest_edge"))
        self.max_pixels = int(getattr(image_processor, "max_pixels", None) or size.get("longest_edge"))
        image_token = getattr(self.processor, "image_token", None) or "<|image_pad|>"
        self.image_token_id = self.tokenizer.convert_tokens_to_ids(image_token)
        self._layout: dict[int, tuple[str, str] | None] = {}
        self._image_tokens: dict[tuple[int, int], int] = {}

    # ---------------------------------------------------------------- pieces

    @staticmethod
    def messages(text: str, n_images: int) -> list[dict]:
        return [{"role": "user", "content": [{"type": "image"} for _ in range(n_images)]
                 + [{"type": "text", "text": text}]}]

    def _render(self, text: str, n_images: int) -> str:
        return self.processor.apply_chat_template(self.messages(text, n_images), add_generation_prompt=True,
                                                  tokenize=False)

    def _prefix_suffix(self, n_images: int) -> tuple[str, str] | None:
        if n_images not in self._layout:
            rendered = self._render(_MARKER, n_images)
            layout = None
            if rendered.count(_MARKER) == 1:
                prefix, suffix = rendered.split(_MARKER)
                probe = "  A probe question?\n(A) x  \n\n" + ANSWER_CLOSER + " "
                if prefix + probe + suffix == self._render(probe, n_images):
                    layout = (prefix, suffix)
            self._layout[n_images] = layout
        return self._layout[n_images]

    def image_tokens(self, height: int, width: int) -> int:
        """Visual tokens of one image stored at ``height`` x ``width`` pixels."""
        key = (height, width)
        hit = self._image_tokens.get(key)
        if hit is None:
            from transformers.models.qwen2_vl.image_processing_qwen2_vl import smart_resize

            factor = self.patch * self.merge
            h, w = smart_resize(height, width, factor=factor, min_pixels=self.min_pixels, max_pixels=self.max_pixels)
            hit = self._image_tokens[key] = (h // self.patch) * (w // self.patch) // (self.merge * self.merge)
        return hit

    # ---------------------------------------------------------------- the count

    def text_tokens(self, question: str, n_images: int) -> int:
        """Tokens of the templated prompt, each image still one placeholder token."""
        text = question + "\n\n" + ANSWER_CLOSER
        layout = self._prefix_suffix(n_images)
        rendered = layout[0] + text + layout[1] if layout is not None else self._render(text, n_images)
        return len(self.tokenizer(rendered, add_special_tokens=False, return_attention_mask=False)["input_ids"])

    def count(self, question: str, image_sizes: list[tuple[int, int]]) -> int:
        """Prompt tokens of a row: ``question`` (no placeholders, no closer) with images of (height, width)."""
        n = len(image_sizes)
        return self.text_tokens(question, n) + sum(self.image_tokens(h, w) - 1 for h, w in image_sizes)
