"""Register ZPPO's pieces with verl's registries: the ``zppo`` entry point of the ``verl.plugins`` group.

verl imports every module of that group in every process (the driver, the task runner actor that runs the V1
trainer, the workers), so ``algorithm.adv_estimator=zppo`` and ``trainer.v1.trainer_mode=zppo`` resolve wherever
verl looks them up; so do the distillation baselines' JSD loss modes (``baselines/distill_loss.py``). A plugin
must never break another verl program in the same environment: a failure is logged
(verl itself would swallow it at debug level) and the import goes on.

The trainer and the prefix agent loop are registered only in the processes of a ZPPO run (``ZPPO_RUN=1``, set by
``main_zppo`` in the driver and in Ray's runtime env): importing verl's V1 trainer resolves verl's platform at
import time, which must not happen inside every other verl program that merely imports verl.
"""

from __future__ import annotations

import logging
import os

RUN_MARKER = "ZPPO_RUN"
logger = logging.getLogger(__name__)


def register_with_verl() -> None:
    from verl.trainer.ppo import core_algos

    from ..algo.advantage import compute_zppo_outcome_advantage

    if core_algos.ADV_ESTIMATOR_REGISTRY.get("zppo") is not compute_zppo_outcome_advantage:
        core_algos.register_adv_est("zppo")(compute_zppo_outcome_advantage)

    # The distillation baselines' per-token JSD (loss_mode=jsd_student_samples / jsd_teacher_samples): needed where
    # verl builds the distillation config (driver, task runner) and where the actor computes its loss (workers).
    from ..baselines import distill_loss

    distill_loss.register()

    if os.environ.get(RUN_MARKER) == "1":
        # verl loads plugins in no set order; the CPU platform must be registered before verl's trainer is imported.
        import verl_patches.plugin  # noqa: F401

        from ..baselines import (
            prefix_agent_loop,  # noqa: F401  (registers the "zppo_prefix_agent" agent loop)
            teacher_forced_agent_loop,  # noqa: F401  ("zppo_teacher_forced_agent")
        )
        from . import zppo_trainer  # noqa: F401  (registers the "zppo" trainer with register_trainer)


try:
    register_with_verl()
except Exception as error:  # noqa: BLE001 - a plugin must not take verl down with it
    logger.warning("zppo plugin: registration with verl failed: %s", error)
