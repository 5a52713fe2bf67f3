"""What verl 0.9.1 lacks to run this recipe on a CPU-only machine, registered through verl's own extension points.

verl imports :mod:`verl_patches.plugin` by itself (the ``verl.plugins`` entry point in ``setup.py``) in the driver
and in every Ray worker. Everything here is inert unless the CPU platform is selected (``VERL_PLATFORM=cpu``) or
the ``hf`` rollout engine is asked for: on a GPU machine verl behaves exactly as without this package.

Modules:
- :mod:`verl_patches.version_guard`: the verl version these patches were written against.
- :mod:`verl_patches.cpu_platform`: a ``cpu`` platform (gloo collectives, no accelerator) for verl's registry, plus
  the two small CPU-only fixes it needs (process-group backend string, FSDP2 pinned-memory offload).
- :mod:`verl_patches.hf_rollout`: a rollout engine named ``hf`` (Hugging Face ``generate``) for machines where
  vLLM/SGLang cannot run.
"""
