"""A ``cpu`` platform for verl's platform registry, and the two CPU-only fixes it needs.

verl 0.9.1 ships platforms for CUDA, ROCm and Ascend NPUs and falls back to "nvidia" (nccl) when it finds none,
so nothing trains on a CPU-only machine. :class:`PlatformCPU` is registered under the name ``cpu`` through
``PlatformRegistry.register`` (verl's public extension point) and is chosen only explicitly, with
``VERL_PLATFORM=cpu``: it never wins auto-detection, so a GPU machine is unaffected.

Selecting it (``install_cpu_runtime``, called by the plugin when ``VERL_PLATFORM=cpu``) also applies:

1. ``FSDP engine for device "cpu"``: verl registers its FSDP/FSDP2 engines for ``cuda`` and ``npu`` only; the same
   classes are registered for ``cpu`` through ``EngineRegistry.register`` (public API, no code changed).
2. ``process-group backend string``: ``verl.utils.distributed.initialize_global_process_group_ray`` builds
   ``"cpu:gloo,{device}:{backend}"``, which is ``"cpu:gloo,cpu:gloo"`` on CPU and torch rejects a duplicated
   device type. The worker's reference to that function is wrapped to pass ``"cpu:gloo"``.
3. ``FSDP2 offload pins memory``: verl builds ``CPUOffloadPolicy(pin_memory=True)`` for forward-only models (the
   reference policy); pinning needs a CUDA runtime. On CPU the policy is built with ``pin_memory=False``.
"""

from __future__ import annotations

import functools
import logging
import os
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
from verl.plugin.platform.platform_base import PlatformBase
from verl.plugin.platform.platform_manager import PlatformRegistry

from .version_guard import require_supported_verl

logger = logging.getLogger(__name__)

PLATFORM_NAME = "cpu"


def cpu_platform_requested() -> bool:
    return os.environ.get("VERL_PLATFORM", "").strip().lower() == PLATFORM_NAME


class _CPUStream:
    """Stand-in for a device stream: CPU work is synchronous."""

    def synchronize(self) -> None:
        return None

    def wait_stream(self, _other) -> None:
        return None

    def wait_event(self, _event) -> None:
        return None


class CPUDeviceModule(ModuleType):
    """What verl calls on ``get_torch_device()`` (``torch.cuda`` on GPUs), implemented for the CPU.

    ``torch.cpu`` lacks the memory and RNG functions verl calls, so this module answers them: memory figures from
    the process's resident set (only used in logs), caches are no-ops, RNG goes to torch's CPU generator.
    """

    def __init__(self):
        super().__init__("verl_patches.cpu_device")

    Stream = torch.cpu.Stream
    Event = torch.cpu.Event

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> str:
        return "cpu"

    @staticmethod
    def set_device(_index) -> None:
        return None

    @staticmethod
    def synchronize(_index=None) -> None:
        return None

    @staticmethod
    def empty_cache() -> None:
        return None

    @staticmethod
    def ipc_collect() -> None:
        return None

    @staticmethod
    def current_stream(_device=None):
        return _CPUStream()

    @staticmethod
    @contextmanager
    def stream(_stream=None):
        yield

    @staticmethod
    def get_rng_state():
        return torch.get_rng_state()

    @staticmethod
    def set_rng_state(state) -> None:
        torch.set_rng_state(state)

    @staticmethod
    def manual_seed(seed: int) -> None:
        torch.manual_seed(seed)

    manual_seed_all = manual_seed

    @staticmethod
    def mem_get_info(_device=None) -> tuple[int, int]:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        return free, pages

    @staticmethod
    def memory_allocated(_device=None) -> int:
        return 0

    memory_reserved = max_memory_allocated = max_memory_reserved = memory_allocated

    @staticmethod
    def set_per_process_memory_fraction(_fraction, _device=None) -> None:
        return None

    @staticmethod
    def get_device_name(_device=None) -> str:
        return "cpu"


_DEVICE_MODULE = CPUDeviceModule()


@PlatformRegistry.register(platform=PLATFORM_NAME)
class PlatformCPU(PlatformBase):
    """CPU-only platform: device ``cpu``, collectives over gloo, one logical "GPU" per process for Ray's counting."""

    def __init__(self):
        super().__init__()
        if cpu_platform_requested():  # selected, not just probed during auto-detection
            require_supported_verl("The cpu platform (VERL_PLATFORM=cpu)")

    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        return _DEVICE_MODULE

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check: bool = False) -> bool:
        # Never auto-detected: only VERL_PLATFORM=cpu selects it, so GPU machines keep their platform.
        return False

    def current_device(self) -> str:
        # verl uses the "device id" as a device spec (``tensor.to(get_device_id())``); an int would mean cuda:N.
        return "cpu"

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        # Ray hands out the logical "GPU" we declare on a CPU machine through this variable.
        return "CUDA_VISIBLE_DEVICES"

    def ray_resource_name(self) -> str:
        # verl sizes its resource pools in Ray "GPU"s; a CPU run declares logical GPUs to Ray (--num-gpus).
        return "GPU"

    def ray_resource_options(self, num_gpus: float) -> dict[str, Any]:
        return {"num_gpus": num_gpus}

    def ray_noset_envvars(self) -> list[str]:
        return []

    def is_ipc_supported(self) -> bool:
        return False

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def cudart(self) -> Any:
        return None


def _register_fsdp_engines_for_cpu() -> None:
    from verl.workers.engine.base import EngineRegistry
    from verl.workers.engine.fsdp.transformer_impl import FSDPEngineWithLMHead, FSDPEngineWithValueHead

    for model_type, engine_cls in (("language_model", FSDPEngineWithLMHead), ("value_model", FSDPEngineWithValueHead)):
        if PLATFORM_NAME not in EngineRegistry._engines.get(model_type, {}).get("fsdp2", {}):
            EngineRegistry.register(model_type=model_type, backend=["fsdp", "fsdp2"], device=PLATFORM_NAME)(engine_cls)


def _dedup_cpu_backend(initialize_fn):
    """Wrap verl's process-group init so the backend string names the cpu device once."""

    @functools.wraps(initialize_fn)
    def initialize_with_cpu_backend(timeout_second=None, backend=None):
        return initialize_fn(timeout_second=timeout_second, backend=backend or "cpu:gloo")

    initialize_with_cpu_backend.__zppo_patched__ = True
    return initialize_with_cpu_backend


def _patch_process_group_backend() -> None:
    import verl.utils.distributed as verl_distributed
    import verl.workers.engine_workers as engine_workers

    for module in (verl_distributed, engine_workers):
        current = module.initialize_global_process_group_ray
        if not getattr(current, "__zppo_patched__", False):
            module.initialize_global_process_group_ray = _dedup_cpu_backend(current)


def _patch_fsdp2_offload_pinning() -> None:
    import verl.workers.engine.fsdp.transformer_impl as transformer_impl

    original = transformer_impl.CPUOffloadPolicy
    if original is None or getattr(original, "__zppo_patched__", False):
        return

    def cpu_offload_policy_without_pinning(*args, pin_memory: bool = True, **kwargs):
        return original(*args, pin_memory=False, **kwargs)

    cpu_offload_policy_without_pinning.__zppo_patched__ = True
    transformer_impl.CPUOffloadPolicy = cpu_offload_policy_without_pinning


_installed = False


def install_cpu_runtime() -> None:
    """Apply the CPU-only fixes above. Called only when ``VERL_PLATFORM=cpu``; idempotent."""
    global _installed
    if _installed:
        return
    require_supported_verl("The cpu platform (VERL_PLATFORM=cpu)")
    _register_fsdp_engines_for_cpu()
    _patch_process_group_backend()
    _patch_fsdp2_offload_pinning()
    _installed = True
