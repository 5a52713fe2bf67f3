"""Tiny offline assets for tests and the CPU demo: random Qwen checkpoints and small RL data sets.

Everything is built locally (no model or dataset hub) and deterministically: the same seed gives byte-identical
files. Command line::

    python -m data_prep.tiny --out DIR [--only text-model,vl-model,text-data,vl-data,teacher-model] [--seed 0]
                             [--teacher-responses N] [--force]

Layout under ``DIR`` (see ``artefact_paths``)::

    models/tiny-qwen3/        Qwen3 text model (AutoModelForCausalLM) + tokenizer
    models/tiny-qwen3_5-vl/   Qwen3.5 vision-language model (AutoModelForImageTextToText) + processor
    models/tiny-teacher/      Qwen3 teacher for CPU runs: answers the arithmetic set's train questions, compresses
                              candidates with the Fig. 16 prompt (teacher.py); same tokenizer as the students
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
    "vl-model": "models/tiny-qwen3_5-vl",
    "text-data": "data/tiny_arith",
    "vl-data": "data/tiny_shapes",
    "teacher-model": "models/tiny-teacher",
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
    "TEXT_DATA_DEFAULTS",
    "build_all",
    "build_teacher_model",
    "build_text_dataset",
    "build_text_model",
    "build_vl_dataset",
    "build_vl_model",
    "teacher_model_params",
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


TEXT_DATA_DEFAULTS = {"n_train": 320, "n_val": 32, "teacher_wrong_prob": 0.25}


def build_text_dataset(
    out_dir: str | Path,
    seed: int = DEFAULT_SEED,
    n_train: int = TEXT_DATA_DEFAULTS["n_train"],
    n_val: int = TEXT_DATA_DEFAULTS["n_val"],
    teacher_responses: int = 0,
    teacher_wrong_prob: float = TEXT_DATA_DEFAULTS["teacher_wrong_prob"],
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


def _teacher_sources_hash() -> str:
    """Hash of what, outside this package, decides the teacher's training pairs: the compression prompt and
    rules, the candidate cleaning, the answer extraction."""
    import hashlib
    import inspect

    from recipe.zppo.algo import answer_format, compression, reformulation

    h = hashlib.sha256()
    for module in (answer_format, compression):
        h.update(Path(module.__file__).read_bytes())
    h.update(inspect.getsource(reformulation.clean_candidate_text).encode("utf-8"))
    h.update(reformulation._CONTROL_TOKENS.pattern.encode("utf-8") + reformulation._THINK_TAG.pattern.encode("utf-8"))
    return h.hexdigest()[:16]


def teacher_model_params(seed: int = DEFAULT_SEED, teacher_responses: int = 0, training: dict | None = None) -> dict:
    """The build parameters of the teacher (what its manifest records; see ``build_teacher_model``)."""
    from .teacher import (
        COPY_WINDOW,
        LOCAL_OFFSETS,
        POSITIONAL_GAIN,
        POSITIONAL_PAIRS,
        TEACHER_MODEL_CONFIG,
        TEACHER_TRAINING,
    )

    return {
        "seed": seed,
        "config": TEACHER_MODEL_CONFIG,
        "training": {**TEACHER_TRAINING, **(training or {})},
        "questions": {**TEXT_DATA_DEFAULTS, "teacher_responses": teacher_responses},
        "layout": {"copy_window": COPY_WINDOW, "local_offsets": list(LOCAL_OFFSETS),
                   "positional_pairs": POSITIONAL_PAIRS, "positional_gain": POSITIONAL_GAIN},
        "sources": _teacher_sources_hash(),
        "versions": _lib_versions("torch", "transformers", "tokenizers", "safetensors"),
    }


def build_teacher_model(
    out_dir: str | Path,
    seed: int = DEFAULT_SEED,
    force: bool = False,
    teacher_responses: int = 0,
    training: dict | None = None,
) -> Path:
    """Tiny teacher (Qwen3 + the students' tokenizer) in ``out_dir``, warm-started on the train questions of the
    arithmetic set built with the same ``seed`` and ``teacher_responses`` (and the data set's other defaults),
    and on candidate compression (see teacher.py). ``training`` overrides ``TEACHER_TRAINING`` entries."""
    from .teacher import write_teacher_model

    params = teacher_model_params(seed, teacher_responses, training)
    data = params["questions"]

    def build(d: Path) -> None:
        rows = build_text_rows(data["n_train"], data["n_val"], seed, teacher_responses, data["teacher_wrong_prob"])
        write_teacher_model(d, rows["train"], seed, params["training"])

    return _timed("teacher-model", out_dir, params, build, force)


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
    """Build the selected artefacts (default: all five) under ``out``; returns their paths.

    The teacher learns the train questions of the arithmetic set built with the same ``seed`` and
    ``teacher_responses``."""
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
        elif kind == "text-data":
            result[kind] = build_text_dataset(paths[kind], seed, teacher_responses=teacher_responses, force=force)
        elif kind == "teacher-model":
            result[kind] = build_teacher_model(paths[kind], seed, force=force, teacher_responses=teacher_responses)
        else:
            result[kind] = build_vl_dataset(paths[kind], seed, teacher_responses=teacher_responses, force=force)
    return result
