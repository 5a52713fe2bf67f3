"""ZPPO advantage estimator (paper App. C, Eqs 2-3) against a plain NumPy reference, verl's GRPO, and its edge
cases: extreme and non-finite rewards, trivial groups, padded rows."""

from __future__ import annotations

import time
import uuid

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from omegaconf import DictConfig, OmegaConf

from recipe.zppo.algo.advantage import (
    NORM_MODES,
    AdvantageOptions,
    advantage_metrics,
    compute_zppo_outcome_advantage,
    read_advantage_options,
    zppo_scalar_advantages,
)

EPS = 1e-6


# ----------------------------------------------------------------------------------------------------------
# Independent reference: loops over rows and groups, written from the paper's App. C Eqs 2-3 and nothing else.
# ----------------------------------------------------------------------------------------------------------
def reference_advantages(scores, uids, valid, norm, eps=EPS, std_of="centred"):
    scores = np.asarray(scores, dtype=np.float64)
    out = np.zeros(len(scores))
    rows_of = {}
    for i, uid in enumerate(uids):
        if valid[i]:
            rows_of.setdefault(uid, []).append(i)
    mean = {u: np.mean([scores[i] for i in rows]) for u, rows in rows_of.items()}
    spread = {u: len(rows) >= 2 and max(scores[rows]) != min(scores[rows]) for u, rows in rows_of.items()}

    if norm == "group":
        for u, rows in rows_of.items():
            if len(rows) == 1:
                out[rows[0]] = scores[rows[0]] / (1.0 + eps)
            elif spread[u]:
                std = np.std(scores[rows], ddof=1)
                for i in rows:
                    out[i] = (scores[i] - mean[u]) / (std + eps)
        return out
    if norm == "none":
        for u, rows in rows_of.items():
            if spread[u]:
                for i in rows:
                    out[i] = scores[i] - mean[u]
        return out

    pool = []
    for u, rows in rows_of.items():
        if norm == "batch_all" or spread[u]:
            for i in rows:
                pool.append(scores[i] - mean[u] if std_of == "centred" else scores[i])
    if not any(spread.values()):
        return out
    std = np.std(pool)  # population std
    for u, rows in rows_of.items():
        if spread[u]:
            for i in rows:
                out[i] = (scores[i] - mean[u]) / (std + eps)
    return out


def random_batch(rng, binary, max_group=9, num_groups=40, pad_rows=0):
    """Shuffled rows of groups of mixed sizes (1..max_group), some zero-variance, plus padded rows."""
    uids, scores = [], []
    for g in range(num_groups):
        size = int(rng.integers(1, max_group + 1))
        uid = f"q{g}-{uuid.UUID(int=int(rng.integers(1 << 62)))}"
        kind = rng.random()
        if kind < 0.25:  # zero-variance group
            vals = np.full(size, float(rng.integers(0, 2)) if binary else float(rng.random()))
        elif binary:
            vals = rng.integers(0, 2, size).astype(float)
        else:
            vals = rng.normal(size=size)
        uids += [uid] * size
        scores += list(vals)
    valid = [True] * len(scores)
    for _ in range(pad_rows):  # verl pads with copies of a real uid, zero reward, zero mask
        uids.append(uids[int(rng.integers(len(uids)))])
        scores.append(0.0)
        valid.append(False)
    order = rng.permutation(len(scores))
    return (
        np.array(scores)[order],
        np.array(uids, dtype=object)[order],
        np.array(valid)[order],
    )


def as_token_batch(scores, valid, length=6, rng=None, dtype=torch.float32):
    """Token-level tensors as verl passes them: reward on the last real token, zero masks for padded rows."""
    rng = rng or np.random.default_rng(0)
    b = len(scores)
    mask = torch.zeros(b, length, dtype=dtype)
    rewards = torch.zeros(b, length, dtype=dtype)
    for i in range(b):
        if valid[i]:
            n = int(rng.integers(1, length + 1))
            mask[i, :n] = 1
            rewards[i, n - 1] = float(scores[i])
    return rewards, mask


# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("norm", NORM_MODES)
@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("std_of", ["centred", "reward"])
@pytest.mark.parametrize("seed", range(4))
def test_scalar_advantages_match_reference(norm, binary, std_of, seed):
    rng = np.random.default_rng(seed)
    scores, uids, valid = random_batch(rng, binary, pad_rows=5)
    got = zppo_scalar_advantages(
        torch.tensor(scores, dtype=torch.float64), uids, torch.tensor(valid), norm=norm, std_of=std_of
    )
    want = reference_advantages(scores, uids, valid, norm, std_of=std_of)
    assert got.dtype == torch.float64
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10, atol=1e-12)
    assert not torch.isnan(got).any()


@settings(max_examples=60, deadline=None)
@given(
    groups=st.lists(
        st.lists(st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.25]), min_size=1, max_size=6), min_size=1, max_size=8
    ),
    pads=st.integers(0, 3),
    norm=st.sampled_from(NORM_MODES),
)
def test_property_matches_reference(groups, pads, norm):
    uids = [f"u{g}" for g, rows in enumerate(groups) for _ in rows] + ["u0"] * pads
    scores = [s for rows in groups for s in rows] + [0.0] * pads
    valid = [True] * (len(scores) - pads) + [False] * pads
    got = zppo_scalar_advantages(torch.tensor(scores, dtype=torch.float64), np.array(uids), torch.tensor(valid), norm)
    np.testing.assert_allclose(got.numpy(), reference_advantages(scores, uids, valid, norm), rtol=1e-10, atol=1e-12)


def test_batch_nonzero_by_hand():
    # Group a: one success in four (mean 0.25). b: all right, c: all wrong (zero variance), d: a lone response.
    uids = ["a"] * 4 + ["b"] * 4 + ["c"] * 2 + ["d"]
    scores = torch.tensor([1.0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 1])
    adv = zppo_scalar_advantages(scores, np.array(uids), norm="batch_nonzero", epsilon=0.0)
    std = np.sqrt((0.75**2 + 3 * 0.25**2) / 4)  # population std of group a's centred rewards only
    expected = [0.75 / std] + [-0.25 / std] * 3 + [0.0] * 7
    np.testing.assert_allclose(adv.numpy(), expected, rtol=1e-6)
    # batch_all: the seven zeros of b, c and d join the pool and shrink the std (so advantages grow).
    adv_all = zppo_scalar_advantages(scores, np.array(uids), norm="batch_all", epsilon=0.0)
    std_all = np.sqrt((0.75**2 + 3 * 0.25**2) / 11)
    np.testing.assert_allclose(adv_all.numpy()[:4], [0.75 / std_all] + [-0.25 / std_all] * 3, rtol=1e-6)
    # none: centring only.
    adv_none = zppo_scalar_advantages(scores, np.array(uids), norm="none")
    np.testing.assert_allclose(adv_none.numpy(), [0.75, -0.25, -0.25, -0.25] + [0.0] * 7)


@pytest.mark.parametrize("norm", NORM_MODES)
def test_all_groups_zero_variance_give_zeros(norm):
    uids = np.array(["a"] * 3 + ["b"] * 3 + ["c"] * 2)
    # 0.1 three times: the float mean is not exactly 0.1, a naive (r - mean) / eps would explode.
    scores = torch.tensor([0.1, 0.1, 0.1, 1.0, 1.0, 1.0, 0.0, 0.0])
    adv = zppo_scalar_advantages(scores, uids, norm=norm)
    assert torch.equal(adv, torch.zeros_like(adv))


def test_single_response_groups():
    uids = np.array(["a", "b", "c", "c"])
    scores = torch.tensor([0.7, 1.0, 1.0, 0.0])
    assert zppo_scalar_advantages(scores, uids, norm="batch_nonzero")[:2].tolist() == [0.0, 0.0]
    assert zppo_scalar_advantages(scores, uids, norm="none")[:2].tolist() == [0.0, 0.0]
    group = zppo_scalar_advantages(scores, uids, norm="group")
    torch.testing.assert_close(group[:2], torch.tensor([0.7, 1.0]) / (1 + EPS))
    # Only singletons: batch_nonzero has no scale and gives zeros.
    lone = zppo_scalar_advantages(torch.tensor([1.0, 0.0]), np.array(["x", "y"]))
    assert torch.equal(lone, torch.zeros(2))


@pytest.mark.parametrize("norm", NORM_MODES)
def test_padded_rows_excluded_and_zero(norm):
    rng = np.random.default_rng(7)
    scores, uids, valid = random_batch(rng, binary=True, pad_rows=0)
    rewards, mask = as_token_batch(scores, valid, rng=rng)
    config = {"zppo": {"norm": norm}}
    base, _ = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=config, index=uids)

    # verl-style padding: copies of real uids (here every uid, turning lone responses into pairs), zero
    # reward, zero mask. Real rows must be unchanged, padded rows all zero.
    pad_uids = np.array(list(dict.fromkeys(uids)), dtype=object)
    rewards_p = torch.cat([rewards, torch.zeros(len(pad_uids), rewards.shape[1])])
    mask_p = torch.cat([mask, torch.zeros(len(pad_uids), mask.shape[1])])
    padded, returns = compute_zppo_outcome_advantage(
        token_level_rewards=rewards_p, response_mask=mask_p, config=config, index=np.concatenate([uids, pad_uids])
    )
    torch.testing.assert_close(padded[: len(uids)], base, rtol=0, atol=0)
    assert torch.equal(padded[len(uids) :], torch.zeros_like(padded[len(uids) :]))
    assert torch.equal(padded, returns)
    # Metrics see only real rows.
    m_base = advantage_metrics(rewards, mask, uids, config)
    m_pad = advantage_metrics(rewards_p, mask_p, np.concatenate([uids, pad_uids]), config)
    assert m_pad["zppo/adv/num_padded"] == len(pad_uids) and m_base["zppo/adv/num_padded"] == 0
    for key in ("num_groups", "zero_variance_group_frac", "abs_mean", "num_valid"):
        assert m_pad["zppo/adv/" + key] == pytest.approx(m_base["zppo/adv/" + key])


def test_token_broadcast_and_masked_tokens_exactly_zero():
    rng = np.random.default_rng(3)
    scores, uids, valid = random_batch(rng, binary=False, pad_rows=4)
    rewards, mask = as_token_batch(scores, valid, length=9, rng=rng)
    adv, ret = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, index=uids)
    assert adv.shape == mask.shape and ret.shape == mask.shape
    assert torch.equal(adv[mask == 0], torch.zeros_like(adv[mask == 0]))
    scalar = reference_advantages(scores, uids, valid, "batch_nonzero")
    for i in range(len(scores)):
        row = adv[i][mask[i] == 1]
        np.testing.assert_allclose(row.numpy(), np.full(row.shape, scalar[i]), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "config, expected",
    [
        (None, AdvantageOptions()),
        ({}, AdvantageOptions()),
        ({"zppo": {"norm": "group"}}, AdvantageOptions(norm="group")),
        ({"zppo": {"norm": "none", "epsilon": 0.01}}, AdvantageOptions(norm="none", epsilon=0.01)),
        (
            OmegaConf.create({"adv_estimator": "zppo", "zppo": {"norm": "batch_all"}}),
            AdvantageOptions(norm="batch_all"),
        ),
        (OmegaConf.create({"adv_estimator": "zppo", "zppo": {"std_of": "reward"}}), AdvantageOptions(std_of="reward")),
        (OmegaConf.create({"gamma": 1.0}), AdvantageOptions()),
    ],
)
def test_config_forms(config, expected):
    if isinstance(config, DictConfig):
        OmegaConf.set_struct(config, True)  # verl's composed configs are struct: unknown keys must not raise
    assert read_advantage_options(config) == expected


@pytest.mark.parametrize("norm", NORM_MODES)
def test_config_selects_mode(norm):
    rng = np.random.default_rng(11)
    scores, uids, valid = random_batch(rng, binary=True, pad_rows=2)
    rewards, mask = as_token_batch(scores, valid, rng=rng, dtype=torch.float64)
    cfg = OmegaConf.create({"adv_estimator": "zppo", "zppo": {"norm": norm, "epsilon": 1e-3}})
    adv, _ = compute_zppo_outcome_advantage(
        token_level_rewards=rewards, response_mask=mask, config=cfg, index=uids, reward_baselines=None
    )
    want = reference_advantages(scores, uids, valid, norm, eps=1e-3)
    # Every real row has its first token unmasked (see as_token_batch); padded rows are all zero.
    np.testing.assert_allclose(adv[:, 0].numpy(), want, rtol=1e-12, atol=1e-12)


def test_unknown_norm_names_the_key():
    with pytest.raises(ValueError, match=r"algorithm\.zppo\.norm"):
        compute_zppo_outcome_advantage(
            token_level_rewards=torch.zeros(2, 3),
            response_mask=torch.ones(2, 3),
            config={"zppo": {"norm": "batch_nonzeros"}},
            index=np.array(["a", "a"]),
        )
    with pytest.raises(ValueError, match=r"algorithm\.zppo\.std_of"):
        read_advantage_options({"zppo": {"std_of": "raw"}})
    with pytest.raises(ValueError, match="index"):
        compute_zppo_outcome_advantage(token_level_rewards=torch.zeros(2, 3), response_mask=torch.ones(2, 3))


@pytest.mark.parametrize("binary", [True, False])
@pytest.mark.parametrize("seed", range(3))
def test_group_mode_equals_verl_grpo(binary, seed):
    from verl.trainer.ppo.core_algos import compute_grpo_outcome_advantage

    rng = np.random.default_rng(100 + seed)
    scores, uids, valid = random_batch(rng, binary=binary, pad_rows=0)
    rewards, mask = as_token_batch(scores, valid, rng=rng)
    verl_adv, verl_ret = compute_grpo_outcome_advantage(
        token_level_rewards=rewards.clone(), response_mask=mask, index=uids, epsilon=EPS
    )
    adv, ret = compute_zppo_outcome_advantage(
        token_level_rewards=rewards, response_mask=mask, config={"zppo": {"norm": "group"}}, index=uids
    )
    assert adv.dtype == verl_adv.dtype
    # One deliberate difference: a zero-variance group of equal non-dyadic rewards (0.37, 0.37, 0.37) gets
    # exactly 0 here, while verl divides the float residue of `r - mean` by epsilon (up to ~0.1). Binary
    # rewards have no residue, so there the results agree everywhere.
    rows = {}
    for i, u in enumerate(uids):
        rows.setdefault(u, []).append(i)
    flat = [i for r in rows.values() if len(r) > 1 and len(set(scores[r])) == 1 for i in r]
    if binary:
        assert torch.equal(verl_adv[flat], torch.zeros_like(verl_adv[flat]))
    assert torch.equal(adv[flat], torch.zeros_like(adv[flat]))
    adv[flat], ret[flat] = verl_adv[flat], verl_ret[flat]
    torch.testing.assert_close(adv, verl_adv, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(ret, verl_ret, rtol=1e-5, atol=1e-6)


def test_metrics_by_hand():
    uids = np.array(["a"] * 4 + ["b"] * 4 + ["c"])
    scores = [1.0, 0, 0, 0, 1, 1, 1, 1, 1]
    rewards, mask = as_token_batch(scores, [True] * 9)
    m = advantage_metrics(rewards, mask, uids)
    std = np.sqrt((0.75**2 + 3 * 0.25**2) / 4)
    assert m["zppo/adv/num_groups"] == 3
    assert m["zppo/adv/zero_variance_group_frac"] == pytest.approx(2 / 3)
    assert m["zppo/adv/singleton_group_frac"] == pytest.approx(1 / 3)
    assert m["zppo/adv/batch_std"] == pytest.approx(std, rel=1e-6)
    assert m["zppo/adv/abs_mean"] == pytest.approx((0.75 + 0.75) / std / 9, rel=1e-5)
    assert m["zppo/adv/nonzero_frac"] == pytest.approx(4 / 9)
    group = advantage_metrics(rewards, mask, uids, {"zppo": {"norm": "group"}}, prefix="")
    assert group["batch_std"] == 0.0 and group["nonzero_frac"] == pytest.approx(4 / 9 + 1 / 9)  # lone c: raw 1
    tuples = advantage_metrics(rewards, mask, [("a", 1)] * 4 + [("b", 1)] * 4 + [("c", 2)])
    assert tuples["zppo/adv/num_groups"] == 3


def test_speed_100k_responses():
    rng = np.random.default_rng(0)
    batch, n = 100_000, 8
    uids = np.array([str(uuid.UUID(int=int(rng.integers(1 << 62)))) for _ in range(batch // n)], dtype=object)
    uids = np.repeat(uids, n)
    rewards = torch.zeros(batch, 4)
    rewards[:, -1] = torch.from_numpy(rng.integers(0, 2, batch).astype(np.float32))
    mask = torch.ones(batch, 4)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, index=uids)
        best = min(best, time.perf_counter() - start)
    assert best < 0.5, f"100K responses took {best:.3f}s"


def test_a_mask_starting_with_zeros_is_still_a_response():
    # Multi-turn masks can start with masked tokens; only an all-zero mask marks a padded row.
    uids = np.array(["a", "a", "a", "b", "b"], dtype=object)
    rewards = torch.zeros(5, 6)
    rewards[[0, 2, 3], 5] = 1.0
    mask = torch.ones(5, 6, dtype=torch.int64)
    mask[1, :3] = 0  # a response whose first tokens are masked
    mask[4] = 0  # padding (uid "b" has one real response)
    adv, _ = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, index=uids,
                                            config={"zppo": {"norm": "group"}})
    scalar = reference_advantages([1.0, 0.0, 1.0, 1.0, 0.0], uids, np.array([True] * 4 + [False]), "group")
    torch.testing.assert_close(adv, torch.tensor(scalar, dtype=torch.float32)[:, None] * mask, rtol=1e-6, atol=1e-7)
    assert adv[1, 3] < 0 < adv[0, 0]  # row 1 is in its group's statistics, not dropped as padding


# ----------------------------------------------------------------------------------------------------------
# Guarantees: finite advantages for any finite rewards, exact zeros on masked tokens, errors on non-finite rewards
# ----------------------------------------------------------------------------------------------------------
def token_batch(groups, pads=0, length=4, dtype=torch.float64):
    """verl-style tensors: each group's rewards on the last token of full-length responses, then ``pads`` rows
    with zero mask and zero reward under the first uid (as verl pads a batch)."""
    uids = [f"u{g}" for g, rows in enumerate(groups) for _ in rows] + ["u0"] * pads
    scores = [s for rows in groups for s in rows]
    rewards = torch.zeros(len(uids), length, dtype=dtype)
    rewards[: len(scores), -1] = torch.tensor(scores, dtype=dtype)
    mask = torch.zeros(len(uids), length, dtype=torch.int64)
    mask[: len(scores), 1:] = 1  # the first token masked (as in a multi-turn mask); the rest are response
    return rewards, mask, np.array(uids, dtype=object)


def assert_sound(adv, ret, mask):
    assert torch.isfinite(adv).all(), adv
    assert torch.equal(adv, ret)
    assert (adv[mask == 0] == 0.0).all()


finite_reward_st = st.one_of(
    st.sampled_from([0.0, 1.0, -1.0, 0.5, 1e300, -1e300, 1e-300, -1e-300, 5e-324, 1.7e308, -1.7e308]),
    st.floats(allow_nan=False, allow_infinity=False),
)


@settings(max_examples=200, deadline=None)
@given(
    groups=st.lists(st.lists(finite_reward_st, min_size=1, max_size=5), min_size=1, max_size=6),
    pads=st.integers(0, 2),
    norm=st.sampled_from(NORM_MODES),
    std_of=st.sampled_from(["centred", "reward"]),
    epsilon=st.sampled_from([0.0, 1e-6, 1.0]),
)
def test_any_finite_rewards_give_finite_advantages(groups, pads, norm, std_of, epsilon):
    rewards, mask, uids = token_batch(groups, pads)
    config = {"zppo": {"norm": norm, "std_of": std_of, "epsilon": epsilon}}
    adv, ret = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=config,
                                              index=uids)
    assert_sound(adv, ret, mask)
    metrics = advantage_metrics(rewards, mask, uids, config)
    assert all(np.isfinite(value) for value in metrics.values()), metrics


@pytest.mark.parametrize("norm", NORM_MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_extreme_magnitudes_trivial_groups_and_padding(norm, dtype):
    big = 3e38 if dtype == torch.float32 else 1e300
    tiny = 1e-38 if dtype == torch.float32 else 1e-300
    cases = {
        "huge": [[big, -big, big], [big, 0.0]],
        "tiny": [[tiny, -tiny, 0.0], [tiny]],
        "huge and tiny": [[big, tiny], [tiny, -tiny], [-big]],
        "lone responses": [[1.0], [big], [-tiny]],
        "all equal": [[big] * 3, [tiny] * 2, [0.1] * 3],
    }
    for name, groups in cases.items():
        rewards, mask, uids = token_batch(groups, pads=3, dtype=dtype)
        adv, ret = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask,
                                                  config={"zppo": {"norm": norm}}, index=uids)
        assert adv.dtype == dtype
        assert_sound(adv, ret, mask)
        assert torch.equal(adv[-3:], torch.zeros_like(adv[-3:])), name  # padded rows, wholly masked
    # Every group trivial (equal rewards or one response): nothing to learn, all zero (lone ones keep their
    # reward under `group`, as in verl's GRPO).
    rewards, mask, uids = token_batch([[big] * 3, [tiny] * 2, [0.1] * 3, [2.0]], pads=2, dtype=dtype)
    adv, _ = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask,
                                            config={"zppo": {"norm": norm}}, index=uids)
    expected = torch.zeros_like(adv)
    if norm == "group":
        expected[8] = mask[8] * 2.0 / (1 + EPS)
    torch.testing.assert_close(adv, expected, rtol=1e-6, atol=0)


@pytest.mark.parametrize("norm", ["batch_nonzero", "batch_all", "group"])
@pytest.mark.parametrize("factor", [1e300, 1e-300, 1e-310])
def test_scaled_rewards_give_the_same_advantages(norm, factor):
    # Without epsilon the scaled modes do not depend on the rewards' unit: no overflow or underflow on the way.
    groups = [[1.0, 0.0, 0.0, 1.0], [0.25, 0.5, 0.75], [1.0, 1.0], [3.0, -1.0]]
    config = {"zppo": {"norm": norm, "epsilon": 0.0}}
    rewards, mask, uids = token_batch(groups)
    want, _ = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=config,
                                             index=uids)
    got, _ = compute_zppo_outcome_advantage(token_level_rewards=rewards * factor, response_mask=mask, config=config,
                                            index=uids)
    subnormal = factor < 1e-308  # the rewards keep only a few significant bits
    torch.testing.assert_close(got, want, rtol=1e-2 if subnormal else 1e-6, atol=1e-2 if subnormal else 0)


def test_rewards_whose_sum_overflows_are_still_finite():
    # Finite token rewards whose row sum leaves the dtype's range (two 1e308 on one response).
    for dtype, big in ((torch.float64, 1e308), (torch.float32, 3e38)):
        rewards = torch.zeros(4, 3, dtype=dtype)
        rewards[0, 1:] = big
        rewards[1, 2] = big
        rewards[2, 2] = -big
        mask = torch.ones(4, 3)
        uids = np.array(["a", "a", "a", "b"], dtype=object)
        for norm in NORM_MODES:
            adv, ret = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask,
                                                      config={"zppo": {"norm": norm}}, index=uids)
            assert adv.dtype == dtype
            assert_sound(adv, ret, mask)
            assert adv[0, 0] > adv[1, 0] > adv[2, 0] or norm == "none"  # the order of the scores is kept
            assert adv[0, 0] > 0 > adv[2, 0]


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_rewards_raise_with_their_rows(bad):
    rewards, mask, uids = token_batch([[1.0, 0.0], [0.0, 1.0, 1.0], [1.0]])
    rewards[1, 0] = bad  # on a masked token: still an error
    rewards[4, 3] = bad
    with pytest.raises(ValueError, match=r"non-finite rewards \(NaN or inf\) in 2 row\(s\): 1, 4$") as error:
        compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, index=uids)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match="in 2 row"):
        advantage_metrics(rewards, mask, uids)
    with pytest.raises(ValueError, match=r"in 1 row\(s\): 2$"):
        zppo_scalar_advantages(torch.tensor([0.0, 1.0, bad]), np.array(["a", "a", "b"]))


def test_inf_plus_minus_inf_on_one_row_raises():
    rewards = torch.zeros(3, 2)
    rewards[2] = torch.tensor([float("inf"), -float("inf")])  # the row sums to NaN
    with pytest.raises(ValueError, match=r"in 1 row\(s\): 2$"):
        compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=torch.ones(3, 2),
                                       index=np.array(["a", "a", "a"]))


def test_many_bad_rows_are_listed_briefly():
    rewards = torch.full((30, 2), float("nan"))
    with pytest.raises(ValueError, match=r"in 30 row\(s\): 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, \.\.\.$"):
        compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=torch.ones(30, 2),
                                       index=np.zeros(30))
