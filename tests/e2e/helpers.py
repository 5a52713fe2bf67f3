"""Reading what a training run left behind: its metrics (verl's file logger) and its checkpoints."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file


def read_metrics(run_dir: Path) -> list[list[dict]]:
    """One list of {"step", "data"} records per launch (one JSONL file per launch under run_dir/metrics)."""
    files = sorted((run_dir / "metrics").glob("*.jsonl"))
    return [[json.loads(line) for line in f.read_text().splitlines() if line.strip()] for f in files]


def train_steps(records: list[dict]) -> list[int]:
    return [r["step"] for r in records if "training/global_step" in r["data"]]


def load_weights(model_dir: Path) -> dict[str, torch.Tensor]:
    weights = {}
    for shard in sorted(model_dir.glob("*.safetensors")):
        weights.update(load_file(str(shard)))
    return weights


def max_weight_change(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> float:
    common = set(before) & set(after)
    assert common, f"no common tensor names: {sorted(before)[:3]} vs {sorted(after)[:3]}"
    return max((before[k].float() - after[k].float()).abs().max().item() for k in common)


def failure_context(result) -> str:
    return (f"exit {result.returncode}\n--- stdout tail ---\n{result.stdout[-4000:]}\n"
            f"--- stderr tail ---\n{result.stderr[-6000:]}")


# A run that is not about the teacher does without its server: stored teacher responses, raw candidates.
NO_TEACHER_SERVER = ("zppo.teacher.source=offline", "zppo.teacher.compression.enable=false")


def cpu_run_args(model: Path, data: Path, run_dir: Path, *overrides: str, teacher: Path | None = None) -> list[str]:
    """The command-line overrides every CPU end-to-end run shares, then the test's own. With ``teacher`` (the tiny
    teacher's folder) the run serves it and uses it as the paper does; without, it runs without a teacher server."""
    served = [f"zppo.teacher.server.model={teacher}"] if teacher is not None else list(NO_TEACHER_SERVER)
    return [
        "preset=cpu",
        f"actor_rollout_ref.model.path={model}",
        f"data.train_files={data / 'train.parquet'}",
        f"data.val_files={data / 'val.parquet'}",
        f"trainer.default_local_dir={run_dir}",
        *served,
        *overrides,
    ]


def step_metrics(run_dir: Path, launch: int = 0) -> list[dict]:
    """The per-step metric dicts of one launch (validation-only records left out)."""
    return [r["data"] for r in read_metrics(run_dir)[launch] if "training/global_step" in r["data"]]
