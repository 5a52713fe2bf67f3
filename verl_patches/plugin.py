"""Entry point of the ``verl.plugins`` group: verl imports this module in the driver and in every Ray worker.

It must never break another verl program in the same environment, so every step is guarded: a failure is logged
and swallowed (verl itself also swallows plugin import errors, at debug level only, which would hide them).
What it does:
- registers the ``cpu`` platform (chosen only with ``VERL_PLATFORM=cpu``) and, when it is chosen, installs the
  CPU-only fixes of :mod:`verl_patches.cpu_platform`;
- registers the ``hf`` rollout engine (used only with ``actor_rollout_ref.rollout.name=hf``).

ZPPO's own pieces (advantage estimator, trainer) are registered by their own entry point,
:mod:`recipe.zppo.trainer.registration`.
"""

from __future__ import annotations

import logging

logger = logging.getLogger("verl_patches")


def _guarded(step: str, fn) -> None:
    try:
        fn()
    except Exception as error:  # noqa: BLE001 - a plugin must not take verl down with it
        logger.warning("zppo plugin: %s failed: %s", step, error)


def _register_cpu_platform() -> None:
    from . import cpu_platform

    if cpu_platform.cpu_platform_requested():
        cpu_platform.install_cpu_runtime()


def _register_hf_rollout() -> None:
    from .hf_rollout import register_hf_rollout

    register_hf_rollout()


def load() -> None:
    from .version_guard import warn_if_other_verl

    warn_if_other_verl()
    _guarded("cpu platform", _register_cpu_platform)
    _guarded("hf rollout", _register_hf_rollout)


load()
