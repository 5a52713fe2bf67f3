"""ZPPO's advantage estimator: centre each reward on its group's mean, scale by one batch-level std.

The paper (App. C, Eqs 2-3) replaces GRPO's per-group std by one std for the whole batch, taken over the
responses of groups whose rewards are not all equal ("zero-advantage groups" are left out). A ZPPO batch holds
many such groups on purpose (hard questions and their BCQ/NCQ reformulations), and GRPO's per-group scaling
would make a 1-in-8 success look as large as a 4-in-8 one:

    A_i = (r_i - mean_{g(i)}) / (std_nonzero + epsilon)

``std_nonzero`` is the population std of the centred rewards ``r_i - mean_{g(i)}`` over those groups: the
pooled within-group spread, the contrast between responses to the same prompt (verl's REINFORCE++-baseline
whitens centred values the same way). ``algorithm.zppo.std_of=reward`` measures it on the raw rewards instead.

Modes (``algorithm.zppo.norm``): ``batch_nonzero`` (default, the paper's); ``batch_all`` (std over every
response); ``group`` (verl's GRPO exactly: per-group mean and unbiased std, a lone response keeps its reward
divided by 1 + epsilon); ``none`` (centring only). In every mode a group whose rewards are all equal gets
exactly 0 (so does a lone response outside ``group``), and rows verl pads into the batch (all-zero response
mask) are left out of every statistic and get 0. Advantages are finite for any finite rewards (statistics are
taken in float64 on rewards divided by their largest magnitude); a non-finite reward is an error.
"""

from __future__ import annotations

import sys
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


def _group_ids(index: Any) -> torch.Tensor:
    """Group labels (verl's uid strings, ints, tuples: anything hashable) -> int64 ids 0..G-1."""
    if isinstance(index, torch.Tensor):
        return torch.unique(index.reshape(-1), return_inverse=True)[1].to(torch.long)
    if isinstance(index, np.ndarray) and index.ndim > 1:  # e.g. tuple labels that numpy made a 2-D array
        index = [tuple(row) for row in index.tolist()]
    ids: dict[Any, int] = {}
    return torch.tensor([ids.setdefault(label, len(ids)) for label in index], dtype=torch.long)


def _nonfinite_error(rows: torch.Tensor) -> ValueError:
    listed = rows.tolist()
    shown = ", ".join(map(str, listed[:10])) + (", ..." if len(listed) > 10 else "")
    return ValueError(
        f"the zppo advantage estimator got non-finite rewards (NaN or inf) in {len(listed)} row(s): {shown}"
    )


def _compute(
    scores: torch.Tensor,
    group_ids: Any,
    valid: torch.Tensor | None,
    options: AdvantageOptions,
    unit: float = 1.0,
    dtype: torch.dtype | None = None,
) -> tuple[torch.Tensor, AdvantageStats]:
    """Advantages and the statistics they were computed with (see the module docstring for the maths).

    ``scores`` are in units of ``unit`` (1.0 unless the caller had to scale rewards whose sums overflow); the
    result has ``dtype`` (default: that of ``scores``, float32 for integer scores).
    """
    if scores.ndim != 1:
        raise ValueError(f"scores must be one scalar per response, got shape {tuple(scores.shape)}")
    batch = scores.shape[0]
    device = scores.device
    result_dtype = dtype or (scores.dtype if scores.is_floating_point() else torch.float32)

    gid = _group_ids(group_ids).to(device)
    if gid.shape[0] != batch:
        raise ValueError(f"{gid.shape[0]} group ids for {batch} responses")
    valid = torch.ones(batch, dtype=torch.bool, device=device) if valid is None else valid.to(device).bool()

    with torch.no_grad():
        x = scores.detach().to(torch.float64)
        bad = ~torch.isfinite(x)
        if bool(bad.any()):
            raise _nonfinite_error(bad.nonzero(as_tuple=True)[0])
        x = torch.where(valid, x, torch.zeros_like(x))
        # Work on rewards divided by their largest magnitude, so that no sum or square over- or underflows;
        # every statistic below is then in units of `scale`.
        largest = float(x.abs().max()) if batch else 0.0
        scale = largest if largest > 0.0 else 1.0
        x = x / scale
        epsilon = options.epsilon / scale / unit  # may be inf for tiny rewards: the advantage is then 0

        num_groups_total = int(gid.max()) + 1 if batch else 0
        # Padded rows go to one extra "dump" group so they never touch a real group's statistics.
        dump = num_groups_total
        g = torch.where(valid, gid, torch.full_like(gid, dump))
        slots = num_groups_total + 1

        def per_group(values: torch.Tensor, reduce: str = "sum", initial: float = 0.0) -> torch.Tensor:
            start = torch.full((slots,), initial, dtype=torch.float64, device=device)
            return start.scatter_reduce_(0, g, values, reduce=reduce)

        count = per_group(torch.ones_like(x))
        mean = per_group(x) / count.clamp_min(1.0)
        # "Rewards not all equal" is tested exactly (max > min): a group of equal rewards gets exactly 0
        # whatever float residue its mean has.
        has_spread = (count >= 2) & (per_group(x, "amax", -torch.inf) > per_group(x, "amin", torch.inf))
        has_spread[dump] = False
        is_real = count > 0
        is_real[dump] = False

        centred = x - mean[g]
        row_has_spread = has_spread[g]
        zero = torch.zeros_like(x)
        batch_std: float | None = None

        if options.norm == "none":
            advantages = torch.where(row_has_spread, centred * scale, zero)
        elif options.norm == "group":
            # verl's GRPO: unbiased per-group std; a lone response keeps its raw reward (mean 0, std 1).
            peak = per_group(centred.abs(), "amax")  # divided out so that no square underflows
            peak = torch.where(peak > 0, peak, torch.ones_like(peak))
            group_std = peak * torch.sqrt(per_group((centred / peak[g]) ** 2) / (count - 1.0).clamp_min(1.0))
            advantages = torch.where(row_has_spread, centred / (group_std[g] + epsilon), zero)
            lone = count[g] == 1
            advantages = torch.where(lone, x * scale / (1.0 + options.epsilon), advantages)
        else:
            # One batch scale, measured on groups with signal only (`batch_nonzero`) or on every valid response
            # (`batch_all`); either way only groups with signal get a non-zero advantage.
            measured_on = row_has_spread if options.norm == "batch_nonzero" else valid
            values = (centred if options.std_of == "centred" else x)[measured_on]
            if bool(row_has_spread.any()):
                peak = values.abs().max()  # divided out so that no square underflows
                std = float(peak * torch.sqrt(torch.mean((values / peak - (values / peak).mean()) ** 2)))
                batch_std = min(std * scale * unit, sys.float_info.max)
                advantages = torch.where(row_has_spread, centred / (std + epsilon), zero)
            else:  # every group is zero-variance (or nothing is valid): no scale and nothing to learn
                advantages = zero

        if options.norm in ("none", "group"):
            advantages = advantages * unit
        # Only `none` and a lone response under `group` can leave the dtype's range (they are not scaled).
        limit = torch.finfo(result_dtype).max
        advantages = torch.where(valid, advantages.clamp(-limit, limit), zero)

    stats = AdvantageStats(
        num_valid=int(valid.sum()),
        num_padded=int((~valid).sum()),
        num_groups=int(is_real.sum()),
        num_zero_variance_groups=int((is_real & ~has_spread).sum()),
        num_singleton_groups=int((is_real & (count == 1)).sum()),
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
        scores: [B] scalar reward of each response (finite).
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
    """Each response's score (the sum of its token rewards, as in verl's GRPO), the unit it is in, and which rows
    are responses (verl pads the batch with rows whose response mask is all zero)."""
    scores = token_level_rewards.sum(dim=-1)
    unit = 1.0
    bad = ~torch.isfinite(scores)
    if bool(bad.any()):
        rows = bad.nonzero(as_tuple=True)[0]
        nonfinite = rows[~torch.isfinite(token_level_rewards[rows]).all(dim=-1)]
        if nonfinite.numel():
            raise _nonfinite_error(nonfinite)
        # Finite rewards whose sum overflows: sum them again divided by the largest reward.
        unit = float(token_level_rewards.abs().max())
        scores = (token_level_rewards.to(torch.float64) / unit).sum(dim=-1)
    if response_mask.shape[-1] == 0:
        return scores, unit, torch.zeros(scores.shape, dtype=torch.bool, device=scores.device)
    # Scanning the whole mask costs more than the rest of the estimator: a row whose first entry is set is a
    # response, and only the other rows (padding, masks that start masked) are scanned.
    valid = response_mask[:, 0] != 0
    unsure = (~valid).nonzero(as_tuple=True)[0]
    if unsure.numel():
        valid[unsure] = (response_mask[unsure] != 0).any(dim=-1)
    return scores, unit, valid


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
    Raises ValueError when a reward is NaN or infinite.
    """
    if index is None:
        raise ValueError("the zppo advantage estimator needs `index` (the uid of each response's prompt)")
    options = read_advantage_options(config)
    scores, unit, valid = _scores_and_valid(token_level_rewards, response_mask)
    dtype = token_level_rewards.dtype if token_level_rewards.is_floating_point() else torch.float32
    scalars, _ = _compute(scores, index, valid, options, unit, dtype)
    # scalars[:, None] * response_mask, written as a copy and an in-place multiply: the mixed-dtype product
    # (integer mask times float) is slower on a paper-size batch (benchmarks/bench_host.py, advantage).
    advantages = torch.empty(response_mask.shape, dtype=dtype, device=scalars.device)
    advantages.copy_(response_mask).mul_(scalars.unsqueeze(-1))
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
    scores, unit, valid = _scores_and_valid(token_level_rewards, response_mask)
    dtype = token_level_rewards.dtype if token_level_rewards.is_floating_point() else torch.float32
    scalars, stats = _compute(scores, index, valid, options, unit, dtype)
    kept = scalars[valid].to(torch.float64)
    groups = max(stats.num_groups, 1)
    metrics = {
        "num_groups": float(stats.num_groups),
        "zero_variance_group_frac": stats.num_zero_variance_groups / groups if stats.num_groups else 0.0,
        "singleton_group_frac": stats.num_singleton_groups / groups if stats.num_groups else 0.0,
        "batch_std": 0.0 if stats.batch_std is None else stats.batch_std,
        "abs_mean": float((kept.abs() / kept.numel()).sum()) if kept.numel() else 0.0,  # no overflow
        "nonzero_frac": float((kept != 0).to(torch.float64).mean()) if kept.numel() else 0.0,
        "num_valid": float(stats.num_valid),
        "num_padded": float(stats.num_padded),
    }
    return {prefix + key: value for key, value in metrics.items()}
