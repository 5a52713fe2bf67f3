"""Register ZPPO's pieces with verl's registries (called by the ``verl.plugins`` entry point in every process).

verl's V1 trainer runs inside a Ray actor (the task runner) and the advantage is computed there; registering in
the plugin, which verl imports in every process, is what makes ``algorithm.adv_estimator=zppo`` and
``trainer.v1.trainer_mode=zppo`` resolvable wherever verl looks them up.

The trainer is registered only in the processes of a ZPPO run (``ZPPO_RUN=1``, set by ``main_zppo`` in the driver
and in Ray's runtime env): importing verl's V1 trainer resolves verl's platform at import time, which must not
happen inside every other verl program that merely imports verl.
"""

from __future__ import annotations

import os

RUN_MARKER = "ZPPO_RUN"


def register_with_verl() -> None:
    from verl.trainer.ppo import core_algos

    from .advantage import compute_zppo_outcome_advantage

    if core_algos.ADV_ESTIMATOR_REGISTRY.get("zppo") is not compute_zppo_outcome_advantage:
        core_algos.register_adv_est("zppo")(compute_zppo_outcome_advantage)

    if os.environ.get(RUN_MARKER) == "1":
        from . import zppo_trainer  # noqa: F401  (registers the "zppo" trainer with register_trainer)
        from . import prefix_agent_loop  # noqa: F401  (registers the "zppo_prefix_agent" agent loop)
