"""Register ZPPO's pieces with verl's registries (called by the ``verl.plugins`` entry point in every process).

verl's V1 trainer runs inside a Ray actor (the task runner) and the advantage is computed there; registering in
the plugin, which verl imports in every process, is what makes ``algorithm.adv_estimator=zppo`` and
``trainer.v1.trainer_mode=zppo`` resolvable wherever verl looks them up.
"""

from __future__ import annotations


def register_with_verl() -> None:
    from verl.trainer.ppo import core_algos

    from .advantage import compute_zppo_outcome_advantage

    if core_algos.ADV_ESTIMATOR_REGISTRY.get("zppo") is not compute_zppo_outcome_advantage:
        core_algos.register_adv_est("zppo")(compute_zppo_outcome_advantage)

    from . import zppo_trainer  # noqa: F401  (registers the "zppo" trainer with register_trainer)
