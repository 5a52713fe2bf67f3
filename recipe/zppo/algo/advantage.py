"""ZPPO's advantage estimator (SPEC step 7): centre on the group mean, scale by one batch-level std.

Why not plain GRPO: GRPO divides each group by its own std, so a group with 1 correct answer out of 8 and a
group with 4 out of 8 get advantages of the same size, and a group whose rewards are all equal gives zeros that
carry no signal. ZPPO puts many such groups in a batch on purpose (hard questions, their BCQ/NCQ
reformulations), so it uses one scale for the whole batch, measured only where there is signal:

    A_i = (r_i - mean_{g(i)}) / (std_nonzero + epsilon)

``std_nonzero`` is the POPULATION std of the centred rewards ``r_i - mean_{g(i)}`` over the responses of
groups whose rewards are not all equal. Why the centred values and not the raw rewards (the paper says only
"batch standard deviation that excludes zero-advantage groups"):

* "zero-advantage groups" are defined on the centred values; excluding them means excluding values that are
  exactly 0, which would otherwise shrink the scale in proportion to how many hard questions the batch holds;
* the centred values of the kept groups have mean 0, so this std is the pooled within-group spread: the
  contrast between responses to the SAME prompt, which is the only thing an advantage carries. A std of the
  raw rewards would also count the spread between prompt difficulties (between-group variance);
* verl's own group-centred batch-normalised estimator (REINFORCE++-baseline) whitens the centred values too.

The raw-reward reading stays available as ``algorithm.zppo.std_of=reward``.

Every variant (``algorithm.zppo.norm``):

* ``batch_nonzero`` (default, the paper's best): as above; a group of one response is a zero-variance group
  and gets 0; when every group is zero-variance there is no scale and every advantage is 0.
* ``batch_all``: the same, with the std taken over every valid response (zero-variance groups included).
* ``group``: exactly verl's GRPO: per-group mean and UNBIASED std (``torch.std``) plus epsilon; a group of one
  response gets mean 0 and std 1, so its advantage is its raw reward (divided by 1 + epsilon, as in verl).
* ``none``: centring only (Dr. GRPO-like, no scale).

In every mode a zero-variance group of two or more responses gets exactly 0 (never a float residue of
``r - mean(r, r, r)`` divided by epsilon, never NaN), and rows that verl pads into the batch (all-zero
response mask) are left out of every statistic and get 0.

Everything is vectorised: groups are factorised once (hash-based, see ``factorize_groups``) and every per-group
statistic is a scatter-add, so 100K responses cost a few milliseconds plus the factorisation. Statistics are
taken in float64 and the result is cast back to the rewards' dtype. At 100K responses x 1,024 tokens the time
goes to the token-level tensors (summing the rewards, writing the output): the padding test reads one mask
column (plus the rows whose first entry is unset) and the output is written in one conversion and one in-place
scale (``benchmarks/bench_host.py`` measures it against verl's GRPO estimator).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

NORM_MODES = ("batch_nonzero", "batch_all", "group", "none")
STD_SOURCES = ("centred", "reward")

DEFAULT_NORM = "batch_nonzero"
# verl's GRPO default, so `group` reproduces it exactly.
DEFAULT_EPSILON = 1e-6
DEFAULT_STD_OF = "centred"

# Where the options live in verl's config tree (for error messages and docs).
CONFIG_PREFIX = "algorithm.zppo"


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class AdvantageOptions:
    """The estimator's options, read from ``algorithm.zppo`` (see ``read_advantage_options``)."""

    norm: str = DEFAULT_NORM
    epsilon: float = DEFAULT_EPSILON
    std_of: str = DEFAULT_STD_OF

    def __post_init__(self):
        if self.norm not in NORM_MODES:
            raise ValueError(f"{CONFIG_PREFIX}.norm={self.norm!r} is not one of {NORM_MODES}")
        if self.std_of not in STD_SOURCES:
            raise ValueError(f"{CONFIG_PREFIX}.std_of={self.std_of!r} is not one of {STD_SOURCES}")
        if not float(self.epsilon) >= 0.0:
            raise ValueError(f"{CONFIG_PREFIX}.epsilon must be >= 0, got {self.epsilon!r}")


@dataclass(frozen=True)
class AdvantageStats:
    """What one estimator call measured, for logging (valid rows only)."""

    num_valid: int
    num_padded: int
    num_groups: int
    num_zero_variance_groups: int
    num_singleton_groups: int
    # The batch-level std the advantages were divided by (before epsilon); None when the mode has no single
    # batch scale (`group`, `none`) or when there was nothing to measure it on.
    batch_std: float | None


def _get(container: Any, key: str) -> Any:
    """``container[key]`` for a dict, a DictConfig or an attribute-style config; None when absent."""
    if container is None:
        return None
    if isinstance(container, Mapping) or hasattr(container, "get"):
        try:
            return container.get(key)
        except Exception:  # a structured config that refuses unknown keys
            return None
    return getattr(container, key, None)


def read_advantage_options(config: Any = None) -> AdvantageOptions:
    """Options from verl's ``algorithm`` config: ``algorithm.zppo.{norm, epsilon, std_of}``.

    ``config`` may be None, a dict, an omegaconf DictConfig or an attribute-style dataclass; a missing
    ``zppo`` section or key means the default.
    """
    section = _get(config, "zppo")
    values = {}
    for key in ("norm", "epsilon", "std_of"):
        value = _get(section, key)
        if value is not None:
            values[key] = value
    if "epsilon" in values:
        values["epsilon"] = float(values["epsilon"])
    return AdvantageOptions(**values)


def factorize_groups(index: Any) -> torch.Tensor:
    """Group labels (uids: strings, ints, any hashable) -> contiguous int64 ids 0..G-1, without a Python loop.

    Uses pandas' hash-based factorisation (pandas is a dependency of verl), O(B) and about 4x faster than
    sorting 100K uid strings with ``np.unique``; falls back to ``np.unique`` inverse indices without pandas.
    Labels are equal when they compare equal (None is a label like any other).
    """
    if isinstance(index, torch.Tensor):
        return torch.unique(index.reshape(-1), return_inverse=True)[1].to(torch.long)
    labels = np.asarray(index)
    if labels.ndim != 1:  # e.g. tuple labels, which numpy would turn into a 2-D array
        labels = np.empty(len(index), dtype=object)
        labels[:] = list(index)
    try:
        import pandas

        codes = pandas.factorize(labels, use_na_sentinel=False)[0]
    except ImportError:
        try:
            codes = np.unique(labels, return_inverse=True)[1]
        except TypeError:  # mixed, unorderable label types: compare their text instead
            codes = np.unique(labels.astype(str), return_inverse=True)[1]
    return torch.from_numpy(np.asarray(codes).reshape(-1).astype(np.int64, copy=False))


def _compute(
    scores: torch.Tensor,
    group_ids: Any,
    valid: torch.Tensor | None,
    options: AdvantageOptions,
) -> tuple[torch.Tensor, AdvantageStats]:
    """Advantages and the statistics they were computed with. See the module docstring for the maths."""
    if scores.ndim != 1:
        raise ValueError(f"scores must be one scalar per response, got shape {tuple(scores.shape)}")
    batch = scores.shape[0]
    device = scores.device
    result_dtype = scores.dtype if scores.is_floating_point() else torch.float32

    gid = factorize_groups(group_ids).to(device)
    if gid.shape[0] != batch:
        raise ValueError(f"{gid.shape[0]} group ids for {batch} responses")
    valid = torch.ones(batch, dtype=torch.bool, device=device) if valid is None else valid.to(device).bool()

    with torch.no_grad():
        x = scores.detach().to(torch.float64)
        num_groups_total = int(gid.max().item()) + 1 if batch else 0
        # Padded rows go to one extra "dump" group so they never touch a real group's statistics.
        dump = num_groups_total
        g = torch.where(valid, gid, torch.full_like(gid, dump))
        slots = num_groups_total + 1

        count = torch.zeros(slots, dtype=torch.float64, device=device).index_add_(0, g, torch.ones_like(x))
        total = torch.zeros(slots, dtype=torch.float64, device=device).index_add_(0, g, x)
        mean = total / count.clamp_min(1.0)
        group_max = torch.full((slots,), -torch.inf, dtype=torch.float64, device=device).scatter_reduce_(
            0, g, x, reduce="amax"
        )
        group_min = torch.full((slots,), torch.inf, dtype=torch.float64, device=device).scatter_reduce_(
            0, g, x, reduce="amin"
        )
        # "Rewards not all equal" is tested exactly (max > min), not as std > tolerance: a group of equal
        # rewards must give exactly 0 whatever float residue its mean has.
        has_spread = (count >= 2) & (group_max > group_min)
        has_spread[dump] = False
        is_real = count > 0
        is_real[dump] = False

        centred = x - mean[g]
        row_has_spread = has_spread[g]
        zero = torch.zeros_like(x)
        batch_std: float | None = None

        if options.norm == "none":
            advantages = torch.where(row_has_spread, centred, zero)

        elif options.norm == "group":
            # verl's GRPO: unbiased per-group std; a lone response keeps its raw reward (mean 0, std 1).
            squares = torch.zeros(slots, dtype=torch.float64, device=device).index_add_(0, g, centred * centred)
            group_std = torch.sqrt(squares / (count - 1.0).clamp_min(1.0))
            lone = count[g] == 1
            advantages = torch.where(row_has_spread, centred / (group_std[g] + options.epsilon), zero)
            advantages = torch.where(lone, x / (1.0 + options.epsilon), advantages)

        else:
            # One batch scale. `batch_nonzero` measures it on groups with signal only, `batch_all` on every
            # valid response; either way only groups with signal get a non-zero advantage.
            measured_on = row_has_spread if options.norm == "batch_nonzero" else valid
            source = centred if options.std_of == "centred" else x
            values = source[measured_on]
            if values.numel() > 0 and bool(row_has_spread.any()):
                batch_std = float(torch.sqrt(torch.mean((values - values.mean()) ** 2)))
                advantages = torch.where(row_has_spread, centred / (batch_std + options.epsilon), zero)
            else:
                # Every group is zero-variance (or nothing is valid): there is no scale and nothing to learn.
                advantages = zero.clone()

        advantages = torch.where(valid, advantages, zero)

    lone_groups = is_real & (count == 1)
    stats = AdvantageStats(
        num_valid=int(valid.sum()),
        num_padded=int(batch - int(valid.sum())),
        num_groups=int(is_real.sum()),
        num_zero_variance_groups=int((is_real & ~has_spread).sum()),
        num_singleton_groups=int(lone_groups.sum()),
        batch_std=batch_std,
    )
    return advantages.to(result_dtype), stats


def zppo_scalar_advantages(
    scores: torch.Tensor,
    group_ids: Any,
    valid: torch.Tensor | None = None,
    norm: str = DEFAULT_NORM,
    epsilon: float = DEFAULT_EPSILON,
    std_of: str = DEFAULT_STD_OF,
) -> torch.Tensor:
    """One advantage per response.

    Args:
        scores: [B] scalar reward of each response.
        group_ids: [B] group label of each response (verl's uid strings, ints, or an int64 tensor).
        valid: [B] bool, False for rows verl padded into the batch; None means every row is real.
        norm: one of ``NORM_MODES`` (see the module docstring).
        epsilon: added to the std before dividing.
        std_of: ``"centred"`` (default) or ``"reward"``: which values the batch std is measured on.

    Returns:
        [B] advantages, dtype of ``scores``; 0 for padded rows and zero-variance groups.
    """
    options = AdvantageOptions(norm=norm, epsilon=float(epsilon), std_of=std_of)
    return _compute(scores, group_ids, valid, options)[0]


def _scores_and_valid(token_level_rewards: torch.Tensor, response_mask: torch.Tensor):
    # Outcome rewards sit on one token; the sum is the response's score, as in verl's GRPO.
    scores = token_level_rewards.sum(dim=-1)
    # verl pads the batch with rows whose response mask is all zero: they are not responses. A row whose first
    # mask entry is set is a response, so only the other rows (padding, rare odd masks) are scanned whole: a
    # full scan of a 100K x 1024 mask costs more than the rest of the estimator together.
    if response_mask.shape[-1] == 0:
        return scores, torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    valid = response_mask[:, 0] != 0
    unsure = (~valid).nonzero(as_tuple=True)[0]
    if unsure.numel():
        valid[unsure] = (response_mask[unsure] != 0).any(dim=-1)
    return scores, valid


def _broadcast_to_tokens(scalars: torch.Tensor, response_mask: torch.Tensor) -> torch.Tensor:
    """``scalars[:, None] * response_mask`` in the scalars' dtype: the mask is copied into the output and scaled
    in place, which avoids the slower mixed-dtype multiply (integer mask times float) and a converted copy."""
    out = torch.empty(response_mask.shape, dtype=scalars.dtype, device=scalars.device)
    return out.copy_(response_mask).mul_(scalars.unsqueeze(-1))


# Seconds spent in the estimator in this process since the trainer last asked (``take_estimator_seconds``):
# verl times its whole advantage phase (TransferQueue reads and writes included), not the estimator.
_estimator_seconds = 0.0


def take_estimator_seconds() -> float:
    """Seconds spent in ``compute_zppo_outcome_advantage`` in this process since the previous call."""
    global _estimator_seconds
    seconds, _estimator_seconds = _estimator_seconds, 0.0
    return seconds


def compute_zppo_outcome_advantage(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    config: Any = None,
    index: Any = None,
    **kwargs: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """verl advantage-estimator contract: ``(advantages, returns)``, both shaped like ``response_mask``.

    verl calls a registered estimator with keyword arguments ``token_level_rewards``, ``response_mask``,
    ``config`` (the ``algorithm`` config, may be None), ``index`` (the uids) and sometimes
    ``reward_baselines``; anything extra is accepted and ignored. Options come from ``algorithm.zppo``.
    Returns equal advantages and returns, as verl's outcome estimators do; masked tokens are exactly 0.
    """
    global _estimator_seconds
    if index is None:
        raise ValueError("the zppo advantage estimator needs `index` (the uid of each response's prompt)")
    start = time.perf_counter()
    options = read_advantage_options(config)
    scores, valid = _scores_and_valid(token_level_rewards, response_mask)
    scalars, _ = _compute(scores, index, valid, options)
    advantages = _broadcast_to_tokens(scalars, response_mask)
    _estimator_seconds += time.perf_counter() - start
    return advantages, advantages


def advantage_metrics(
    token_level_rewards: torch.Tensor,
    response_mask: torch.Tensor,
    index: Any,
    config: Any = None,
    prefix: str = "zppo/adv/",
) -> dict[str, float]:
    """Logging numbers for one batch, recomputed with the same options as the estimator (valid rows only).

    Keys (under ``prefix``): num_groups, zero_variance_group_frac, singleton_group_frac, batch_std (the std
    the advantages were divided by, epsilon excluded; 0.0 when the mode has no batch scale or the batch had
    none: always finite, so verl's metric reduction never sees a NaN), abs_mean (mean |advantage| over valid
    responses), nonzero_frac (share of valid responses with a non-zero advantage), num_valid, num_padded.
    """
    options = read_advantage_options(config)
    scores, valid = _scores_and_valid(token_level_rewards, response_mask)
    scalars, stats = _compute(scores, index, valid, options)
    kept = scalars[valid].to(torch.float64)
    groups = max(stats.num_groups, 1)
    metrics = {
        "num_groups": float(stats.num_groups),
        "zero_variance_group_frac": stats.num_zero_variance_groups / groups if stats.num_groups else 0.0,
        "singleton_group_frac": stats.num_singleton_groups / groups if stats.num_groups else 0.0,
        "batch_std": 0.0 if stats.batch_std is None else stats.batch_std,
        "abs_mean": float(kept.abs().mean()) if kept.numel() else 0.0,
        "nonzero_frac": float((kept != 0).to(torch.float64).mean()) if kept.numel() else 0.0,
        "num_valid": float(stats.num_valid),
        "num_padded": float(stats.num_padded),
    }
    return {prefix + key: value for key, value in metrics.items()}
