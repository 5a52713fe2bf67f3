"""Tiny random Qwen checkpoints: a Qwen3 text model and a Qwen3.5 vision-language model, saved as Hugging Face folders.

Weights come from the model's own initialisation under ``torch.manual_seed(seed)`` and are saved in float32 as
``model.safetensors``. Both share the tokenizer layout of ``data_prep.tiny.tokenizer`` (vocab 2048, Qwen's special
tokens); ``vocab_size`` equals the tokenizer length, so a sampled id always decodes.

Loading:
- text: ``AutoModelForCausalLM`` -> ``Qwen3ForCausalLM``; ``AutoTokenizer`` -> ``Qwen2Tokenizer``.
- vision-language: ``AutoModelForImageTextToText`` -> ``Qwen3_5ForConditionalGeneration`` (this is also what
  verl's ``get_hf_auto_model_class`` picks); ``AutoProcessor`` -> ``Qwen3VLProcessor`` (``Qwen2VLImageProcessor``,
  ``Qwen3_5Tokenizer``, ``Qwen3VLVideoProcessor``), which verl's ``hf_processor`` binds to
  ``Qwen3VLModel.get_rope_index`` (identical to Qwen3.5's) for the 4-row (text + 3 M-RoPE) position ids.
  ``AutoModelForCausalLM`` on the VL folder gives the text-only ``Qwen3_5ForCausalLM``.
"""

from __future__ import annotations

import contextlib
import copy
from pathlib import Path

from .tokenizer import TARGET_VOCAB, clean_tokenizer_config, save_hf_tokenizer

# ------------------------------------------------------------------------------------------------------- configs

TEXT_MODEL_CONFIG = {
    "vocab_size": TARGET_VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1000000.0,
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}

# Qwen3.5: one Gated DeltaNet (linear attention) layer then one gated full-attention layer. Full attention uses
# partial rotary (0.25 of head_dim 32 = 8 dims = 4 frequencies), split 2/1/1 over the (t, h, w) M-RoPE sections.
VL_TEXT_CONFIG = {
    "vocab_size": TARGET_VOCAB,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "layer_types": ["linear_attention", "full_attention"],
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 32,
    "linear_conv_kernel_dim": 4,
    "linear_key_head_dim": 64,
    "linear_value_head_dim": 64,
    "linear_num_key_heads": 2,
    "linear_num_value_heads": 2,
    "max_position_embeddings": 4096,
    "rms_norm_eps": 1e-6,
    "rope_parameters": {
        "rope_type": "default",
        "rope_theta": 10000000.0,
        "partial_rotary_factor": 0.25,
        "mrope_section": [2, 1, 1],
        "mrope_interleaved": True,
    },
    "tie_word_embeddings": True,
    "hidden_act": "silu",
    "initializer_range": 0.02,
}

VL_VISION_CONFIG = {
    "depth": 2,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_heads": 2,
    "in_channels": 3,
    "patch_size": 16,
    "spatial_merge_size": 2,
    "temporal_patch_size": 2,
    "out_hidden_size": 64,
    "num_position_embeddings": 256,  # a 16 x 16 grid of learned position embeddings, interpolated
    "hidden_act": "gelu_pytorch_tanh",
    "initializer_range": 0.02,
}

# Image processor: patch 16, merge 2 -> one visual token per 32 x 32 pixels. Pixel budget 64x64 .. 128x128, so a
# 96 x 96 image gives 3 x 3 = 9 visual tokens. (verl first resizes with qwen_vl_utils.fetch_image to multiples of
# 32 with at least 4 tokens, which these bounds agree with.)
VL_IMAGE_PROCESSOR = {
    "patch_size": 16,
    "temporal_patch_size": 2,
    "merge_size": 2,
    "min_pixels": 64 * 64,
    "max_pixels": 128 * 128,
    "image_mean": [0.5, 0.5, 0.5],
    "image_std": [0.5, 0.5, 0.5],
}


@contextlib.contextmanager
def _quiet_transformers():
    """Silence transformers' progress bars and info/warning lines (e.g. Qwen3.5's "fast path not available")
    while building; restore the previous settings afterwards."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _token_ids(tok) -> dict[str, int]:
    ids = {t: tok.convert_tokens_to_ids(t) for t in (
        "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
        "<|video_pad|>")}
    assert len(tok) == TARGET_VOCAB, len(tok)
    return ids


def _generation_config(ids: dict[str, int], vision: bool = False):
    from transformers import GenerationConfig

    # Qwen3's token roles; sampling parameters are left to the caller (verl passes its own).
    extra = {}
    if vision:
        # A random model samples vision tokens in its answers now and then (a real one practically never does);
        # verl's M-RoPE position ids then look for an image that is not there and the rollout fails.
        # generate() never samples suppressed tokens; log-probs are unaffected (taken from the raw logits).
        extra["suppress_tokens"] = sorted(
            ids[t] for t in ("<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>")
        )
    return GenerationConfig(
        bos_token_id=ids["<|endoftext|>"],
        pad_token_id=ids["<|endoftext|>"],
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]],
        do_sample=True,
        **extra,
    )


def _save_model(model, out_dir: Path, gen_config) -> None:
    from ._common import normalize_json_file

    model.save_pretrained(str(out_dir), safe_serialization=True)
    gen_config.save_pretrained(str(out_dir))
    for name in ("config.json", "generation_config.json"):
        normalize_json_file(out_dir / name)


def write_text_model(out_dir: Path, seed: int = 0, warm_start_steps: int = 0) -> None:
    """Write the tiny Qwen3 text model + tokenizer into ``out_dir`` (no manifest handling).

    ``warm_start_steps`` > 0 teaches it the answer format first (see ``warm_start``).
    """
    out_dir = Path(out_dir)
    with _quiet_transformers():
        _write_text_model(out_dir, seed)
        _warm_start(out_dir, seed, warm_start_steps)


def _warm_start(out_dir: Path, seed: int, steps: int) -> None:
    if steps <= 0:
        return
    from ._common import normalize_json_file
    from .warm_start import warm_start

    warm_start(out_dir, steps=steps, seed=seed)
    for name in ("config.json", "generation_config.json"):
        normalize_json_file(out_dir / name)


def new_text_model(out_dir: Path, seed: int, config: dict | None = None):
    """A randomly initialised tiny Qwen3 (float32, seeded) with the students' tokenizer saved into ``out_dir``;
    returns (model, tokenizer, special-token ids). The students, the toy's student and the teacher start here."""
    import torch
    from transformers import Qwen3Config, Qwen3ForCausalLM

    tok = save_hf_tokenizer(out_dir, tokenizer_class="Qwen2Tokenizer")
    ids = _token_ids(tok)
    cfg = Qwen3Config(
        **(config or TEXT_MODEL_CONFIG),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    cfg.architectures = ["Qwen3ForCausalLM"]
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = Qwen3ForCausalLM(cfg).to(torch.float32)
    model.config.dtype = torch.float32
    return model, tok, ids


def _write_text_model(out_dir: Path, seed: int, config: dict | None = None) -> None:
    model, _, ids = new_text_model(out_dir, seed, config)
    _save_model(model, out_dir, _generation_config(ids))


def build_processor(tokenizer):
    """The Qwen3.5 processor (Qwen3VLProcessor) around ``tokenizer``, with the tiny pixel budget."""
    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    from .tokenizer import CHAT_TEMPLATE

    image_processor = Qwen2VLImageProcessor(**VL_IMAGE_PROCESSOR)
    video_processor = Qwen3VLVideoProcessor(
        patch_size=16,
        temporal_patch_size=2,
        merge_size=2,
        size={"shortest_edge": 64 * 64, "longest_edge": 128 * 128 * 4},
        image_mean=[0.5, 0.5, 0.5],
        image_std=[0.5, 0.5, 0.5],
    )
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=CHAT_TEMPLATE,
    )


def write_vl_model(out_dir: Path, seed: int = 0, warm_start_steps: int = 0) -> None:
    """Write the tiny Qwen3.5 vision-language model + processor into ``out_dir`` (no manifest handling)."""
    out_dir = Path(out_dir)
    with _quiet_transformers():
        _write_vl_model(out_dir, seed)
        _warm_start(out_dir, seed, warm_start_steps)


def _write_vl_model(out_dir: Path, seed: int) -> None:
    import torch
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    from ._common import normalize_json_file

    tok = save_hf_tokenizer(out_dir, tokenizer_class="Qwen3_5Tokenizer")
    ids = _token_ids(tok)
    text_cfg = dict(
        copy.deepcopy(VL_TEXT_CONFIG),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    cfg = Qwen3_5Config(
        text_config=text_cfg,
        vision_config=copy.deepcopy(VL_VISION_CONFIG),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    cfg.architectures = ["Qwen3_5ForConditionalGeneration"]
    with torch.random.fork_rng(devices=[]):  # seed the init without touching the caller's RNG
        torch.manual_seed(seed)
        model = Qwen3_5ForConditionalGeneration(cfg).to(torch.float32)
    model.config.dtype = torch.float32
    _save_model(model, out_dir, _generation_config(ids, vision=True))

    processor = build_processor(tok)
    processor.save_pretrained(str(out_dir))
    clean_tokenizer_config(out_dir)
    for p in sorted(out_dir.glob("*.json")):
        if p.name != "tokenizer.json":
            normalize_json_file(p)
