"""Token budgets and a per-GPU memory estimate of the student's update, from the config alone (no GPU, no model).

*ours* throughout: the paper (Tab. 8) gives the lengths and the hardware (8 nodes x 8 GPUs, teacher on 2 of every 8,
FSDP full shard), not the memory. Used by the GPU scripts' tests (tests/unit/test_gpu_runs.py) and quoted in
examples/README.md.

Longest row. A plain row is at most ``data.max_prompt_length`` + ``data.max_response_length`` tokens; a BCQ/NCQ row
is longer: its prompt adds the Fig. 17/18 instruction and up to G_S compressed candidates (each at most
``zppo.teacher.compression.max_tokens``) with, for NCQ, one listed wrong answer each. The run derives
``actor_rollout_ref.rollout.prompt_length`` for BCQ/NCQ itself (``preflight.reformulated_budget``: the templates
measured, ``zppo.wrong_answer_tokens`` per listed answer); the scripts' budgets use this looser explicit formula,
an upper bound of the derived one at the default 64 tokens per answer (tests/unit/test_preflight.py checks it)

    prompt <= max_prompt_length + G_S x (compression.max_tokens + CANDIDATE_OVERHEAD) + INSTRUCTION_TOKENS

(NCQ's worst case: it shows every wrong rollout of a group, G_S of them; BCQ shows two). The preflight check
``check_token_budgets`` compares the budgets with the rollout's own ``prompt_length`` at start, whatever derived it.
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

# Per candidate: its block tags and one listed wrong answer (a parsed final answer; nothing bounds it, 256 is ours).
CANDIDATE_OVERHEAD = 256
# The Fig. 17/18 instruction around the candidates (ours: about 1 KB of English, a token per byte at most is 1,024).
INSTRUCTION_TOKENS = 1024
GB = 1e9
GPU_GB = 80.0  # the scripts' GPUs: H100/H200/A100-80G (H200 has more; the estimate holds for 80)


def longest_prompt_bound(config: DictConfig) -> int:
    """The longest prompt (plain, BCQ or NCQ) a step can build, by the formula of the module docstring."""
    plain = int(config.data.max_prompt_length)
    zppo = config.get("zppo") or {}
    if not zppo.get("enable", False):
        return plain  # no BCQ/NCQ prompts: plain rows only
    group = int(config.actor_rollout_ref.rollout.n)
    compression = (zppo.get("teacher") or {}).get("compression") or {}
    if compression.get("enable", False):
        candidate = int(compression.get("max_tokens"))
    else:  # uncompressed candidates: a full response each (the teacher's or the student's, whichever is longer)
        candidate = max(int(config.data.max_response_length), int(zppo.teacher.get("max_tokens") or 0))
    return plain + group * (candidate + CANDIDATE_OVERHEAD) + INSTRUCTION_TOKENS


def longest_row_bound(config: DictConfig) -> int:
    """Prompt plus response: what one micro-batch of verl's token-budget batching must hold at least."""
    return longest_prompt_bound(config) + int(config.data.max_response_length)


def token_budgets(config: DictConfig) -> dict[str, int | None]:
    """Every token budget verl applies to the student's passes (update, old log-probs, reference log-probs)."""
    arr = config.actor_rollout_ref
    return {
        "actor_rollout_ref.actor.ppo_max_token_len_per_gpu": arr.actor.get("ppo_max_token_len_per_gpu"),
        "actor_rollout_ref.rollout.log_prob_max_token_len_per_gpu": arr.rollout.get("log_prob_max_token_len_per_gpu"),
        "actor_rollout_ref.ref.log_prob_max_token_len_per_gpu": arr.ref.get("log_prob_max_token_len_per_gpu"),
    }


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs of a student. Parameter counts are the models' names; the shapes of 0.8B, 2B and 4B
    are *assumptions* (check the model's config.json); 9B's is transformers' Qwen3.5 text default (hidden 4,096,
    32 layers, intermediate 12,288). All share Qwen3.5's 248,320-token vocabulary."""

    params: float
    hidden: int
    layers: int
    intermediate: int
    vocab: int = 248_320


QWEN3_5 = {
    "0.8b": ModelShape(0.8e9, 1024, 24, 3584),
    "2b": ModelShape(2.0e9, 2048, 24, 6144),
    "4b": ModelShape(4.0e9, 2560, 32, 9216),
    "9b": ModelShape(9.0e9, 4096, 32, 12288),
}


def scale_of(model_path: str) -> str | None:
    """'Qwen/Qwen3.5-2B' -> '2b' (None for another model)."""
    name = str(model_path).rstrip("/").rsplit("/", 1)[-1].lower()
    for scale in sorted(QWEN3_5, key=len, reverse=True):  # '0.8b' before '8b'-like suffixes
        if name.endswith(f"-{scale}"):
            return scale
    return None


def memory_estimate(shape: ModelShape, tokens: int, shards: int, entropy_chunk: int | None) -> dict[str, float]:
    """Peak bytes (GB) on one student GPU during the update of one micro-batch of ``tokens`` tokens. Assumptions:

    - FSDP full shard over ``shards`` student GPUs (Tab. 8: FSDP; 6 GPUs a node, the teacher on the other 2):
      fp32 master weights, fp32 gradients and AdamW's two fp32 moments, 16 bytes a parameter, sharded; plus the
      bf16 copy of the largest unsharded module at a time, the (untied) lm_head, and its bf16 gradient;
    - gradient checkpointing per layer (preset=paper): each layer's bf16 input kept (2 bytes x tokens x hidden x
      layers), and one layer recomputed at a time: 34 bytes x tokens x hidden (Korthikanti et al. 2022, attention
      scores not stored: flash attention) plus its MLP's 3 bf16 intermediates;
    - logits: bf16, tokens x vocab (padding removed); flash-attn's cross-entropy writes their gradient in place;
    - entropy: chunked (``entropy_from_logits_with_chunking``): three fp32 chunk x vocab temporaries; unchunked,
      three fp32 tokens x vocab;
    - vLLM's memory is released while the actor trains (verl puts the rollout to sleep), so it is not added here
      (``estimate_from_config`` adds the rollout phase: the states next to vLLM's share).
    """
    states = 16 * shape.params / shards
    unsharded = 2 * 2 * shape.vocab * shape.hidden  # lm_head's bf16 weight and gradient
    checkpoints = 2 * tokens * shape.hidden * shape.layers
    layer = 34 * tokens * shape.hidden + 3 * 2 * tokens * shape.intermediate
    logits = 2 * tokens * shape.vocab
    entropy = 3 * 4 * min(tokens, entropy_chunk or tokens) * shape.vocab
    parts = {"states": states, "lm_head": unsharded, "checkpoints": checkpoints, "layer": layer,
             "logits": logits, "entropy": entropy}
    parts = {key: value / GB for key, value in parts.items()}
    parts["total"] = sum(parts.values())
    return parts


def estimate_from_config(config: DictConfig, scale: str | None = None) -> dict[str, float]:
    """The estimate for a composed run config: its student's shape, largest token budget and student GPU count."""
    scale = scale or scale_of(config.actor_rollout_ref.model.path)
    if scale not in QWEN3_5:
        raise ValueError(f"no shape for the student {config.actor_rollout_ref.model.path!r}")
    tokens = max(int(value) for value in token_budgets(config).values() if value is not None)
    shards = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes)
    actor = config.actor_rollout_ref.actor
    chunk = int(actor.get("entropy_from_logits_chunk_size", 2048)) if actor.get(
        "entropy_from_logits_with_chunking", False) else None
    estimate = memory_estimate(QWEN3_5[scale], tokens, shards, chunk)
    # During the rollout the student's sharded states stay on the GPU next to vLLM's share of it (weights and KV
    # cache, gpu_memory_utilization x the GPU); vLLM sleeps (frees it) before the update, so the two peaks differ.
    share = float(config.actor_rollout_ref.rollout.get("gpu_memory_utilization", 0.5))
    estimate["rollout_phase"] = estimate["states"] + share * GPU_GB
    return estimate
