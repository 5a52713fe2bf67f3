"""Register ZPPO's pieces with verl's registries (called by the ``verl.plugins`` entry point in every process)."""

from __future__ import annotations


def register_with_verl() -> None:
    from verl.trainer.ppo import core_algos

    from .advantage import compute_zppo_outcome_advantage

    if core_algos.ADV_ESTIMATOR_REGISTRY.get("zppo") is not compute_zppo_outcome_advantage:
        core_algos.register_adv_est("zppo")(compute_zppo_outcome_advantage)
