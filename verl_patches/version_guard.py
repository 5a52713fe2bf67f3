"""Version guard: the patches here are written against one verl release (``REQUIRED_VERL.txt``).

Importing under another verl only warns, because a plugin must never break other verl programs in the same
environment. Using a CPU-only feature (the ``cpu`` platform, the ``hf`` rollout) under another verl refuses with a
clear error, since these features reach into verl internals that change between releases.
"""

from __future__ import annotations

import logging
import warnings

SUPPORTED_VERL = "0.9.1"

logger = logging.getLogger(__name__)


def installed_verl_version() -> str | None:
    try:
        from importlib.metadata import version

        return version("verl")
    except Exception:  # verl not installed (e.g. docs build)
        return None


def verl_version_matches() -> bool:
    return installed_verl_version() == SUPPORTED_VERL


def warn_if_other_verl() -> None:
    """Called at plugin import: warn once, never raise."""
    found = installed_verl_version()
    if found is not None and found != SUPPORTED_VERL:
        warnings.warn(
            f"zppo's verl_patches were written for verl=={SUPPORTED_VERL} but verl=={found} is installed; "
            "the CPU platform and the 'hf' rollout will refuse to run. GPU runs are unaffected.",
            RuntimeWarning,
            stacklevel=2,
        )


def require_supported_verl(feature: str) -> None:
    """Refuse to use ``feature`` under a verl release the patches were not written for."""
    found = installed_verl_version()
    if found != SUPPORTED_VERL:
        raise RuntimeError(
            f"{feature} needs verl=={SUPPORTED_VERL} (found verl=={found}). "
            f"Install the pinned release: pip install 'verl[verl-core,math]=={SUPPORTED_VERL}'."
        )
