"""The paper's two distillation baselines and their dagger variants (App. D.2, Algorithms 2 and 3): start-up checks.

All four run on ZPPO's trainer through the same entry point as every RL method, with verl's distillation
(``distillation.*``: a frozen teacher served by verl in its own resource pool rescores every trajectory's tokens)
and the per-token JSD loss of ``distill_loss.py`` / ``algo/jsd.py``:

``method=on_policy_distill`` (``_buffer``: + the prompt replay buffer)
    Algorithm 3: the student samples n responses; the loss is the JSD on the student's samples
    (``jsd_student_samples``).
``method=off_policy_distill`` (``_buffer``: + the prompt replay buffer, driven by the student's rollouts)
    Algorithm 2: G_T fresh teacher rollouts (the served teacher, ``zppo.teacher.server``) for every prompt and
    step; the correct ones are the update batch and the loss is the JSD on the teacher's samples
    (``jsd_teacher_samples``; ``off_policy_distill.py`` and the trainer's ``_off_policy_distill_batch``).

Every distillation method does one update per step (``zppo.distill``; the schema sets
``zppo.update.num_mini_batches`` to 1). This module checks a run before Ray starts (:func:`prepare_distill`).
See docs/distillation.md.
"""

from __future__ import annotations

from omegaconf import DictConfig, open_dict

from ..trainer.preflight import ConfigError, check_model_path
from .distill_loss import STUDENT_SAMPLES, TEACHER_SAMPLES

ON_POLICY_METHODS = ("on_policy_distill", "on_policy_distill_buffer")
OFF_POLICY_METHODS = ("off_policy_distill", "off_policy_distill_buffer")
DISTILL_METHODS = ON_POLICY_METHODS + OFF_POLICY_METHODS
# verl's key of the single-teacher entry (verl/trainer/config/distillation/distillation.yaml).
TEACHER_PATH_KEY = "distillation.teacher_models.teacher_model.model_path"
# The loss mode each zppo.distill mode trains with (the JSD on the samples it has).
LOSS_OF_MODE = {"on_policy": STUDENT_SAMPLES, "off_policy": TEACHER_SAMPLES}


def method_name(config: DictConfig) -> str:
    return str((config.get("zppo_method") or {}).get("name") or "zppo")


def _distillation_enabled(config: DictConfig) -> bool:
    return bool((config.get("distillation") or {}).get("enabled", False))


def prepare_distill(config: DictConfig) -> None:
    """Check a distillation run before Ray starts (raises :class:`ConfigError` naming the key).

    Also gives a local CPU cluster the logical GPUs of the teacher's pool: verl places the teacher in its own
    resource pool, so a run that starts its own Ray (``ray_kwargs.ray_init.num_gpus`` set) needs the student's GPUs
    plus the teacher's.
    """
    method = method_name(config)
    enabled = _distillation_enabled(config)
    mode = str((config.get("zppo") or {}).get("distill", "none"))
    if method in DISTILL_METHODS and not enabled:
        raise ConfigError(f"method={method} needs distillation.enabled=true (verl's teacher pool rescores the tokens)")
    if mode != "none":
        if not enabled:
            raise ConfigError(f"zppo.distill={mode} needs distillation.enabled=true")
        loss_mode = str(config.distillation.distillation_loss.get("loss_mode"))
        if loss_mode in LOSS_OF_MODE.values() and loss_mode != LOSS_OF_MODE[mode]:
            raise ConfigError(
                f"distillation.distillation_loss.loss_mode={loss_mode} estimates the JSD on the other side's samples: "
                f"zppo.distill={mode} trains on {'the student' if mode == 'on_policy' else 'the teacher'}'s samples, "
                f"use {LOSS_OF_MODE[mode]}"
            )
        mini_batches = (config.zppo.get("update") or {}).get("num_mini_batches")
        if mini_batches not in (None, 1):  # e.g. preset=paper's I = 4, which is the RL methods' (config/schema.py)
            print(f"zppo: zppo.update.num_mini_batches={mini_batches} does not apply to distillation: one update per "
                  "step (App. D.2)", flush=True)
        epochs = int(config.actor_rollout_ref.actor.get("ppo_epochs", 1))
        if epochs != 1:
            raise ConfigError(
                f"actor_rollout_ref.actor.ppo_epochs={epochs}: the distillation baselines do ONE update per step "
                "(App. D.2); set it to 1"
            )
    if mode == "off_policy":
        server = config.zppo.teacher.server
        if not (server.get("url") or server.get("model")):
            raise ConfigError(
                "zppo.teacher.server.model (or .url) is not set: off-policy distillation draws fresh teacher "
                "rollouts every step from the served teacher"
            )
        rollout = config.actor_rollout_ref.rollout
        if rollout.get("calculate_log_probs", False):
            # The update's tokens are the teacher's: the student's rollout has no log-probs of them, so verl's
            # rollout-vs-actor log-prob check (rollout.calculate_log_probs) has nothing to compare.
            with open_dict(config):
                rollout.calculate_log_probs = False
            print("zppo: off-policy distillation trains on teacher tokens: actor_rollout_ref.rollout."
                  "calculate_log_probs set to false (no rollout log-probs of them exist)", flush=True)
        correction = (config.algorithm.get("rollout_correction") or {})
        if correction.get("bypass_mode", False):
            raise ConfigError("algorithm.rollout_correction.bypass_mode=true uses rollout log-probs as the old "
                              "log-probs: off-policy distillation's tokens are the teacher's and have none")
    if not enabled:
        return
    distillation = config.distillation
    teachers = distillation.get("teacher_models") or {}
    if len(teachers) <= 1:  # verl's single-teacher entry; several teachers are verl's own multi-teacher checks
        teacher = teachers.get("teacher_model") or {}
        if not teacher.get("model_path"):
            raise ConfigError(
                f"{TEACHER_PATH_KEY} is not set: distillation needs a teacher model for verl's rescoring "
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
