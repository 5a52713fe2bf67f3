"""verl_patches: inert on a (simulated) CUDA machine, complete on the cpu platform, guarded by the verl version."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings

import pytest

from verl_patches import version_guard


def _run_python(code: str, env_overrides: dict[str, str | None], tmp_path) -> dict:
    """Run ``code`` in a fresh interpreter (verl resolves its platform once per process) and return its JSON."""
    env = dict(os.environ)
    for key, value in env_overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], env=env, cwd=tmp_path, capture_output=True, text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_patches_stay_inert_when_a_cuda_platform_is_detected(tmp_path):
    # Simulate a GPU machine: an nvidia-smi that succeeds and torch reporting CUDA.
    fake_bin = tmp_path / "bin"
    fake_bin.mkdir()
    (fake_bin / "nvidia-smi").write_text("#!/bin/sh\nexit 0\n")
    (fake_bin / "nvidia-smi").chmod(0o755)
    code = """
        import json, torch
        torch.cuda.is_available = lambda: True
        import verl
        import verl.plugin.platform.platform_manager as platform_manager
        resolved_at_import = platform_manager._current_platform is not None
        from verl.plugin.platform import get_platform
        from verl.workers.engine.base import EngineRegistry
        from verl.workers.rollout import base as rollout_base
        from verl.workers.rollout.replica import RolloutReplicaRegistry
        import verl.workers.engine_workers as engine_workers
        import verl.workers.engine.fsdp.transformer_impl as transformer_impl
        from torch.distributed.fsdp import CPUOffloadPolicy
        print(json.dumps({
            "device": get_platform().device_name,
            "cpu_engine": "cpu" in EngineRegistry._engines["language_model"]["fsdp2"],
            "pg_init_patched": getattr(engine_workers.initialize_global_process_group_ray, "__zppo_patched__", False),
            "offload_policy_is_torch": transformer_impl.CPUOffloadPolicy is CPUOffloadPolicy,
            "vllm_adapter": rollout_base._ROLLOUT_REGISTRY[("vllm", "async")],
            "vllm_replica": RolloutReplicaRegistry._registry["vllm"].__module__,
            "hf_registered": "hf" in RolloutReplicaRegistry._registry,
            "resolved_at_import": resolved_at_import,
        }))
    """
    out = _run_python(code, {"VERL_PLATFORM": None, "PATH": f"{fake_bin}:{os.environ['PATH']}"}, tmp_path)
    assert out["device"] == "cuda"
    assert not out["resolved_at_import"], "importing verl with the plugin must not fix verl's platform early"
    assert out["hf_registered"], "the plugin must have been loaded for this test to mean anything"
    assert not out["cpu_engine"]
    assert not out["pg_init_patched"]
    assert out["offload_policy_is_torch"]
    assert out["vllm_adapter"] == "verl.workers.rollout.vllm_rollout.ServerAdapter"
    assert out["vllm_replica"] == "verl.workers.rollout.replica"


def test_cpu_platform_supplies_device_engine_and_process_group(tmp_path):
    code = """
        import json, torch
        import verl
        import verl.plugin.platform.platform_manager as platform_manager
        resolved_at_import = platform_manager._current_platform is not None
        from verl.plugin.platform import get_platform
        from verl.utils.device import get_device_name, get_nccl_backend, get_torch_device, get_device_id
        from verl.workers.engine.base import EngineRegistry
        import verl.workers.engine_workers as engine_workers
        import verl.workers.engine.fsdp.transformer_impl as transformer_impl
        engine_workers.initialize_global_process_group_ray()
        policy = transformer_impl.CPUOffloadPolicy(pin_memory=True)
        x = torch.ones(2).to(get_device_id())
        device = get_torch_device()
        device.empty_cache(); device.synchronize()
        print(json.dumps({
            "device": get_device_name(),
            "backend": get_nccl_backend(),
            "process_group_backend": torch.distributed.get_backend(),
            "engine": EngineRegistry.get_engine_cls("language_model", "fsdp2").__name__,
            "pin_memory": policy.pin_memory,
            "tensor_device": str(x.device),
            "free_memory_positive": device.mem_get_info()[0] > 0,
        }))
    """
    env = {"VERL_PLATFORM": "cpu", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29613", "RANK": "0", "WORLD_SIZE": "1"}
    out = _run_python(code, env, tmp_path)
    assert out == {
        "device": "cpu",
        "backend": "gloo",
        "process_group_backend": "cpu:gloo",
        "engine": "FSDPEngineWithLMHead",
        "pin_memory": False,
        "tensor_device": "cpu",
        "free_memory_positive": True,
    }


def test_unpatched_verl_cannot_init_a_cpu_process_group(tmp_path):
    """The backend-string fix is needed: without it torch rejects verl's "cpu:gloo,cpu:gloo"."""
    code = """
        import json, torch
        try:
            torch.distributed.init_process_group("cpu:gloo,cpu:gloo", rank=0, world_size=1)
            print(json.dumps({"error": None}))
        except ValueError as error:
            print(json.dumps({"error": str(error)}))
    """
    out = _run_python(code, {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": "29614"}, tmp_path)
    assert "Duplicate device type" in out["error"]


def test_version_guard_warns_on_import_and_refuses_on_use(monkeypatch):
    monkeypatch.setattr(version_guard, "installed_verl_version", lambda: "0.8.0")
    with pytest.warns(RuntimeWarning, match="written for verl==0.9.1 but verl==0.8.0"):
        version_guard.warn_if_other_verl()
    with pytest.raises(RuntimeError, match=r"needs verl==0\.9\.1 \(found verl==0\.8\.0\)"):
        version_guard.require_supported_verl("The cpu platform")

    monkeypatch.setattr(version_guard, "installed_verl_version", lambda: version_guard.SUPPORTED_VERL)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        version_guard.warn_if_other_verl()
    version_guard.require_supported_verl("The cpu platform")


def test_plugin_load_never_raises_under_another_verl(monkeypatch):
    from verl_patches import plugin

    monkeypatch.setattr(version_guard, "installed_verl_version", lambda: "0.8.0")
    monkeypatch.setenv("VERL_PLATFORM", "")
    with pytest.warns(RuntimeWarning):
        plugin.load()


def test_cpu_platform_refuses_under_another_verl(monkeypatch):
    from verl_patches.cpu_platform import PlatformCPU

    monkeypatch.setattr(version_guard, "installed_verl_version", lambda: "0.8.0")
    monkeypatch.setenv("VERL_PLATFORM", "cpu")
    with pytest.raises(RuntimeError, match="cpu platform"):
        PlatformCPU()
    monkeypatch.setenv("VERL_PLATFORM", "")
    assert PlatformCPU().is_platform_available(use_smi_check=True) is False  # probing never selects it
