"""Checks run in the driver before Ray starts: one clear line for a mistake, not a traceback from a Ray actor.

Covered: a model path that does not exist; a data file that does not exist or lacks a required column; a CPU run
on a GPU config (a rollout engine that needs an accelerator) and the reverse (the CPU-only ``hf`` rollout on a GPU
device).
"""

from __future__ import annotations

import glob
import os
import re

from omegaconf import DictConfig

# Engines that run only with an accelerator, and the one that runs only on the CPU platform.
ACCELERATOR_ROLLOUTS = {"vllm", "sglang", "trtllm"}
CPU_ROLLOUT = "hf"
# A Hugging Face hub id ("org/name"): not checked locally, the user's machine may reach a hub.
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


class ConfigError(ValueError):
    """A configuration mistake found before anything starts."""


def _as_list(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [str(item) for item in value]


def check_model_path(key: str, path: str | None) -> None:
    if not path:
        raise ConfigError(f"{key} is not set: give a Hugging Face model folder (or a hub id on a machine with hub access)")
    expanded = os.path.expanduser(str(path))
    if os.path.exists(expanded):
        if os.path.isdir(expanded) and not os.path.exists(os.path.join(expanded, "config.json")):
            raise ConfigError(f"{key}={path}: the folder has no config.json, so it is not a Hugging Face model folder")
        return
    if _HUB_ID.match(str(path)) and not str(path).startswith((".", "/", "~")):
        return
    raise ConfigError(f"{key}={path}: no such model folder")


def required_columns(config: DictConfig) -> list[str]:
    data = config.data
    columns = [data.get("prompt_key", "prompt"), "reward_model", data.get("reward_fn_key", "data_source")]
    return list(dict.fromkeys(columns))


def check_data_files(key: str, files, columns: list[str]) -> None:
    paths = _as_list(files)
    if not paths:
        raise ConfigError(f"{key} is empty: give one or more parquet files")
    for path in paths:
        expanded = os.path.expanduser(path)
        if any(ch in expanded for ch in "*?["):
            if not glob.glob(expanded):
                raise ConfigError(f"{key}: no file matches {path}")
            continue
        if not os.path.exists(expanded):
            raise ConfigError(f"{key}: data file {path} does not exist")
        if not expanded.endswith(".parquet"):
            continue
        import pyarrow.parquet as pq

        try:
            names = set(pq.read_schema(expanded).names)
        except Exception as error:  # unreadable parquet
            raise ConfigError(f"{key}: cannot read {path} as parquet ({error})") from None
        missing = [column for column in columns if column not in names]
        if missing:
            raise ConfigError(
                f"{key}: {path} lacks required column(s) {missing} (has {sorted(names)}); "
                "see data_prep/ for the expected layout"
            )


def check_device(config: DictConfig) -> None:
    device = str(config.trainer.get("device", "cuda"))
    rollout = str(config.actor_rollout_ref.rollout.name)
    if device == "cpu" and rollout in ACCELERATOR_ROLLOUTS:
        raise ConfigError(
            f"trainer.device=cpu but actor_rollout_ref.rollout.name={rollout} needs a GPU: "
            f"use rollout.name={CPU_ROLLOUT} (or --config-name zppo_cpu)"
        )
    if device != "cpu" and rollout == CPU_ROLLOUT:
        raise ConfigError(
            f"actor_rollout_ref.rollout.name={CPU_ROLLOUT} is the CPU-only engine but trainer.device={device}: "
            "use rollout.name=vllm (or sglang) on GPUs, or set trainer.device=cpu"
        )
    if device != "cpu" and os.environ.get("VERL_PLATFORM", "").strip().lower() == "cpu":
        raise ConfigError(f"VERL_PLATFORM=cpu is set in the environment but trainer.device={device}")


def check_config(config: DictConfig) -> None:
    check_device(config)
    check_model_path("actor_rollout_ref.model.path", config.actor_rollout_ref.model.path)
    columns = required_columns(config)
    check_data_files("data.train_files", config.data.train_files, columns)
    check_data_files("data.val_files", config.data.val_files, columns)
