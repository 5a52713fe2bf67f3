"""Tiny offline assets for tests and the CPU demo: random Qwen checkpoints and small RL data sets.

Everything is built locally (no model or dataset hub) and deterministically: the same seed gives byte-identical
files. Command line::

    python -m data_prep.tiny --out DIR [--only text-model,vl-model,text-data,vl-data,teacher-model] [--seed 0]
                             [--teacher-responses N] [--force]

Layout under ``DIR`` (see ``artefact_paths``)::

    models/tiny-qwen3/        Qwen3 text model (AutoModelForCausalLM) + tokenizer
    models/tiny-qwen3_5-vl/   Qwen3.5 vision-language model (AutoModelForImageTextToText) + processor
    models/tiny-teacher/      the CPU runs' teacher: answers the arithmetic set, compresses candidates (teacher.py)
    data/tiny_arith/          train.parquet, val.parquet   (text: "What is 17 + 25?")
    data/tiny_shapes/         train.parquet, val.parquet   (images: count circles, read a digit, name a shape)

Each folder holds a ``tiny_manifest.json`` (build parameters + file hashes); a build whose parameters and files
match is skipped, anything else is rebuilt.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ._common import build_once
from .datasets import (
    ARITH_SOURCE,
    EXTRA_INFO_KEYS,
    REQUIRED_COLUMNS,
    VL_SOURCE,
    build_text_rows,
    build_vl_rows,
    text_schema,
    vl_schema,
    write_splits,
)
from .models import TEXT_MODEL_CONFIG, VL_IMAGE_PROCESSOR, VL_TEXT_CONFIG, VL_VISION_CONFIG

ARTEFACTS = ("text-model", "vl-model", "text-data", "vl-data", "teacher-model")
ARTEFACT_DIRS = {
    "text-model": "models/tiny-qwen3",
    "teacher-model": "models/tiny-teacher",
    "vl-model": "models/tiny-qwen3_5-vl",
    "text-data": "data/tiny_arith",
    "vl-data": "data/tiny_shapes",
}
DEFAULT_SEED = 0

__all__ = [
    "ARITH_SOURCE",
    "ARTEFACTS",
    "ARTEFACT_DIRS",
    "EXTRA_INFO_KEYS",
    "REQUIRED_COLUMNS",
    "VL_SOURCE",
    "artefact_paths",
    "build_all",
    "build_text_dataset",
    "build_teacher_model",
    "build_text_model",
    "build_vl_dataset",
    "build_vl_model",
]


def artefact_paths(out: str | Path) -> dict[str, Path]:
    """Where ``build_all(out)`` puts each artefact."""
    return {k: Path(out) / v for k, v in ARTEFACT_DIRS.items()}


def _lib_versions(*dists: str) -> dict[str, str]:
    """Installed versions of the libraries whose output bytes a build depends on (read without importing them)."""
    from importlib import metadata

    out = {}
    for d in dists:
        try:
            out[d] = metadata.version(d)
        except metadata.PackageNotFoundError:
            out[d] = "?"
    return out


def _timed(kind, out_dir, params, build, force):
    return build_once(kind, out_dir, params, build, force=force)


# Supervised steps that teach the random models the answer format before any RL (see warm_start.py), so that
# the CPU demo and tests have wrong-but-formatted answers: the material BCQ/NCQ are made of.
WARM_START_STEPS_TEXT = 120
WARM_START_STEPS_VL = 60


def build_text_model(
    out_dir: str | Path, seed: int = DEFAULT_SEED, force: bool = False, warm_start_steps: int = WARM_START_STEPS_TEXT
) -> Path:
    """Tiny Qwen3 causal LM + tokenizer in ``out_dir`` (a Hugging Face folder)."""
    from .models import write_text_model

    params = {
        "seed": seed,
        "warm_start_steps": warm_start_steps,
        "config": TEXT_MODEL_CONFIG,
        "versions": _lib_versions("torch", "transformers", "tokenizers", "safetensors"),
    }
    return _timed("text-model", out_dir, params, lambda d: write_text_model(d, seed, warm_start_steps), force)


def build_vl_model(
    out_dir: str | Path, seed: int = DEFAULT_SEED, force: bool = False, warm_start_steps: int = WARM_START_STEPS_VL
) -> Path:
    """Tiny Qwen3.5 vision-language model + processor in ``out_dir`` (a Hugging Face folder)."""
    from .models import write_vl_model

    params = {
        "seed": seed,
        "warm_start_steps": warm_start_steps,
        "text_config": VL_TEXT_CONFIG,
        "vision_config": VL_VISION_CONFIG,
        "image_processor": VL_IMAGE_PROCESSOR,
        "versions": _lib_versions("torch", "transformers", "tokenizers", "safetensors"),
    }
    return _timed("vl-model", out_dir, params, lambda d: write_vl_model(d, seed, warm_start_steps), force)


def build_teacher_model(out_dir: str | Path, seed: int = DEFAULT_SEED, force: bool = False,
                        steps: int | None = None) -> Path:
    """The tiny teacher (a larger Qwen3, the text model's tokenizer) taught the toy answers and the Fig. 16
    compression format (``teacher.py``), in ``out_dir``."""
    from .models import write_teacher_model
    from .teacher import TEACHER_BATCH, TEACHER_LR, TEACHER_MODEL_CONFIG, TEACHER_STEPS

    steps = TEACHER_STEPS if steps is None else steps
    params = {
        "seed": seed,
        "steps": steps,
        "batch": TEACHER_BATCH,
        "lr": TEACHER_LR,
        "config": TEACHER_MODEL_CONFIG,
        "versions": _lib_versions("torch", "transformers", "tokenizers", "safetensors"),
    }
    return _timed("teacher-model", out_dir, params, lambda d: write_teacher_model(d, seed, steps), force)


def build_text_dataset(
    out_dir: str | Path,
    seed: int = DEFAULT_SEED,
    n_train: int = 320,
    n_val: int = 32,
    teacher_responses: int = 0,
    teacher_wrong_prob: float = 0.25,
    force: bool = False,
) -> Path:
    """Arithmetic set (``train.parquet``, ``val.parquet``) in ``out_dir``."""
    params = {
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "teacher_responses": teacher_responses,
        "teacher_wrong_prob": teacher_wrong_prob,
        "versions": _lib_versions("pyarrow"),
    }

    def build(d: Path) -> None:
        rows = build_text_rows(n_train, n_val, seed, teacher_responses, teacher_wrong_prob)
        write_splits(rows, text_schema(), d)

    return _timed("text-data", out_dir, params, build, force)


def build_vl_dataset(
    out_dir: str | Path,
    seed: int = DEFAULT_SEED,
    n_train: int = 200,
    n_val: int = 32,
    image_size: int = 96,
    two_image_every: int = 8,
    teacher_responses: int = 0,
    teacher_wrong_prob: float = 0.25,
    force: bool = False,
) -> Path:
    """Image set (``train.parquet``, ``val.parquet``, PNG bytes in ``images``) in ``out_dir``."""
    params = {
        "seed": seed,
        "n_train": n_train,
        "n_val": n_val,
        "image_size": image_size,
        "two_image_every": two_image_every,
        "teacher_responses": teacher_responses,
        "teacher_wrong_prob": teacher_wrong_prob,
        "versions": _lib_versions("pyarrow", "pillow"),
    }

    def build(d: Path) -> None:
        rows = build_vl_rows(n_train, n_val, seed, image_size, two_image_every, teacher_responses, teacher_wrong_prob)
        write_splits(rows, vl_schema(), d)

    return _timed("vl-data", out_dir, params, build, force)


def build_all(
    out: str | Path,
    seed: int = DEFAULT_SEED,
    only: Iterable[str] | None = None,
    teacher_responses: int = 0,
    force: bool = False,
) -> dict[str, Path]:
    """Build the selected artefacts (default: all) under ``out``; returns their paths."""
    selected = list(ARTEFACTS if only is None else only)
    unknown = [k for k in selected if k not in ARTEFACTS]
    if unknown:
        raise ValueError(f"unknown artefact(s) {unknown}; choose from {', '.join(ARTEFACTS)}")
    paths = artefact_paths(out)
    result = {}
    for kind in ARTEFACTS:
        if kind not in selected:
            continue
        if kind == "text-model":
            result[kind] = build_text_model(paths[kind], seed, force=force)
        elif kind == "vl-model":
            result[kind] = build_vl_model(paths[kind], seed, force=force)
        elif kind == "teacher-model":
            result[kind] = build_teacher_model(paths[kind], seed, force=force)
        elif kind == "text-data":
            result[kind] = build_text_dataset(paths[kind], seed, teacher_responses=teacher_responses, force=force)
        else:
            result[kind] = build_vl_dataset(paths[kind], seed, teacher_responses=teacher_responses, force=force)
    return result
