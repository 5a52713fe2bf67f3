"""Checks run in the driver before Ray starts: one clear line for a mistake, not a traceback from a Ray actor.

Covered: every ``zppo.*`` / ``algorithm.zppo.*`` value (built into the typed config, ``config/schema.py``); the
verl settings ZPPO relies on (sizes that must be positive, a synchronous trainer, no dynamic sampling); the
rollout's prompt length (derived for BCQ/NCQ prompts unless set, at least ``data.max_prompt_length``, and with the
response within the model's context); a model path that does not exist; a data file that does not exist or lacks a
required column; a CPU run on a GPU config (a rollout engine that needs an accelerator) and the reverse (the CPU-only
``hf`` rollout on a GPU device).
"""

from __future__ import annotations

import glob
import importlib
import json
import os
import re

from omegaconf import DictConfig, OmegaConf, open_dict

from ..algo.prompt_budget import PromptBudget, reformulated_prompt_budget, text_tokens_at_most

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
        raise ConfigError(
            f"{key} is not set: give a Hugging Face model folder (or a hub id on a machine with hub access)"
        )
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


def expand_data_files(files) -> list[str]:
    """A data-file setting as the list of files verl reads: a directory means its ``*.parquet`` files, a glob its
    matches (both sorted, e.g. ``/data/zppo77k/train-*.parquet`` for the builder's shards); other entries as given."""
    expanded_files: list[str] = []
    for path in _as_list(files):
        local = os.path.expanduser(path)
        if os.path.isdir(local):
            matches = sorted(glob.glob(os.path.join(local, "*.parquet")))
            if not matches:
                raise ConfigError(f"data directory {path} holds no *.parquet files")
            expanded_files += matches
        elif any(ch in local for ch in "*?[") and glob.glob(local):
            expanded_files += sorted(glob.glob(local))
        else:
            expanded_files.append(path)
    return expanded_files


def teacher_required_by(zppo) -> str | None:
    """The setting that makes this run useless without teacher responses, or None (``zppo``: a ZPPOConfig)."""
    if not zppo.enable:
        return None
    if zppo.guidance.mode != "none":
        return f"zppo.guidance.mode={zppo.guidance.mode}"
    if zppo.reformulation.build_bcq and not zppo.reformulation.build_ncq:
        return "zppo.reformulation.build_bcq=true with build_ncq=false (BCQ only)"
    return None


def _has_teacher_column(path: str) -> bool:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pq.read_schema(os.path.expanduser(path))
    if "extra_info" not in schema.names:
        return False
    extra = schema.field("extra_info").type
    return pa.types.is_struct(extra) and extra.get_field_index("teacher_responses") >= 0


def check_teacher_source(config: DictConfig, zppo) -> None:
    """The run's teacher exists: a server (or a checkpoint to serve) when it needs one, stored responses when a
    method reads them (zppo.teacher.source=offline: BCQ, Hint and Prefix read the stored responses)."""
    server = zppo.teacher.server
    if zppo.needs_teacher_service and not (server.url or server.model):
        raise ConfigError(
            "zppo.teacher.server.model is empty: this run needs a served teacher (fresh teacher rollouts, candidate "
            "compression or hints); name its checkpoint (the run serves it) or zppo.teacher.server.url of a running "
            "OpenAI-compatible server, or turn both off (zppo.teacher.source=offline "
            "zppo.teacher.compression.enable=false)"
        )
    reason = teacher_required_by(zppo)
    stored = zppo.teacher.source != "online" and reason is not None  # the Hint/Prefix baselines too (App. D.2)
    if reason is None or not stored:
        return
    for path in expand_data_files(config.data.train_files):
        if path.endswith(".parquet") and os.path.exists(os.path.expanduser(path)) and not _has_teacher_column(path):
            raise ConfigError(
                f"{reason} reads stored teacher responses, but data.train_files {path} has no "
                "extra_info.teacher_responses: add them (python -m data_prep.teacher_responses)"
            )


# verl sizes that must be positive integers for any run (verl itself accepts some nonsense, e.g. a negative
# data.max_prompt_length trains).
POSITIVE_VERL_KEYS = (
    "data.train_batch_size",
    "data.max_prompt_length",
    "data.max_response_length",
    "actor_rollout_ref.actor.ppo_mini_batch_size",
    "actor_rollout_ref.actor.ppo_epochs",
    "trainer.nnodes",
    "trainer.n_gpus_per_node",
)


def _select(config: DictConfig, key: str):
    node = config
    for part in key.split("."):
        node = node.get(part) if node is not None else None
    return node


def check_verl_values(config: DictConfig) -> None:
    for key in POSITIVE_VERL_KEYS:
        value = _select(config, key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}={value!r}: must be a positive integer")
    steps = config.trainer.get("total_training_steps")
    if steps is not None and (not isinstance(steps, int) or steps < 1):
        raise ConfigError(f"trainer.total_training_steps={steps!r}: must be a positive integer (or null)")


def check_zppo_trainer_settings(config: DictConfig) -> None:
    """verl settings that would silently break ZPPO's step."""
    v1 = config.trainer.v1
    if not config.trainer.get("use_v1", True):
        raise ConfigError("the ZPPO trainer is a V1 trainer: set trainer.use_v1=true")
    sync_steps = [(v1.get(mode) or {}).get("parameter_sync_step", 1) for mode in ("sync", "zppo")]
    if any(value not in (1, None) for value in sync_steps):
        raise ConfigError(
            "trainer.v1.*.parameter_sync_step must be 1: ZPPO is synchronous (BCQ/NCQ are built from this step's "
            "rollouts)"
        )
    if (config.algorithm.get("filter_groups") or {}).get("enable", False):
        raise ConfigError(
            "algorithm.filter_groups (dynamic sampling) discards the zero-advantage groups ZPPO learns from: disable it"
        )
    if v1.sampler.get("sync_refill_failed_groups", False):
        raise ConfigError(
            "trainer.v1.sampler.sync_refill_failed_groups would refill failed BCQ/NCQ groups with fresh questions: "
            "disable it"
        )
    if config.actor_rollout_ref.rollout.get("n", 1) < 2:
        raise ConfigError("actor_rollout_ref.rollout.n must be >= 2: accuracy per question needs several rollouts")


def check_zppo_config(config: DictConfig):
    """Build ZPPO's typed config (every value checked, errors name the key) and check what it depends on."""
    from ..config.schema import ZPPOConfigError, load_advantage_options, load_zppo_config

    try:
        zppo = load_zppo_config(config)
        load_advantage_options(config)
    except ZPPOConfigError as error:
        raise ConfigError(str(error)) from None
    agg = config.actor_rollout_ref.actor.get("loss_agg_mode", "token-mean")
    if zppo.update.loss_weighting != "verl" and agg != "token-mean":
        raise ConfigError(
            f"zppo.update.loss_weighting={zppo.update.loss_weighting} reweights verl's token-mean: it needs "
            f"actor_rollout_ref.actor.loss_agg_mode=token-mean (got {agg})"
        )
    trainer_mode = config.trainer.v1.trainer_mode
    if zppo.enable and trainer_mode != "zppo":
        raise ConfigError(
            f"trainer.v1.trainer_mode={trainer_mode}: ZPPO runs only with trainer_mode=zppo (a synchronous trainer: "
            "BCQ/NCQ are built from this step's rollouts and rolled out by the same weights); "
            "set zppo.enable=false for verl's own trainers"
        )
    if trainer_mode == "zppo":
        check_zppo_trainer_settings(config)
    if zppo.matched.enable:  # grpo_matched: its reference run must be readable before Ray starts
        from ..baselines.compute_matching import ReferenceCurve

        try:
            ReferenceCurve.from_run(zppo.matched.reference)
        except (ValueError, FileNotFoundError) as error:
            raise ConfigError(f"zppo.matched.reference: {error}") from None
    return zppo


PROMPT_LENGTH_KEY = "actor_rollout_ref.rollout.prompt_length"


def prompt_length_is_explicit(config: DictConfig) -> bool:
    """Whether the user set ``actor_rollout_ref.rollout.prompt_length``: verl's default is an interpolation of
    ``data.max_prompt_length`` (``${oc.select:data.max_prompt_length,512}``). Call it before the config is
    resolved (``main_zppo`` resolves it to make paths absolute)."""
    rollout = config.actor_rollout_ref.rollout
    return "prompt_length" in rollout and not OmegaConf.is_interpolation(rollout, "prompt_length")


def reformulated_budget(config: DictConfig, zppo) -> PromptBudget | None:
    """The longest BCQ/NCQ prompt this run can build (``algo/prompt_budget.py``), or None when it builds none.

    Compression on (paper): every candidate is at most ``zppo.teacher.compression.max_tokens``. Off (a deviation):
    candidates are raw responses, a student's at most ``data.max_response_length`` and a teacher's at most
    ``zppo.teacher.max_tokens`` (stored responses are assumed to have been generated under that cap; a longer one
    makes its prompt too long, which is then skipped and counted)."""
    if not zppo.needs_candidates:
        return None
    compression = zppo.teacher.compression
    if compression.enable:
        teacher = student = int(compression.max_tokens)
    else:
        teacher, student = int(zppo.teacher.max_tokens), int(config.data.max_response_length)
    return reformulated_prompt_budget(int(config.data.max_prompt_length), int(config.actor_rollout_ref.rollout.n),
                                      teacher, student, int(zppo.wrong_answer_tokens), zppo.reformulation)


def set_rollout_prompt_length(config: DictConfig, zppo) -> str | None:
    """Set ``actor_rollout_ref.rollout.prompt_length`` to the BCQ/NCQ budget (a run that builds none keeps verl's
    default, ``data.max_prompt_length``); returns a line saying so, or None.

    verl's agent loop left-truncates a text prompt longer than ``rollout.prompt_length`` and refuses a longer
    multimodal one, so the rollout must accept the longest BCQ/NCQ prompt (Tab. 8: they are not bounded by the
    plain prompts' 4,096). Cost: verl's V1 TransferQueue path (this trainer) stores each prompt unpadded, so a large
    prompt_length costs nothing by itself; verl's legacy DataProto path pads every prompt of a batch to
    prompt_length, and without ``use_remove_padding`` (flash-attn varlen on GPUs) the model computes on those pads."""
    if zppo.needs_guidance and zppo.guidance.mode == "hint":  # the Hint baseline: the question + a hint block
        from ..baselines.teacher_guidance import hint_content

        glue = text_tokens_at_most(hint_content("", "", zppo.guidance)) - text_tokens_at_most(
            zppo.guidance.answer_closer)
        total = int(config.data.max_prompt_length) + int(zppo.guidance.hint_max_tokens) + glue
        with open_dict(config):
            config.actor_rollout_ref.rollout.prompt_length = total
        return f"zppo: {PROMPT_LENGTH_KEY}={total} (derived for hint prompts: plain + a hint block; set it to override)"
    budget = reformulated_budget(config, zppo)
    if budget is None:
        return None
    with open_dict(config):
        config.actor_rollout_ref.rollout.prompt_length = budget.total
    return (f"zppo: {PROMPT_LENGTH_KEY}={budget.total} (derived for BCQ/NCQ prompts: plain {budget.plain}, BCQ up to "
            f"{budget.bcq}, NCQ up to {budget.ncq} tokens; set it to override)")


def model_context_length(model_path) -> int | None:
    """``max_position_embeddings`` of a local model folder's config.json (a VL model's ``text_config``'s first), or
    None when it cannot be read here (a hub id, a config without it)."""
    path = os.path.join(os.path.expanduser(str(model_path)), "config.json")
    if not os.path.isfile(path):
        return None
    try:
        with open(path) as f:
            model_config = json.load(f)
    except (OSError, ValueError):
        return None
    for node in (model_config.get("text_config") or {}, model_config):
        value = node.get("max_position_embeddings") if isinstance(node, dict) else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def check_prompt_lengths(config: DictConfig) -> None:
    """The rollout accepts every plain prompt whole, and a prompt at that length plus a full response fits the
    policy's context."""
    prompt_length = config.actor_rollout_ref.rollout.get("prompt_length")
    plain, response = int(config.data.max_prompt_length), int(config.data.max_response_length)
    if prompt_length is None:
        return
    if int(prompt_length) < plain:
        raise ConfigError(
            f"{PROMPT_LENGTH_KEY}={prompt_length} is below data.max_prompt_length={plain}: verl would cut plain "
            "prompts; raise it, or leave it unset (ZPPO derives it)")
    model_path = config.actor_rollout_ref.model.path
    context = model_context_length(model_path)
    if context is not None and int(prompt_length) + response > context:
        raise ConfigError(
            f"{PROMPT_LENGTH_KEY} ({prompt_length}) + data.max_response_length ({response}) = "
            f"{int(prompt_length) + response} exceeds the model's context (max_position_embeddings {context} in "
            f"{model_path}/config.json): lower data.max_response_length, data.max_prompt_length or "
            "zppo.teacher.compression.max_tokens, or set a smaller prompt_length")


def check_config(config: DictConfig, derive_prompt_length: bool = False) -> None:
    """Every check above; with ``derive_prompt_length`` (the user did not set it: ``prompt_length_is_explicit``),
    first sets the rollout's prompt length for BCQ/NCQ prompts."""
    zppo = check_zppo_config(config)
    check_verl_values(config)
    if derive_prompt_length:
        line = set_rollout_prompt_length(config, zppo)
        if line:
            print(line, flush=True)
    check_prompt_lengths(config)
    check_device(config)
    check_model_path("actor_rollout_ref.model.path", config.actor_rollout_ref.model.path)
    columns = required_columns(config)
    check_data_files("data.train_files", config.data.train_files, columns)
    check_data_files("data.val_files", config.data.val_files, columns)
    check_teacher_source(config, zppo)
    check_token_budgets(config)
    check_gpu_stack(config)


# The GPU pieces a vllm run imports (module -> the package that provides it, setup.py's `gpu` extra): vLLM for the
# rollout, flash-attn for the student's attention and its cross-entropy, flash-linear-attention and causal-conv1d for
# Qwen3.5's gated-delta-net layers (transformers falls back to a slow torch path without the last two).
GPU_MODULES = {"vllm": "vllm", "flash_attn": "flash-attn", "fla": "flash-linear-attention",
               "causal_conv1d": "causal-conv1d"}


def check_gpu_stack(config: DictConfig, import_module=importlib.import_module) -> None:
    """With ``rollout.name=vllm``, import each GPU package now: one line naming a missing (or broken) one, rather
    than a traceback from a Ray worker minutes later. Other engines (the CPU preset's ``hf``) are not checked."""
    if config.actor_rollout_ref.rollout.get("name") != "vllm":
        return
    for module, package in GPU_MODULES.items():
        try:
            import_module(module)
        except Exception as error:  # ImportError, or a binary built against another torch/CUDA (OSError, ...)
            raise ConfigError(
                f"actor_rollout_ref.rollout.name=vllm needs the GPU package {package} (import {module} failed: "
                f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}); install the GPU "
                "stack as examples/README.md says ('GPU install')"
            ) from None


def check_token_budgets(config: DictConfig) -> None:
    """verl's token-budget micro-batches (``use_dynamic_bsz``) need every budget >= the longest row (verl asserts it
    mid-step otherwise): the rollout's prompt budget (``rollout.prompt_length``, BCQ/NCQ prompts included) plus
    ``data.max_response_length``."""
    from .memory import token_budgets

    arr = config.actor_rollout_ref
    if not arr.actor.get("use_dynamic_bsz", False):
        return
    prompt = arr.rollout.get("prompt_length") or config.data.max_prompt_length
    longest = int(prompt) + int(config.data.max_response_length)
    for key, budget in token_budgets(config).items():
        if budget is not None and int(budget) < longest:
            raise ConfigError(
                f"{key}={budget}: below the longest row, {longest} tokens (actor_rollout_ref.rollout.prompt_length "
                f"{prompt} + data.max_response_length {config.data.max_response_length}); raise it"
            )


def check_image_patch_size(patch_size, processor) -> None:
    """The dataset's image patch size must be the processor's: verl's rollout resizes images with the processor's
    (agent_loop.py), so another value makes prompt lengths measured at start and for BCQ/NCQ disagree with the
    rollout's. ``data.image_patch_size: null`` (zppo_trainer.yaml) takes the processor's."""
    actual = getattr(getattr(processor, "image_processor", None), "patch_size", None)
    if processor is None or actual is None or patch_size is None or int(patch_size) == int(actual):
        return
    raise ConfigError(
        f"data.image_patch_size={patch_size} but the processor's patch size is {actual} (what the rollout uses): "
        "set data.image_patch_size=null or to the processor's value"
    )
