"""The compute ledger: per-kind and cumulative counts, carried across a resume."""

from recipe.zppo.algo.compute_ledger import ComputeLedger


def test_step_and_cumulative_counts_per_kind():
    ledger = ComputeLedger()
    ledger.add("original", prompt_tokens=10, generated_tokens=5)
    ledger.add("original", prompt_tokens=10, generated_tokens=7)
    ledger.add("bcq", prompt_tokens=40, generated_tokens=9)
    first = ledger.close_step()
    assert first["zppo/compute/original/rollouts"] == 2 and first["zppo/compute/original/generated_tokens"] == 12
    assert first["zppo/compute/bcq/prompt_tokens"] == 40
    assert first["zppo/compute/generated_tokens"] == 21 and first["zppo/compute/cum_generated_tokens"] == 21
    ledger.add("ncq", prompt_tokens=30, generated_tokens=4, rollouts=1)
    second = ledger.close_step()
    # A step reports only its own kinds, and the cumulative totals keep growing.
    assert "zppo/compute/original/rollouts" not in second
    assert second["zppo/compute/rollouts"] == 1 and second["zppo/compute/cum_rollouts"] == 4
    assert second["zppo/compute/cum_prompt_tokens"] == 90


def test_totals_survive_a_checkpoint_round_trip():
    ledger = ComputeLedger()
    ledger.add("replay", prompt_tokens=3, generated_tokens=2)
    ledger.close_step()
    resumed = ComputeLedger()
    resumed.load_state_dict(ledger.state_dict())
    resumed.add("replay", prompt_tokens=1, generated_tokens=1)
    metrics = resumed.close_step()
    assert metrics["zppo/compute/cum_generated_tokens"] == 3 and metrics["zppo/compute/cum_rollouts"] == 2
    assert resumed.total("prompt_tokens", kind="replay") == 4
    empty = ComputeLedger()
    empty.load_state_dict(None)  # a checkpoint from before the ledger existed
    assert empty.close_step()["zppo/compute/cum_rollouts"] == 0
