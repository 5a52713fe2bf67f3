"""How much each prompt kind weighs in the update: the loss-aggregation ablation (pure: plain lists, no Ray).

With BCQ/NCQ groups in the batch, verl's token-mean divides the summed per-token loss by ALL response tokens of
the mini-batch, including those of zero-advantage groups (which add nothing to the numerator). Extra groups, often
flat in context, therefore shrink the gradient of the original prompts. ``zppo.update.loss_weighting`` chooses:

- ``verl`` (default): verl's own aggregation, untouched. A kind's weight is its share of the normaliser taken by
  its tokens that carry an advantage: ``tokens_k(adv != 0) / tokens(all)``; the weights sum to less than 1 when
  flat groups are present.
- ``exclude_zero_adv``: responses with advantage 0 everywhere leave the loss (their ``response_mask`` is zeroed),
  so the normaliser counts only tokens that carry a learning signal: ``tokens_k(adv != 0) / tokens(adv != 0)``.
- ``per_kind``: as ``exclude_zero_adv``, and every kind that carries a signal gets the same total weight
  ``1 / (number of such kinds)``, whatever its token count: each advantage of kind k is multiplied by
  ``tokens(adv != 0) / (K * tokens_k(adv != 0))``. Scaling an advantage by c > 0 scales its clipped PPO term by c.

The weights are computed on the step's whole batch; verl normalises per mini-batch, so with several mini-batches
the realised shares vary around them (exact with one). They need ``actor.loss_agg_mode=token-mean``; a response
"carries a signal" when any of its tokens has a non-zero advantage. Zeroing a flat response's mask also removes
it from the entropy and KL-loss terms and from the per-token metrics (say so when comparing those).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

MODES = ("verl", "exclude_zero_adv", "per_kind")


@dataclass
class LossWeights:
    """Per response: the advantage multiplier and whether it stays in the loss; per kind: its total weight."""

    multipliers: list[float]
    keep: list[bool]
    kind_weight: dict[str, float]


def loss_weights(kinds: Sequence[str], num_tokens: Sequence[int], has_signal: Sequence[bool], mode: str) -> LossWeights:
    if mode not in MODES:
        raise ValueError(f"zppo.update.loss_weighting={mode!r}: expected one of {MODES}")
    if not len(kinds) == len(num_tokens) == len(has_signal):
        raise ValueError("kinds, num_tokens and has_signal must have one entry per response")
    total = sum(num_tokens)
    signal_tokens: dict[str, int] = {}
    for kind, tokens, signal in zip(kinds, num_tokens, has_signal):
        signal_tokens.setdefault(kind, 0)
        if signal:
            signal_tokens[kind] += int(tokens)
    signal_total = sum(signal_tokens.values())

    if mode == "verl":
        weights = {k: (t / total if total else 0.0) for k, t in signal_tokens.items()}
        return LossWeights([1.0] * len(kinds), [True] * len(kinds), weights)

    keep = [bool(signal) for signal in has_signal]
    if mode == "exclude_zero_adv":
        weights = {k: (t / signal_total if signal_total else 0.0) for k, t in signal_tokens.items()}
        return LossWeights([1.0] * len(kinds), keep, weights)

    active = [k for k, t in signal_tokens.items() if t > 0]
    scale = {k: signal_total / (len(active) * signal_tokens[k]) for k in active}
    multipliers = [scale.get(kind, 1.0) if signal else 1.0 for kind, signal in zip(kinds, has_signal)]
    weights = {k: (1.0 / len(active) if k in scale else 0.0) for k in signal_tokens}
    return LossWeights(multipliers, keep, weights)
