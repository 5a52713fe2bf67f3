"""ZPPO's typed configuration: the ``zppo.*`` and ``algorithm.zppo.*`` keys as dataclasses, defaults in one place.

Like verl's own configs (``BaseConfig`` dataclasses), each node is a dataclass; the pure modules own theirs
(``ReformulationConfig``, ``GuidanceConfig``, ``MatchingConfig``, ``TeacherConfig``, ``AdvantageOptions``)
and this module composes them. ``register_schema`` puts the two roots into Hydra's ConfigStore, so that
``zppo_trainer.yaml`` takes its ZPPO keys from here (an override of an unknown key or of a wrong type fails when
Hydra composes), and ``load_zppo_config`` builds the dataclasses once, before Ray starts, where every value is
checked: a bad one is a one-line error naming its key.

Paper values (arXiv 2606.18216, Tab. 8 and App. C) are marked *paper*; choices where it is silent, *ours*.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from ..algo.advantage import AdvantageOptions
from ..algo.loss_weighting import MODES as LOSS_WEIGHTING_MODES
from ..algo.reformulation import ReformulationConfig
from ..baselines.compute_matching import MatchingConfig
from ..baselines.teacher_guidance import GuidanceConfig
from ..console import MODES as CONSOLE_MODES
from ..teacher.candidates import ONLINE, TeacherConfig

DISTILL_MODES = ("none", "on_policy", "off_policy")  # zppo.distill
ZPPO_SCHEMA = "zppo_schema"  # ConfigStore names, used in zppo_trainer.yaml's defaults list
ADVANTAGE_SCHEMA = "zppo_advantage_schema"


class ZPPOConfigError(ValueError):
    """A ``zppo.*`` value that cannot work: the message starts with its key."""


def _check(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise ZPPOConfigError(f"zppo.{key}={value!r}: {expected}")


@dataclass
class ReplayConfig:
    # Replay questions from the prompt replay buffer each step (Algorithm 1). paper: on for ZPPO and GRPO-dagger
    enable: bool = True
    # rho_replay: round(ratio x data.train_batch_size) questions drawn uniformly from the buffer each step, ON TOP
    # of the data.train_batch_size new ones (fewer when the buffer holds fewer; half rounded up, ours).
    # paper: 0.25 (Tab. 8)
    ratio: float = 0.25

    def __post_init__(self):
        _check(0.0 <= self.ratio <= 1.0, "replay.ratio", self.ratio, "must be in [0, 1]")


@dataclass
class BufferConfig:
    # |B|max: questions held at most; when full the earliest ADMITTED is evicted (FIFO). Admission and graduation
    # use zppo.hard_threshold (tau). paper: 10,000, FIFO (Tab. 8)
    capacity: int = 10_000

    def __post_init__(self):
        _check(self.capacity >= 1, "buffer.capacity", self.capacity, "must be >= 1")


@dataclass
class UpdateConfig:
    # null: verl's fixed mini-batch SIZE (actor.ppo_mini_batch_size prompts); since a ZPPO batch grows with its
    # BCQ/NCQ groups, that changes the number of updates per step. An integer k: every step's batch is split into
    # exactly k mini-batches (padded to a multiple of k x n), so the number of updates is the same every step.
    # ours: null (verl's behaviour)
    num_mini_batches: int | None = None
    # Loss-aggregation ablation (algo/loss_weighting.py): verl | exclude_zero_adv | per_kind. Needs
    # actor.loss_agg_mode=token-mean unless verl. ours: verl (the paper is silent)
    loss_weighting: str = "verl"

    def __post_init__(self):
        _check(self.num_mini_batches is None or self.num_mini_batches >= 1, "update.num_mini_batches",
               self.num_mini_batches, "must be >= 1 (or null)")
        _check(self.loss_weighting in LOSS_WEIGHTING_MODES, "update.loss_weighting", self.loss_weighting,
               f"expected one of {LOSS_WEIGHTING_MODES}")


@dataclass
class TransferConfig:
    # A hard question's plain-prompt accuracy at its next replay at least this many steps later, split by whether
    # it got second-phase help (algo/transfer.py; zppo/transfer/*). ours: 1
    delay_steps: int = 1

    def __post_init__(self):
        _check(self.delay_steps >= 1, "transfer.delay_steps", self.delay_steps, "must be >= 1")


@dataclass
class ZPPOConfig:
    """Every ``zppo.*`` key (see each node for its help and default)."""

    # false: no reformulation and no replay buffer (the same trainer and data path): plain GRPO with whatever
    # algorithm.adv_estimator says (method=grpo: "zppo", as the paper's GRPO row, App. D.2; method=grpo_verl: "grpo").
    enable: bool = True
    # tau: a question is hard when its plain-prompt accuracy over the n rollouts is below this; the same tau admits
    # it to the buffer (below) and graduates it (at or above; Algorithm 1 line 19). paper: 0.5 (Tab. 8)
    hard_threshold: float = 0.5
    # rho_aug: at most round(aug_ratio x data.train_batch_size) BCQ+NCQ prompts per step (the Hint and Prefix
    # baselines: that many hint / prefix prompts), chosen hardest first (Algorithm 1 steps 3 and 5; algo/caps.py).
    # paper: 0.25 (Tab. 8)
    aug_ratio: float = 0.25
    # Seed of the step's draws outside the prompt builders: which buffered questions are replayed, and the
    # pre-cap's order among equally hard questions (both from (seed, step): reproducible across a resume). ours: 0
    seed: int = 0
    # Tokens allowed per wrong answer in NCQ's "The following answers are all WRONG: ..." list (\boxed{..} and ", "
    # included) when the rollout's prompt length for BCQ/NCQ prompts is derived (README, "Prompt lengths"). A
    # prompt that still does not fit is skipped and counted, never cut. ours: 64
    wrong_answer_tokens: int = 64
    # Print a one-line summary of what ZPPO did every this many steps (0: never).
    summary_every: int = 1
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    # BCQ / NCQ prompt building (Sec. 3.2; algo/reformulation.py)
    reformulation: ReformulationConfig = field(default_factory=ReformulationConfig)
    # The Hint and Prefix baselines (App. D.2, Algorithms 5-6; mode: none | hint | prefix; prefix_fraction alpha,
    # paper 0.4; the hint request's settings, ours; baselines/teacher_guidance.py). Both draw fresh teacher rollouts
    # (zppo.teacher.*) on the round(aug_ratio x data.train_batch_size) hardest hard questions only.
    guidance: GuidanceConfig = field(default_factory=GuidanceConfig)
    update: UpdateConfig = field(default_factory=UpdateConfig)
    # The compute-matched baseline (method=grpo_matched; baselines/compute_matching.py). ours
    matched: MatchingConfig = field(default_factory=MatchingConfig)
    transfer: TransferConfig = field(default_factory=TransferConfig)
    # The frozen teacher: fresh rollouts on hard questions, candidate compression, its server and client
    # (teacher/candidates.py, teacher/client.py, teacher/service.py)
    teacher: TeacherConfig = field(default_factory=TeacherConfig)
    # Write each step's BCQ/NCQ prompts to <run dir>/zppo_prompts/step_<N>.jsonl: -1 all, 0 none, k the first k
    # of each kind. ours: -1
    dump_prompts: int = -1
    # What the terminal shows: all (everything the run prints, as verl) or steps (the per-step [zppo] lines and a
    # progress bar; the full output goes to <run dir>/run.log; console.py). ours: all (make demo uses steps)
    console: str = "all"
    # Set by the distillation methods' files (App. D.2): none | on_policy (Algorithm 3) | off_policy (Algorithm 2;
    # G_T = teacher.rollouts fresh teacher rollouts for every prompt, every step). Either distillation mode makes
    # update.num_mini_batches 1 whatever a preset or the command line says: the paper's distillation baselines do
    # ONE gradient update per step (App. D.2, D.3), where its RL methods do I = 4.
    distill: str = "none"

    def __post_init__(self):
        _check(self.distill in DISTILL_MODES, "distill", self.distill, f"expected one of {DISTILL_MODES}")
        if self.distill != "none":
            self.update.num_mini_batches = 1
        _check(0.0 < self.hard_threshold <= 1.0, "hard_threshold", self.hard_threshold, "must be in (0, 1]")
        _check(0.0 <= self.aug_ratio <= 1.0, "aug_ratio", self.aug_ratio, "must be in [0, 1]")
        _check(self.seed >= 0, "seed", self.seed, "must be >= 0")
        _check(self.wrong_answer_tokens >= 1, "wrong_answer_tokens", self.wrong_answer_tokens, "must be >= 1")
        _check(self.summary_every >= 0, "summary_every", self.summary_every, "must be >= 0")
        _check(self.console in CONSOLE_MODES, "console", self.console, f"expected one of {CONSOLE_MODES}")
        _check(self.dump_prompts >= -1, "dump_prompts", self.dump_prompts, "must be -1 (all), 0 (none) or a count")

    @property
    def needs_teacher(self) -> bool:
        """Whether hard questions are given teacher responses (BCQ, or the hint / prefix baselines)."""
        return self.enable and (self.reformulation.build_bcq or self.guidance.mode != "none")

    @property
    def needs_candidates(self) -> bool:
        """Whether BCQ/NCQ prompts are built (their candidates come from the teacher work)."""
        return self.enable and (self.reformulation.build_bcq or self.reformulation.build_ncq)

    @property
    def needs_guidance(self) -> bool:
        """Whether the run builds the Hint or Prefix baseline's prompts (App. D.2)."""
        return self.enable and self.guidance.mode != "none"

    @property
    def needs_teacher_service(self) -> bool:
        """Whether the run needs a served teacher: fresh teacher rollouts (online: BCQ, Hint, Prefix; the off-policy
        distillation baseline: every prompt, every step), candidate compression, or Fig. 19's hints."""
        if self.distill == "off_policy":
            return True
        if self.needs_guidance:
            return self.guidance.mode == "hint" or self.teacher.source == ONLINE
        if not self.needs_candidates:
            return False
        fresh = self.reformulation.build_bcq and self.teacher.source == ONLINE
        return fresh or self.teacher.compression.enable


def register_schema() -> None:
    """Put the two roots into Hydra's ConfigStore (zppo_trainer.yaml's defaults list names them)."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    store.store(name=ZPPO_SCHEMA, node=ZPPOConfig)
    store.store(name=ADVANTAGE_SCHEMA, node=AdvantageOptions)


def _build(schema: type, values: Any, root: str):
    """``values`` (a DictConfig or a mapping) checked against ``schema`` and built into it."""
    try:
        if OmegaConf.is_config(values):  # resolved where it sits: its interpolations may point outside it
            values = OmegaConf.to_container(values, resolve=True)
        merged = OmegaConf.merge(OmegaConf.structured(schema), values if values is not None else {})
        return OmegaConf.to_object(merged)
    except OmegaConfBaseException as error:
        key = getattr(error, "full_key", "") or ""
        detail = str(error).splitlines()[0]
        raise ZPPOConfigError(f"{root}.{key}: {detail}" if key else f"{root}: {detail}") from None
    except (TypeError, ValueError) as error:  # a node's own check; its message names the key
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise ZPPOConfigError(message) from None


def load_zppo_config(config: Any) -> ZPPOConfig:
    """``config.zppo`` as a checked ``ZPPOConfig`` (a missing section means every default)."""
    return _build(ZPPOConfig, config.get("zppo"), "zppo")


def load_advantage_options(config: Any) -> AdvantageOptions:
    """``config.algorithm.zppo`` as checked ``AdvantageOptions``."""
    return _build(AdvantageOptions, (config.get("algorithm") or {}).get("zppo"), "algorithm.zppo")
