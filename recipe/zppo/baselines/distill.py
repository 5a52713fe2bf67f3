"""The two distillation baselines of the paper (App. D.2), run through the same recipe entry point.

``method=on_policy_distill`` (and ``on_policy_distill_buffer``)
    verl's own on-policy distillation (``distillation.*``): the student samples, a frozen teacher served in its own
    resource pool scores every sampled token. It runs on ZPPO's trainer like every RL method; this module only
    checks its configuration before anything starts (:func:`prepare_on_policy_distill`).

``method=off_policy_distill``
    supervised fine-tuning on the stored CORRECT teacher responses, with verl's SFT trainer
    (``verl.trainer.sft_trainer``), from the same data files as the RL methods (:func:`run_off_policy_distill`):

    1. every RL row (``prompt`` messages, ``extra_info.teacher_responses`` / ``teacher_correct``, images) gives one
       SFT example per correct teacher response: the prompt messages, then the response as the assistant turn, in
       verl's multi-turn SFT layout (``messages`` column, plus ``images`` for vision rows); rows without a correct
       teacher response, wrong or empty responses, and examples over the length budget are skipped and counted;
    2. verl's SFT config (``sft_trainer_engine.yaml``) is filled from the recipe's settings (model, FSDP engine,
       optimiser, batch size, steps, output folder, loggers), plus ``off_policy_distill.sft`` overrides;
    3. ``torchrun`` runs ``python -m recipe.zppo.distill sft <run dir>/sft_overrides.yaml`` on the node's devices.

    Command line of this module::

        python -m recipe.zppo.distill build-sft --data train.parquet --out sft/train.parquet [--model DIR]
        python -m recipe.zppo.distill nll --model DIR --data sft/train.parquet [--max-rows N]
        python -m recipe.zppo.distill sft OVERRIDES.yaml     # under torchrun: what method=off_policy_distill runs

    ``nll`` prints the mean per-token negative log-likelihood of the assistant (teacher) tokens of an SFT file
    under a model: what off-policy distillation lowers.

The prompt replay buffer has no meaning for off-policy distillation (no student rollouts, so no accuracy, no hard
question to keep): ``zppo.enable=true`` with it is refused. See docs/distillation.md.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from ..trainer.preflight import ConfigError, check_model_path, expand_data_files

ON_POLICY_METHODS = ("on_policy_distill", "on_policy_distill_buffer")
OFF_POLICY_METHOD = "off_policy_distill"
SFT_MESSAGES_KEY = "messages"
SFT_IMAGES_KEY = "images"
TEACHER_RESPONSES_KEY = "teacher_responses"
TEACHER_CORRECT_KEY = "teacher_correct"
# verl's key of the single-teacher entry (verl/trainer/config/distillation/distillation.yaml).
TEACHER_PATH_KEY = "distillation.teacher_models.teacher_model.model_path"
# Rows read and written at a time when building the SFT file: bounds memory on image data sets.
BUILD_BATCH_ROWS = 512

Scorer = Callable[[str, dict], bool]


class NoSFTExamples(ValueError):
    """RL files that give not one SFT example (no correct teacher response anywhere)."""


def method_name(config: DictConfig) -> str:
    return str((config.get("zppo_method") or {}).get("name") or "zppo")


# ---------------------------------------------------------------------------------------------------------------
# on-policy distillation: configuration checks


def _distillation_enabled(config: DictConfig) -> bool:
    return bool((config.get("distillation") or {}).get("enabled", False))


def prepare_on_policy_distill(config: DictConfig) -> None:
    """Check an on-policy distillation run before Ray starts (raises :class:`ConfigError` naming the key).

    Also gives a local CPU cluster the logical GPUs of the teacher's pool: verl places the teacher in its own
    resource pool, so a run that starts its own Ray (``ray_kwargs.ray_init.num_gpus`` set) needs the student's GPUs
    plus the teacher's.
    """
    method = method_name(config)
    enabled = _distillation_enabled(config)
    if method in ON_POLICY_METHODS and not enabled:
        raise ConfigError(f"method={method} needs distillation.enabled=true (it is verl's on-policy distillation)")
    if not enabled:
        return
    distillation = config.distillation
    teachers = distillation.get("teacher_models") or {}
    if len(teachers) <= 1:  # verl's single-teacher entry; several teachers are verl's own multi-teacher checks
        teacher = teachers.get("teacher_model") or {}
        if not teacher.get("model_path"):
            raise ConfigError(
                f"{TEACHER_PATH_KEY} is not set: on-policy distillation needs a teacher model "
                "(a Hugging Face folder or hub id sharing the student's tokenizer)"
            )
        check_model_path(TEACHER_PATH_KEY, teacher.model_path)
    teacher_gpus = int(distillation.get("n_gpus_per_node", 0)) * int(distillation.get("nnodes", 0))
    if teacher_gpus <= 0:
        raise ConfigError(
            "distillation.n_gpus_per_node x distillation.nnodes must be at least 1: verl serves the teacher in its "
            f"own resource pool (got {distillation.get('n_gpus_per_node')} x {distillation.get('nnodes')})"
        )
    ray_init = (config.get("ray_kwargs") or {}).get("ray_init") or {}
    if str(config.trainer.get("device")) == "cpu" and ray_init.get("num_gpus") is not None:
        student_gpus = int(config.trainer.n_gpus_per_node) * int(config.trainer.nnodes)
        needed = student_gpus + teacher_gpus
        if int(ray_init.num_gpus) < needed:
            with open_dict(config):
                config.ray_kwargs.ray_init.num_gpus = needed


# ---------------------------------------------------------------------------------------------------------------
# off-policy distillation: SFT examples from the RL rows


@dataclass
class SFTBuildStats:
    """What became of the RL rows and their teacher responses."""

    rows: int = 0
    examples: int = 0
    rows_without_teacher_responses: int = 0  # no extra_info.teacher_responses (or an empty list)
    rows_without_correct_response: int = 0  # responses, none correct: no example from this row
    wrong_responses: int = 0
    empty_responses: int = 0
    over_length_examples: int = 0  # prompt + response longer than the SFT length budget
    responses_over_cap: int = 0  # correct responses beyond max_responses_per_question

    def add(self, other: SFTBuildStats) -> None:
        for name, value in asdict(other).items():
            setattr(self, name, getattr(self, name) + value)

    def summary(self) -> str:
        return (
            f"{self.examples} SFT examples from {self.rows} rows; skipped: "
            f"{self.rows_without_teacher_responses} rows without teacher responses, "
            f"{self.rows_without_correct_response} rows without a correct one, "
            f"{self.wrong_responses} wrong and {self.empty_responses} empty responses, "
            f"{self.over_length_examples} examples over the length budget, "
            f"{self.responses_over_cap} correct responses over the per-question cap"
        )


def _plain(value: Any) -> Any:
    """Arrow/NumPy containers as plain Python lists and dicts."""
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def sft_examples_of_row(
    row: dict,
    *,
    where: str,
    prompt_key: str = "prompt",
    image_key: str = SFT_IMAGES_KEY,
    max_responses_per_question: int | None = None,
    score: Scorer | None = None,
    example_length: Callable[[list[dict]], int] | None = None,
    max_length: int | None = None,
) -> tuple[list[dict], SFTBuildStats]:
    """The SFT examples of one RL row (``where`` names the row in errors), and what was skipped.

    One example per correct teacher response, in the stored order, at most ``max_responses_per_question``:
    ``{"messages": prompt messages + [{"role": "assistant", "content": response}], "images": ...}``. Correctness
    comes from ``extra_info.teacher_correct``; when that is absent (or of another length) ``score(response, row)``
    decides, and without a scorer the row is an error.
    """
    stats = SFTBuildStats(rows=1)
    prompt = _plain(row.get(prompt_key))
    if not isinstance(prompt, list) or not prompt or not all(isinstance(m, dict) and "role" in m for m in prompt):
        raise ValueError(f"{where}: column '{prompt_key}' is not a list of chat messages ({type(prompt).__name__})")
    extra = _plain(row.get("extra_info")) or {}
    responses = extra.get(TEACHER_RESPONSES_KEY) if isinstance(extra, dict) else None
    if not responses:
        stats.rows_without_teacher_responses = 1
        return [], stats
    if not isinstance(responses, list):
        raise ValueError(f"{where}: extra_info.{TEACHER_RESPONSES_KEY} must be a list of strings")
    flags = extra.get(TEACHER_CORRECT_KEY)
    if flags is None or len(flags) != len(responses):
        if score is None:
            raise ValueError(
                f"{where}: extra_info.{TEACHER_RESPONSES_KEY} has no matching extra_info.{TEACHER_CORRECT_KEY} "
                "and no scorer was given"
            )
        flags = [bool(score(str(text), row)) if text else False for text in responses]
    examples: list[dict] = []
    any_correct = False
    for text, correct in zip(responses, flags):
        if not text or not str(text).strip():
            stats.empty_responses += 1
            continue
        if not correct:
            stats.wrong_responses += 1
            continue
        any_correct = True
        if max_responses_per_question is not None and len(examples) >= max_responses_per_question:
            stats.responses_over_cap += 1
            continue
        messages = [dict(m) for m in prompt] + [{"role": "assistant", "content": str(text)}]
        if example_length is not None and max_length is not None and example_length(messages) > max_length:
            stats.over_length_examples += 1
            continue
        example = {SFT_MESSAGES_KEY: messages}
        images = row.get(image_key)
        if images is not None:
            example[SFT_IMAGES_KEY] = _plain(images)
        examples.append(example)
    if not any_correct:
        stats.rows_without_correct_response = 1
    stats.examples = len(examples)
    return examples, stats


def _iter_rows(path: str, batch_rows: int = BUILD_BATCH_ROWS) -> Iterator[dict]:
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(os.path.expanduser(path))
    for batch in parquet.iter_batches(batch_size=batch_rows):
        yield from batch.to_pylist()


def _count_rows(paths: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(os.path.expanduser(p)).metadata.num_rows for p in paths)


def chat_length_counter(tokenizer) -> Callable[[list[dict]], int]:
    """Token count of a conversation under the tokenizer's chat template (text tokens; image tokens not counted)."""

    def count(messages: list[dict]) -> int:
        ids = tokenizer.apply_chat_template(messages, tokenize=True, add_generation_prompt=False)
        if hasattr(ids, "keys"):  # transformers 5 returns a BatchEncoding (input_ids, attention_mask), not the ids
            ids = ids["input_ids"]
        return len(ids)

    return count


def write_sft_parquet(
    data_files,
    out_path: str | Path,
    *,
    prompt_key: str = "prompt",
    image_key: str = SFT_IMAGES_KEY,
    max_responses_per_question: int | None = None,
    score: Scorer | None = None,
    example_length: Callable[[list[dict]], int] | None = None,
    max_length: int | None = None,
) -> SFTBuildStats:
    """Build the SFT file of ``data_files`` (RL parquet files, a directory or a glob) at ``out_path``.

    Rows are streamed in batches (memory stays bounded on image data sets). Writes ``out_path`` and, next to it,
    ``<name>.stats.json`` with the counts; returns them. An RL file without a single correct teacher response gives
    an error, not an empty SFT file.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq
    from tqdm import tqdm

    paths = expand_data_files(data_files)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    partial = out_path.with_name(out_path.name + ".partial")
    stats = SFTBuildStats()
    writer = None
    pending: list[dict] = []

    def flush() -> None:
        nonlocal writer, pending
        if not pending:
            return
        table = pa.Table.from_pylist(pending)
        if writer is None:
            writer = pq.ParquetWriter(str(partial), table.schema)
        writer.write_table(table.cast(writer.schema) if table.schema != writer.schema else table)
        pending = []

    try:
        with tqdm(total=_count_rows(paths), desc=f"SFT examples -> {out_path.name}", unit="row") as progress:
            for path in paths:
                for index, row in enumerate(_iter_rows(path)):
                    examples, row_stats = sft_examples_of_row(
                        row,
                        where=f"{path} row {index}",
                        prompt_key=prompt_key,
                        image_key=image_key,
                        max_responses_per_question=max_responses_per_question,
                        score=score,
                        example_length=example_length,
                        max_length=max_length,
                    )
                    stats.add(row_stats)
                    pending.extend(examples)
                    if len(pending) >= BUILD_BATCH_ROWS:
                        flush()
                    progress.update(1)
        flush()
    finally:
        if writer is not None:
            writer.close()
    if stats.examples == 0:
        partial.unlink(missing_ok=True)
        raise NoSFTExamples(f"{', '.join(paths)}: no SFT example ({stats.summary()})")
    os.replace(partial, out_path)
    out_path.with_name(out_path.stem + ".stats.json").write_text(json.dumps(asdict(stats), indent=1) + "\n")
    return stats


def reward_scorer(config: DictConfig) -> Scorer:
    """Correctness of a teacher response under the run's own reward (the custom reward function if one is set)."""
    from verl.trainer.ppo.reward import get_custom_reward_fn

    from ..reward import compute_score

    score_fn = get_custom_reward_fn(config) or compute_score

    def score(text: str, row: dict) -> bool:
        extra_info = {**(row.get("extra_info") or {}), "zppo_kind": "teacher"}
        result = score_fn(row.get("data_source"), text, (row.get("reward_model") or {}).get("ground_truth"), extra_info)
        value = result.get("acc", result.get("score", 0.0)) if isinstance(result, dict) else result
        return float(value) >= 0.5

    return score


# ---------------------------------------------------------------------------------------------------------------
# off-policy distillation: verl's SFT trainer


def _as_container(node) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def sft_overrides(config: DictConfig, train_file: str, val_file: str | None) -> dict:
    """The settings of verl's SFT config (``sft_trainer_engine.yaml``) that come from the recipe config.

    What is taken from where: ``model`` = ``actor_rollout_ref.model``; ``engine`` = the actor's FSDP config with the
    actor's strategy; ``optim`` = the actor's optimiser; checkpoint contents = the actor's; batch size, length budget,
    micro-batch and epochs from ``off_policy_distill.*`` (defaults: the RL run's); output folder, loggers, steps,
    device and GPUs from the recipe's ``trainer.*``. ``off_policy_distill.sft`` (any SFT key) is merged last.
    """
    settings = config.get(OFF_POLICY_METHOD) or {}
    actor = config.actor_rollout_ref.actor
    engine = _as_container(actor.fsdp_config)
    engine["strategy"] = str(actor.strategy)
    checkpoint = _as_container(actor.checkpoint)
    save_contents = list(checkpoint.get("save_contents") or ["model", "optimizer", "extra"])
    filled = {
        "model": _as_container(config.actor_rollout_ref.model),
        "engine": engine,
        "optim": _as_container(actor.optim),
        "checkpoint": {
            "save_contents": save_contents,
            "load_contents": list(checkpoint.get("load_contents") or save_contents),
        },
        "data": {
            "train_files": train_file,
            "val_files": val_file,
            "train_batch_size": int(settings.get("train_batch_size") or config.data.train_batch_size),
            "micro_batch_size_per_gpu": int(
                settings.get("micro_batch_size_per_gpu") or actor.ppo_micro_batch_size_per_gpu or 1
            ),
            "max_length": sft_max_length(config),
            "truncation": "right",  # examples over max_length were dropped (text tokens); this only cuts image tokens
            "num_workers": int(config.data.get("dataloader_num_workers", 0)),
            "image_key": SFT_IMAGES_KEY,
        },
        "trainer": {
            "default_local_dir": str(config.trainer.default_local_dir),
            "project_name": str(config.trainer.project_name),
            "experiment_name": str(config.trainer.experiment_name),
            "total_epochs": int(settings.get("total_epochs") or config.trainer.total_epochs),
            "total_training_steps": config.trainer.get("total_training_steps"),
            "logger": list(config.trainer.logger),
            "seed": int(config.data.get("seed") or 1),
            "save_freq": int(config.trainer.get("save_freq", -1)),
            "test_freq": int(config.trainer.get("test_freq", -1)),
            "max_ckpt_to_keep": config.trainer.get("max_actor_ckpt_to_keep"),
            "device": str(config.trainer.device),
            "nnodes": int(config.trainer.nnodes),
            "n_gpus_per_node": int(config.trainer.n_gpus_per_node),
        },
    }
    extra = settings.get("sft")
    if extra:
        filled = OmegaConf.to_container(OmegaConf.merge(OmegaConf.create(filled), extra), resolve=True)
    return filled


def sft_max_length(config: DictConfig) -> int:
    settings = config.get(OFF_POLICY_METHOD) or {}
    return int(settings.get("max_length") or int(config.data.max_prompt_length) + int(config.data.max_response_length))


def compose_sft_config(overrides: dict) -> DictConfig:
    """verl's SFT config of the installed verl with ``overrides`` merged on top (in a process without Hydra app)."""
    from hydra import compose, initialize_config_module

    with initialize_config_module("verl.trainer.config", version_base=None):
        sft = compose("sft_trainer_engine")
    with open_dict(sft):
        return OmegaConf.merge(sft, OmegaConf.create(overrides))


def _sft_command(config_path: Path, n_gpus_per_node: int, nnodes: int) -> list[str]:
    torchrun = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n_gpus_per_node}"]
    if nnodes == 1:
        torchrun.append("--standalone")
    else:
        torchrun += [f"--nnodes={nnodes}", "--rdzv_backend=c10d", "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}"]
    return torchrun + ["-m", "recipe.zppo.baselines.distill", "sft", str(config_path)]


def run_off_policy_distill(config: DictConfig) -> None:
    """``method=off_policy_distill``: build the SFT files, write verl's SFT config, run verl's SFT trainer."""
    settings = config.get(OFF_POLICY_METHOD) or {}
    if (config.get("zppo") or {}).get("enable", False):
        raise ConfigError(
            "method=off_policy_distill with zppo.enable=true: off-policy distillation is supervised training on the "
            "stored teacher responses; it has no student rollouts, so no hard questions and no prompt replay buffer "
            "(see docs/distillation.md); leave zppo.enable=false"
        )
    run_dir = Path(config.trainer.default_local_dir)
    data_dir = Path(settings.get("data_dir") or run_dir / "sft_data")
    cap = settings.get("max_responses_per_question")
    cap = None if cap in (None, "all") else int(cap)
    if cap is not None and cap < 1:
        raise ConfigError(f"off_policy_distill.max_responses_per_question={cap}: give a positive number or null (all)")

    from verl.utils import hf_tokenizer

    model = config.actor_rollout_ref.model
    tokenizer = hf_tokenizer(
        model.get("tokenizer_path") or model.path, trust_remote_code=model.get("trust_remote_code", False)
    )
    build = dict(
        prompt_key=str(config.data.get("prompt_key", "prompt")),
        image_key=str(config.data.get("image_key", SFT_IMAGES_KEY)),
        max_responses_per_question=cap,
        score=reward_scorer(config),
        example_length=chat_length_counter(tokenizer),
        max_length=sft_max_length(config),
    )
    try:
        train_stats = write_sft_parquet(config.data.train_files, data_dir / "train.parquet", **build)
    except ValueError as error:
        raise ConfigError(f"data.train_files: {error}") from None
    print(f"zppo: off_policy_distill: train: {train_stats.summary()}")
    val_file = None
    if settings.get("validate", True) and config.data.get("val_files"):
        try:
            val_stats = write_sft_parquet(config.data.val_files, data_dir / "val.parquet", **build)
            val_file = str(data_dir / "val.parquet")
            print(f"zppo: off_policy_distill: val: {val_stats.summary()}")
        except NoSFTExamples as error:  # a validation set without teacher responses: train without SFT validation
            print(f"zppo: off_policy_distill: no SFT validation ({error})")
        except ValueError as error:
            raise ConfigError(f"data.val_files: {error}") from None

    overrides = sft_overrides(config, str(data_dir / "train.parquet"), val_file)
    # The SFT config is composed in the torchrun process (this one is already a Hydra app): it gets this file.
    config_path = run_dir / "sft_overrides.yaml"
    run_dir.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(OmegaConf.create(overrides), config_path)
    trainer = overrides["trainer"]
    command = _sft_command(config_path, int(trainer["n_gpus_per_node"]), int(trainer["nnodes"]))
    if int(trainer["nnodes"]) > 1:
        print(
            "zppo: off_policy_distill on several nodes: run on every node (MASTER_ADDR/MASTER_PORT of node 0):\n  "
            + " ".join(command)
        )
        return
    env = dict(os.environ)
    if str(trainer["device"]) == "cpu":
        env["VERL_PLATFORM"] = "cpu"  # verl_patches' cpu platform in the SFT process
        env.setdefault("OMP_NUM_THREADS", "1")
    if "file" in list(trainer["logger"]):
        # One metrics file per launch, beside the RL methods' (verl's file logger truncates the file it opens).
        (run_dir / "metrics").mkdir(parents=True, exist_ok=True)
        env["VERL_FILE_LOGGER_PATH"] = str(run_dir / "metrics" / f"{time.strftime('%Y%m%d-%H%M%S')}.jsonl")
    print(f"zppo: off_policy_distill: verl SFT trainer: {' '.join(command)}", flush=True)
    result = subprocess.run(command, env=env)
    if result.returncode != 0:
        raise SystemExit(result.returncode)


def _run_sft_from_file(overrides_path: str) -> None:
    """Under torchrun: verl's SFT trainer on verl's SFT config + the overrides written by
    :func:`run_off_policy_distill`.

    What verl's ``run_sft`` does, except the process group on a CPU: verl asks for "cpu:gloo,cpu:gloo" there (its
    CPU side plus the device's backend, both gloo), which torch rejects; a CPU run gets plain gloo.
    """
    import torch.distributed
    from verl.trainer.sft_trainer import SFTTrainer
    from verl.utils.device import auto_set_device
    from verl.utils.distributed import destroy_global_process_group, initialize_global_process_group

    config = compose_sft_config(OmegaConf.to_container(OmegaConf.load(overrides_path), resolve=True))
    auto_set_device(config)
    if str(config.trainer.device) == "cpu":
        torch.distributed.init_process_group(backend="gloo")
    else:
        initialize_global_process_group()
    trainer = SFTTrainer(config=config)
    trainer.fit()
    destroy_global_process_group()


# ---------------------------------------------------------------------------------------------------------------
# evaluation: NLL of the teacher tokens


def teacher_token_nll(
    model_dir: str | Path, sft_file: str | Path, max_rows: int | None = None, max_length: int = 4096
) -> dict:
    """Mean per-token NLL of the assistant (teacher) tokens of ``sft_file`` under the model in ``model_dir``.

    The tokens and the loss mask are those of verl's ``MultiTurnSFTDataset``, i.e. exactly what the SFT trainer
    trains on. Returns ``{"nll": mean over all teacher tokens, "tokens": count, "rows": rows evaluated}``.
    """
    import torch
    from tqdm import tqdm
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText, AutoProcessor, AutoTokenizer
    from verl.utils.dataset.multiturn_sft_dataset import MultiTurnSFTDataset

    model_dir = str(model_dir)
    model_config = AutoConfig.from_pretrained(model_dir)
    vision = getattr(model_config, "vision_config", None) is not None
    model_cls = AutoModelForImageTextToText if vision else AutoModelForCausalLM
    model = model_cls.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    processor = AutoProcessor.from_pretrained(model_dir) if vision else None
    dataset = MultiTurnSFTDataset(
        parquet_files=str(sft_file),
        tokenizer=tokenizer,
        processor=processor,
        config={"pad_mode": "no_padding", "truncation": "right", "max_length": max_length, "image_key": SFT_IMAGES_KEY},
        max_samples=max_rows if max_rows else -1,
    )
    total, tokens = 0.0, 0
    with torch.no_grad():
        for index in tqdm(range(len(dataset)), desc="teacher-token NLL", unit="row"):
            item = dataset[index]
            input_ids = item["input_ids"].unsqueeze(0)
            extra = dict(item.get("multi_modal_inputs") or {})
            if "image_grid_thw" in extra and "mm_token_type_ids" not in extra:
                # verl's dataset drops the processor's token types; Qwen-VL models need them for M-RoPE (1 = image).
                image_token = getattr(model.config, "image_token_id", None)
                extra["mm_token_type_ids"] = (input_ids == image_token).long()
            logits = model(input_ids=input_ids, **extra).logits[0, :-1].float()
            targets = input_ids[0, 1:]
            mask = item["loss_mask"][1:].bool()  # loss_mask marks target positions; predict token t from t-1
            if not mask.any():
                continue
            nll = torch.nn.functional.cross_entropy(logits[mask], targets[mask], reduction="sum")
            total += float(nll)
            tokens += int(mask.sum())
    return {"nll": total / tokens if tokens else math.nan, "tokens": tokens, "rows": len(dataset)}


# ---------------------------------------------------------------------------------------------------------------
# command line


def _main(argv: Iterable[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m recipe.zppo.distill", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    build = commands.add_parser("build-sft", help="RL parquet -> verl SFT parquet (correct teacher responses)")
    build.add_argument("--data", required=True, nargs="+", help="RL parquet file(s), a directory or a glob")
    build.add_argument("--out", required=True)
    build.add_argument("--max-responses-per-question", type=int, default=None)
    build.add_argument("--model", default=None, help="tokenizer folder: drop examples over --max-length tokens")
    build.add_argument("--max-length", type=int, default=None)
    nll = commands.add_parser("nll", help="mean NLL of the teacher tokens of an SFT file under a model")
    nll.add_argument("--model", required=True)
    nll.add_argument("--data", required=True)
    nll.add_argument("--max-rows", type=int, default=None)
    sft = commands.add_parser("sft", help="run verl's SFT trainer with an overrides file (under torchrun)")
    sft.add_argument("overrides", help="YAML merged onto verl's sft_trainer_engine config")
    args = parser.parse_args(list(argv) if argv is not None else None)

    if args.command == "build-sft":
        counter = None
        if args.model and args.max_length:
            from transformers import AutoTokenizer

            counter = chat_length_counter(AutoTokenizer.from_pretrained(args.model))
        stats = write_sft_parquet(
            args.data,
            args.out,
            max_responses_per_question=args.max_responses_per_question,
            example_length=counter,
            max_length=args.max_length,
        )
        print(stats.summary())
    elif args.command == "nll":
        print(json.dumps(teacher_token_nll(args.model, args.data, args.max_rows)))
    else:
        _run_sft_from_file(args.overrides)


if __name__ == "__main__":
    _main()
