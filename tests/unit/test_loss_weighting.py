"""The loss-aggregation ablation: per-kind weights against a hand computation on a fixed batch."""

import pytest

from recipe.zppo.algo.loss_weighting import loss_weights

# A fixed batch: 2 original responses (10 and 30 tokens, one of them flat), 2 BCQ (20 + 20, both with signal),
# 1 NCQ (20 tokens, flat: its group was all wrong in context).
KINDS = ["original", "original", "bcq", "bcq", "ncq"]
TOKENS = [10, 30, 20, 20, 20]
SIGNAL = [True, False, True, True, False]


def test_verl_default_lets_flat_groups_shrink_the_other_kinds():
    w = loss_weights(KINDS, TOKENS, SIGNAL, "verl")
    # normaliser: all 100 tokens; signal tokens: original 10, bcq 40, ncq 0
    assert w.kind_weight == pytest.approx({"original": 0.10, "bcq": 0.40, "ncq": 0.0})
    assert w.multipliers == [1.0] * 5 and all(w.keep)


def test_excluding_flat_responses_from_the_normaliser():
    w = loss_weights(KINDS, TOKENS, SIGNAL, "exclude_zero_adv")
    # normaliser: the 50 signal tokens only
    assert w.kind_weight == pytest.approx({"original": 0.2, "bcq": 0.8, "ncq": 0.0})
    assert w.keep == SIGNAL and w.multipliers == [1.0] * 5


def test_per_kind_gives_each_kind_with_a_signal_the_same_weight():
    w = loss_weights(KINDS, TOKENS, SIGNAL, "per_kind")
    # two kinds carry a signal (original 10 tokens, bcq 40): each gets 1/2, i.e. multipliers 50/(2*10), 50/(2*40)
    assert w.kind_weight == pytest.approx({"original": 0.5, "bcq": 0.5, "ncq": 0.0})
    assert w.multipliers == pytest.approx([2.5, 1.0, 0.625, 0.625, 1.0])
    assert w.keep == SIGNAL
    # What the update realises: sum over kept tokens of multiplier / normaliser, per kind.
    realised = {}
    for kind, tokens, keep, m in zip(KINDS, TOKENS, w.keep, w.multipliers):
        realised[kind] = realised.get(kind, 0.0) + (tokens * m / 50 if keep else 0.0)
    assert realised == pytest.approx({"original": 0.5, "bcq": 0.5, "ncq": 0.0})


def test_a_batch_without_any_signal_and_bad_input():
    w = loss_weights(["original"] * 2, [5, 5], [False, False], "per_kind")
    assert w.kind_weight == {"original": 0.0} and w.keep == [False, False]
    with pytest.raises(ValueError, match="loss_weighting"):
        loss_weights(KINDS, TOKENS, SIGNAL, "sequence")
    with pytest.raises(ValueError, match="one entry per response"):
        loss_weights(KINDS, TOKENS[:2], SIGNAL, "verl")
