"""The ZPPO trainer: verl's synchronous V1 trainer with ZPPO's step wired in (``trainer.v1.trainer_mode=zppo``).

One step (SPEC "One training step"):

1. ``prepare_step``: the batch is replayed questions from the prompt replay buffer (up to ``zppo.replay.ratio`` of
   the batch) plus fresh questions from the dataset stream, submitted to the rollout as usual. Their stored correct
   teacher texts are tokenized on a background thread meanwhile (teacher_tokens.py), for step 2.
2. Phase 1 of sampling (``_ZPPOSampler``): wait for the batch's rollouts (n per question), read their binary
   accuracy, find the hard questions and build their BCQ/NCQ prompts from THIS step's rollouts.
3. Phase 2: the BCQ/NCQ prompts are rolled out by the same replicas with the same weights, before verl puts the
   replicas to sleep (``on_sample_end``); each is its own group. The two phases form one batch. The baselines use
   the same phase for their own groups: hint/prefix prompts, or ``grpo_matched``'s extra plain-prompt groups of the
   hard questions (compute_matching.py).
4. verl's pipeline runs unchanged on that batch: old log-probs, reference, advantage (``algorithm.adv_estimator=
   zppo`` groups by prompt uid), update.
5. ``step`` then updates the prompt replay buffer (admission of fresh hard questions, graduation of replayed
   ones); the buffer is saved with every checkpoint, before verl marks the checkpoint complete. Every step also logs
   what it spent per prompt kind (compute_ledger.py) and transfer (transfer.py).

The algorithm lives in small pure modules (``reformulation``, ``replay_buffer``, ``advantage``); this file only
moves data between them and verl. ``zppo.enable=false`` gives plain GRPO through the same code path.

Training length: one step is one update. ``trainer.total_training_steps`` (or verl's ``total_epochs`` x
``len(dataset) // train_batch_size``) counts steps; replayed questions take batch slots, so a step consumes fewer
than ``train_batch_size`` fresh questions and the fresh stream (saved with the checkpoint) simply continues,
starting a new shuffled pass when it runs out.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np
import torch
from omegaconf import DictConfig, open_dict
from tensordict import TensorDict

import transfer_queue as tq
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.debug import marked_timer

from ..algo.advantage import take_estimator_seconds
from ..algo.compute_ledger import ComputeLedger
from ..baselines.compute_matching import KIND_EXTRA, MatchingConfig, ReferenceCurve, plan_extra_groups
from .dataset import KIND_ORIGINAL, ZPPODataset
from ..algo.loss_weighting import MODES as LOSS_WEIGHTING_MODES
from ..algo.loss_weighting import loss_weights
from ..algo.reformulation import BCQ, NCQ, HardQuestion, ReformulationConfig, Response, Tokenization, reformulate
from ..algo.replay_buffer import PromptReplayBuffer, state_digest
from ..baselines.teacher_guidance import HINT, PREFIX, GuidanceConfig, build_hints, build_prefixes
from ..teacher.client import OnlineTeacher, OnlineTeacherConfig, TeacherRequest
from ..teacher.tokens import TeacherTokenPrefetch
from ..algo.transfer import TransferTracker

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

TRAINER_NAME = "zppo"
KIND_REPLAY = "replay"
STATE_FILE = "zppo_state.json"
BUFFER_FILE = "zppo_prompt_buffer.npz"  # the prompt replay buffer, next to STATE_FILE in each checkpoint folder


class ZPPOConfigError(ValueError):
    """A verl setting that cannot work with ZPPO."""


@dataclass(frozen=True)
class ZPPOSettings:
    """``zppo.*`` of the config, checked once (documented in config/zppo_trainer.yaml)."""

    enable: bool
    hard_threshold: float
    replay_enable: bool
    replay_ratio: float
    buffer_capacity: int
    admission_threshold: float
    graduation_threshold: float
    reformulation: ReformulationConfig
    summary_every: int
    online_teacher: OnlineTeacherConfig
    guidance: GuidanceConfig
    num_mini_batches: Optional[int]  # None: verl's fixed mini-batch size (actor.ppo_mini_batch_size)
    loss_weighting: str  # verl | exclude_zero_adv | per_kind (loss_weighting.py)
    matched: MatchingConfig  # grpo_matched: extra plain-prompt groups up to a ZPPO run's spend (compute_matching.py)
    transfer_delay_steps: int  # transfer.py
    prefetch_teacher_tokens: bool  # teacher_tokens.py

    @classmethod
    def from_config(cls, config: DictConfig) -> "ZPPOSettings":
        zppo = config.get("zppo") or {}
        reformulation = dict(zppo.get("reformulation") or {})
        reformulation.setdefault("seed", int(zppo.get("seed", 0)))
        settings = cls(
            enable=bool(zppo.get("enable", True)),
            hard_threshold=float(zppo.get("hard_threshold", 0.5)),
            replay_enable=bool((zppo.get("replay") or {}).get("enable", True)),
            replay_ratio=float((zppo.get("replay") or {}).get("ratio", 0.25)),
            buffer_capacity=int((zppo.get("buffer") or {}).get("capacity", 4096)),
            admission_threshold=float((zppo.get("buffer") or {}).get("admission_threshold", 0.5)),
            graduation_threshold=float((zppo.get("buffer") or {}).get("graduation_threshold", 0.5)),
            reformulation=ReformulationConfig(**reformulation),
            summary_every=int(zppo.get("summary_every", 1)),
            online_teacher=OnlineTeacherConfig.from_dict((zppo.get("teacher") or {}).get("online")),
            guidance=GuidanceConfig(**{"seed": int(zppo.get("seed", 0)), **dict(zppo.get("guidance") or {})}),
            num_mini_batches=(zppo.get("update") or {}).get("num_mini_batches"),
            loss_weighting=str((zppo.get("update") or {}).get("loss_weighting", "verl")),
            matched=MatchingConfig(**dict(zppo.get("matched") or {})),
            transfer_delay_steps=int((zppo.get("transfer") or {}).get("delay_steps", 1)),
            prefetch_teacher_tokens=bool((zppo.get("teacher") or {}).get("prefetch_tokens", True)),
        )
        if settings.loss_weighting not in LOSS_WEIGHTING_MODES:
            raise ZPPOConfigError(f"zppo.update.loss_weighting={settings.loss_weighting}: expected one of {LOSS_WEIGHTING_MODES}")
        agg = config.get("actor_rollout_ref", {}).get("actor", {}).get("loss_agg_mode", "token-mean")
        if settings.loss_weighting != "verl" and agg != "token-mean":
            raise ZPPOConfigError(
                f"zppo.update.loss_weighting={settings.loss_weighting} reweights verl's token-mean: it needs "
                f"actor_rollout_ref.actor.loss_agg_mode=token-mean (got {agg})"
            )
        if settings.num_mini_batches is not None and int(settings.num_mini_batches) < 1:
            raise ZPPOConfigError(f"zppo.update.num_mini_batches={settings.num_mini_batches} must be >= 1 (or null)")
        if not 0.0 <= settings.replay_ratio <= 1.0:
            raise ZPPOConfigError(f"zppo.replay.ratio={settings.replay_ratio} must be in [0, 1]")
        if not 0.0 < settings.hard_threshold <= 1.0:
            raise ZPPOConfigError(f"zppo.hard_threshold={settings.hard_threshold} must be in (0, 1]")
        return settings


def check_verl_settings(config: DictConfig) -> None:
    """Refuse verl settings that would silently break ZPPO's step (clear error, before anything starts)."""
    v1 = config.trainer.v1
    if not config.trainer.get("use_v1", True):
        raise ZPPOConfigError("the ZPPO trainer is a V1 trainer: set trainer.use_v1=true")
    if v1.get("sync", {}).get("parameter_sync_step", 1) not in (1, None) or v1.get(TRAINER_NAME, {}).get(
        "parameter_sync_step", 1
    ) not in (1, None):
        raise ZPPOConfigError("ZPPO is synchronous: parameter_sync_step must be 1 (BCQ/NCQ are built from this step's rollouts)")
    filter_groups = config.algorithm.get("filter_groups") or {}
    if filter_groups.get("enable", False):
        raise ZPPOConfigError(
            "algorithm.filter_groups (dynamic sampling) discards the zero-advantage groups ZPPO learns from: disable it"
        )
    if v1.sampler.get("sync_refill_failed_groups", False):
        raise ZPPOConfigError(
            "trainer.v1.sampler.sync_refill_failed_groups would refill failed BCQ/NCQ groups with fresh questions: disable it"
        )
    if config.actor_rollout_ref.rollout.get("n", 1) < 2:
        raise ZPPOConfigError("actor_rollout_ref.rollout.n must be >= 2: accuracy per question needs several rollouts")


def buffer_state_digest(state: dict) -> str:
    """A short digest of a buffer state (logged on save and on restore, so a resume can be checked)."""
    return state_digest(state)[:16]


# ---------------------------------------------------------------------------------------------- TransferQueue I/O


def _as_list(value) -> list:
    """A TransferQueue field (tensor, nested tensor, NonTensorStack, list) as a Python list of per-sample values."""
    if isinstance(value, torch.Tensor):
        if getattr(value, "is_nested", False):
            return list(value.unbind())
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def _accuracy_of(score: float, extra_fields: Any) -> float:
    """The binary correctness ZPPO uses for hardness and the buffer: ``acc`` if the reward gives it, else score >= 1."""
    info = {}
    if isinstance(extra_fields, dict):
        info = extra_fields.get("reward_extra_info") or {}
    acc = info.get("acc") if isinstance(info, dict) else None
    if acc is None:
        return float(score >= 1.0)
    return float(bool(float(acc) >= 0.5))


@dataclass
class Trajectory:
    key: str
    uid: str
    question_id: str
    kind: str
    score: float
    acc: float
    response_ids: list[int]
    prompt_length: int
    weight_version: Optional[int]
    route: Optional[str] = None  # how the reward scored it (parser / judge / unparseable / judge_unavailable)
    correct_position: str = ""  # BCQ only: where the correct candidate was shown ("A" / "B")
    # The response's tokens before its first trained one (response_mask 0): a prefix rollout's teacher tokens.
    given_head: tuple[int, ...] = ()


def read_trajectories(
    keys: list[str], tags: list[dict], partition_id: str = "train", reformulated: bool = False
) -> list[Trajectory]:
    """One TransferQueue read per phase. ``reformulated``: the keys are BCQ/NCQ rollouts (they carry the BCQ position)."""
    fields = ["uid", "zppo_question_id", "zppo_kind", "rm_scores", "extra_fields", "responses", "response_mask", "prompts"]
    if reformulated:
        fields.append("zppo_correct_position")
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=fields)
    positions = _as_list(data["zppo_correct_position"]) if reformulated else [""] * len(keys)
    uids = _as_list(data["uid"])
    question_ids = _as_list(data["zppo_question_id"])
    kinds = _as_list(data["zppo_kind"])
    scores = _as_list(data["rm_scores"])
    extras = _as_list(data["extra_fields"])
    responses = _as_list(data["responses"])
    masks = _as_list(data["response_mask"])
    prompts = _as_list(data["prompts"])
    result = []
    for i, key in enumerate(keys):
        extra = extras[i] if isinstance(extras[i], dict) else getattr(extras[i], "data", {}) or {}
        score = float(torch.as_tensor(scores[i]).float().sum().item())
        mask = torch.as_tensor(masks[i]).bool()
        all_tokens = torch.as_tensor(responses[i])[: mask.numel()]
        response = all_tokens[mask].tolist()
        first_trained = int(mask.int().argmax()) if bool(mask.any()) else mask.numel()
        result.append(
            Trajectory(
                key=key,
                uid=str(uids[i]),
                question_id=str(question_ids[i]),
                kind=str(kinds[i]),
                score=score,
                acc=_accuracy_of(score, extra),
                response_ids=response,
                prompt_length=int(torch.as_tensor(prompts[i]).numel()),
                weight_version=tags[i].get("max_global_steps"),
                route=((extra.get("reward_extra_info") or {}).get("route") if isinstance(extra, dict) else None),
                correct_position=str(positions[i] or ""),
                given_head=tuple(all_tokens[:first_trained].tolist()) if reformulated else (),
            )
        )
    return result


def _add_counts(metrics: dict, counts: dict) -> None:
    """Add a builder's counters to the step's (BCQ/NCQ and hint/prefix share skip counters: they sum)."""
    for key, value in counts.items():
        metrics[key] = metrics.get(key, 0.0) + value


def group_by_uid(trajectories: list[Trajectory]) -> dict[str, list[Trajectory]]:
    groups: dict[str, list[Trajectory]] = defaultdict(list)
    for trajectory in trajectories:
        groups[trajectory.uid].append(trajectory)
    return groups


# ---------------------------------------------------------------------------------------------- sampler


class _ZPPOSampler:
    """Wraps verl's sync ``ReplayBuffer``: for the training partition, sampling is ZPPO's two rollout phases.

    verl's trainer calls ``sample`` between ``on_sample_begin`` and ``on_sample_end`` (which puts the replicas to
    sleep), so phase 2 runs on awake replicas with the step's weights; everything else is delegated unchanged.
    """

    # verl's sync buffer looks for finished rollouts in TransferQueue every 2 s: up to 2 s of idle wait per rollout
    # phase, and a ZPPO step has two. A poll is one metadata read (a few ms), so 0.25 s costs about 1% of a core.
    POLL_INTERVAL_S = 0.25

    def __init__(self, inner, trainer: "ZPPOTrainer"):
        self._inner = inner
        self._trainer = trainer
        if getattr(inner, "poll_interval", 0.0) > self.POLL_INTERVAL_S:
            inner.poll_interval = self.POLL_INTERVAL_S

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        first, metrics = self._inner.sample(global_steps=global_steps, partition_id=partition_id, batch_size=batch_size)
        if partition_id != "train":
            return first, metrics
        second_size = self._trainer.submit_reformulated(first, metrics)
        if second_size == 0:
            return first, metrics
        with marked_timer("zppo/gen_phase2", self._trainer.timing_raw):
            second, second_metrics = self._inner.sample(global_steps=global_steps, partition_id="train", batch_size=second_size)
        metrics.update({f"zppo/phase2/{k}": v for k, v in second_metrics.items() if isinstance(v, (int, float))})
        self._trainer.record_reformulated(second, metrics)
        merged = type(first)(partition_id=first.partition_id, keys=[*first.keys, *second.keys], tags=[*first.tags, *second.tags])
        if hasattr(first, "extra_info") and first.extra_info:
            merged.extra_info.update(first.extra_info)
        return merged, metrics


# ---------------------------------------------------------------------------------------------- trainer


@dataclass
class _StepRecord:
    """What the current step learnt, kept until the buffer update at the end of the step."""

    fresh_accuracy: dict[str, float] = field(default_factory=dict)
    replay_accuracy: dict[str, float] = field(default_factory=dict)
    routes: list[str] = field(default_factory=list)  # reward routes of every rollout of the step


@register_trainer(TRAINER_NAME)
class ZPPOTrainer(PPOTrainerSync):
    """verl's synchronous trainer with ZPPO's reformulation, prompt replay buffer and two-phase sampling."""

    # ZPPO is a synchronous trainer: verl keys its sync code paths (replay-buffer class, checkpoint contents,
    # dataloader refill) on ``trainer_mode == "sync"``, so this trainer reports "sync" whatever name selected it.
    @property
    def trainer_mode(self) -> str:
        return "sync"

    @trainer_mode.setter
    def trainer_mode(self, _name: str) -> None:
        pass

    def __init__(self, config: DictConfig):
        check_verl_settings(config)
        self.zppo = ZPPOSettings.from_config(config)
        # grpo_matched: read before verl starts its workers, so a missing or wrong reference fails at once.
        self.reference_spend = ReferenceCurve.from_run(self.zppo.matched.reference) if self.zppo.matched.enable else None
        with open_dict(config):
            # Exact fresh/replay split: the dataloader yields one question at a time (verl coalesces them).
            config.data.gen_batch_size = 1
        super().__init__(config)
        self.replay_buffer = _ZPPOSampler(self.replay_buffer, self)
        self._record = _StepRecord()
        self.compute_ledger = ComputeLedger()  # rollouts and tokens per prompt kind, for compute-matched comparisons
        self.transfer = TransferTracker(self.zppo.transfer_delay_steps)
        self.online_teacher = OnlineTeacher(self.zppo.online_teacher) if self.zppo.online_teacher.enable else None
        self._teacher_stats_at_last_step: dict[str, int] = {}

    # ------------------------------------------------------------------ data

    def _init_dataloader(self):
        super()._init_dataloader()
        if not isinstance(self.train_dataset, ZPPODataset):
            raise ZPPOConfigError(
                "the ZPPO trainer needs data.custom_cls.path=pkg://recipe.zppo.trainer.dataset, data.custom_cls.name=ZPPODataset"
            )
        # Keys are the data set's row positions: the buffer sizes its key -> slot map to them once.
        self.prompt_buffer = PromptReplayBuffer(
            capacity=self.zppo.buffer_capacity,
            admission_threshold=self.zppo.admission_threshold,
            graduation_threshold=self.zppo.graduation_threshold,
            key_space=len(self.train_dataset),
        )
        # Byte-level BPE tokenizers (Qwen) decode by table lookup there, checked against tokenizer.decode.
        self._tokens = Tokenization.for_tokenizer(self.tokenizer)
        # Stored teacher texts of each step's questions are encoded while phase 1 generates (teacher_tokens.py),
        # by a copy of the tokenizer: the worker thread must not share the driver's.
        self._teacher_tokens = None
        if self._needs_teacher and self.zppo.prefetch_teacher_tokens and self.train_dataset.has_teacher_column:
            self._teacher_tokens = TeacherTokenPrefetch(Tokenization.encoder(copy.deepcopy(self.tokenizer)))

    @property
    def _needs_teacher(self) -> bool:
        """Whether hard questions are given teacher responses (BCQ, or the hint / prefix baselines)."""
        return self.zppo.enable and (self.zppo.reformulation.build_bcq or self.zppo.guidance.mode != "none")

    def _collate(self, items: list[dict]):
        batch_dict = collate_fn(items)
        batch_dict["uid"] = np.array([str(uuid.uuid4()) for _ in items], dtype=object)  # one group per prompt
        batch = tu.get_tensordict(batch_dict)
        tu.assign_non_tensor_data(batch, "global_steps", self.global_steps)
        return batch

    # ------------------------------------------------------------------ step 1: fresh + replayed questions

    def prepare_step(self) -> dict:
        self._record = _StepRecord()
        batch_size = self.config.data.train_batch_size
        replay_ids: list[str] = []
        if self.zppo.enable and self.zppo.replay_enable and len(self.prompt_buffer):
            replay_slots = int(self.zppo.replay_ratio * batch_size)
            # The buffer's keys are row positions of the training data.
            positions = self.prompt_buffer.sample(replay_slots, step=self.global_steps)
            replay_ids = [self.train_dataset.question_id_at(position) for position in positions]
        # Two submissions rather than one concatenated batch: the sampler waits for the groups of both.
        fresh_ids: list[str] = []
        if batch_size - len(replay_ids) > 0:
            fresh = self._next_train_batch(batch_size - len(replay_ids))
            fresh_ids = [str(qid) for qid in _as_list(fresh["zppo_question_id"])]
            self._submit_batch_to_rollout(fresh)
        if replay_ids:
            items = [self.train_dataset.item_for(qid, KIND_REPLAY) for qid in replay_ids]
            self._submit_batch_to_rollout(self._collate(items))
        if self._teacher_tokens is not None:  # encoded while phase 1 generates; used if a question turns hard
            self._teacher_tokens.start(
                {qid: self.train_dataset.teacher_texts_to_encode(qid) for qid in (*fresh_ids, *replay_ids)}
            )
        return {"zppo/replayed_questions": float(len(replay_ids)), "zppo/fresh_questions": float(batch_size - len(replay_ids))}

    # ------------------------------------------------------------------ step 2: hard questions -> BCQ / NCQ

    def _score_teacher_response(self, text: str, row: dict) -> bool:
        """Correctness of a teacher response: the run's own reward function (with its kwargs) on the row's answer."""
        if not hasattr(self, "_teacher_score_fn"):
            from verl.trainer.ppo.reward import get_custom_reward_fn

            from ..reward import compute_score

            self._teacher_score_fn = get_custom_reward_fn(self.config) or compute_score
        extra_info = {**(row.get("extra_info") or {}), "zppo_kind": "teacher"}
        result = self._teacher_score_fn(
            row.get("data_source"), text, (row.get("reward_model") or {}).get("ground_truth"), extra_info
        )
        score = result.get("acc", result.get("score", 0.0)) if isinstance(result, dict) else result
        return float(score) >= 0.5

    def _teacher_material(self, question_ids: list[str], metrics: dict) -> dict[str, list[Response]]:
        """Teacher responses per hard question: stored ones, plus online ones where no stored one is correct."""
        dataset = self.train_dataset
        material = {}
        for qid in question_ids:
            # Token ids encoded during phase 1 where available (teacher_tokens.py); else the reformulation encodes.
            prefetched = self._teacher_tokens.ids_for(qid) if self._teacher_tokens is not None else {}
            material[qid] = [
                Response(text, correct, prefetched.get(text))
                for text, correct in dataset.teacher_responses(qid, score=self._score_teacher_response)
            ]
        if self.online_teacher is None:
            return material
        missing = [qid for qid, responses in material.items() if not any(r.correct for r in responses)]
        requests = [TeacherRequest(qid, dataset.original_messages(qid), dataset.images_of(qid)) for qid in missing]
        answered = 0
        for result in self.online_teacher.responses(requests):
            if result.error is not None:
                logger.warning("online teacher: question %s: %s", result.question_id, result.error)
                continue
            row = dataset.row_of(result.question_id)
            scored = [Response(text, self._score_teacher_response(text, row)) for text in result.texts]
            answered += any(r.correct for r in scored)
            material[result.question_id] = material[result.question_id] + scored
        stats = self.online_teacher.stats()
        for name in ("requests", "cache_hits", "failures", "timeouts"):
            metrics[f"zppo/teacher_online/{name}"] = float(stats.get(name, 0) - self._teacher_stats_at_last_step.get(name, 0))
        self._teacher_stats_at_last_step = dict(stats)
        metrics["zppo/teacher_online/asked"] = float(len(missing))
        metrics["zppo/teacher_online/solved"] = float(answered)
        return material

    def submit_reformulated(self, first, metrics: dict) -> int:
        """Read phase 1, record accuracies, build and submit this step's BCQ/NCQ prompts; returns how many."""
        with marked_timer("zppo/reformulate", self.timing_raw):
            trajectories = read_trajectories(list(first.keys), list(first.tags))
            self._account(trajectories)
            self._record.routes.extend(t.route for t in trajectories if t.route)
            groups = group_by_uid(trajectories)
            threshold = self.zppo.hard_threshold
            accuracy = {uid: float(np.mean([t.acc for t in group])) for uid, group in groups.items()}
            for uid, group in groups.items():
                by_kind = self._record.replay_accuracy if group[0].kind == KIND_REPLAY else self._record.fresh_accuracy
                by_kind[group[0].question_id] = accuracy[uid]
            hard_groups = [g for uid, g in groups.items() if self.zppo.enable and accuracy[uid] < threshold]
            zero_adv_groups = sum(len({t.score for t in group}) == 1 for group in groups.values())
            with marked_timer("zppo/teacher", self.timing_raw):
                teacher = (
                    self._teacher_material([g[0].question_id for g in hard_groups], metrics)
                    if hard_groups and self._needs_teacher
                    else {}
                )
            if self._teacher_tokens is not None:
                metrics.update(self._teacher_tokens.step_metrics())
            hard = [
                HardQuestion(
                    question_id=group[0].question_id,
                    prompt=self.train_dataset.original_messages(group[0].question_id),
                    prompt_length=group[0].prompt_length,
                    ground_truth=self.train_dataset.ground_truth(group[0].question_id),
                    # Token ids only: the reformulation decodes just what it uses (answer check, kept head/tail).
                    student_responses=[Response(None, bool(t.acc), t.response_ids) for t in group],
                    teacher_responses=teacher.get(group[0].question_id, []),
                )
                for group in hard_groups
            ]
            num_groups = max(len(groups), 1)
            metrics["zppo/hard_frac"] = sum(a < threshold for a in accuracy.values()) / num_groups
            metrics["zppo/zero_adv_group_frac"] = zero_adv_groups / num_groups
            fresh, replay = self._record.fresh_accuracy, self._record.replay_accuracy
            metrics["zppo/fresh_acc"] = float(np.mean(list(fresh.values()))) if fresh else 0.0
            metrics["zppo/replay_acc"] = float(np.mean(list(replay.values()))) if replay else float("nan")
            self._check_on_policy(trajectories, metrics, prefix="zppo/phase1")
            metrics.update({"zppo/hard_questions": float(len(hard)), "zppo/bcq_built": 0.0, "zppo/ncq_built": 0.0})
            if self.zppo.guidance.mode != "none":
                metrics.update({f"zppo/{self.zppo.guidance.mode}_built": 0.0})
            # Transfer: this step's plain-prompt accuracy completes the records of questions found hard earlier.
            for uid, group in groups.items():
                self.transfer.observe_plain(group[0].question_id, self.global_steps, accuracy[uid])
            if not hard:
                return 0
            items = self._build_phase2_items(hard, metrics)
            helped = {item["zppo_question_id"] for item in items}
            for group in hard_groups:
                question_id = group[0].question_id
                self.transfer.mark_hard(question_id, self.global_steps, accuracy[group[0].uid], question_id in helped)
            if not items:
                return 0
            self._submit_batch_to_rollout(self._collate(items))
            return len(items)

    def _build_phase2_items(self, hard: list[HardQuestion], metrics: dict) -> list[dict]:
        """This step's second-phase prompts for the hard questions: BCQ/NCQ, and the hint/prefix baselines."""
        self._built_items: dict[int, dict] = {}
        self._prefix_ids: dict[str, list[int]] = {}
        items = []

        def item_of(prompt, correct_position: str = "") -> dict:
            item = self._built_items.pop(id(prompt), None) or self.train_dataset.item_for(
                prompt.question_id, prompt.kind, messages=prompt.messages
            )
            item["zppo_correct_position"] = correct_position  # BCQ: "A" or "B"; audit only
            return item

        reformulation = self.zppo.reformulation
        if reformulation.build_bcq or reformulation.build_ncq:
            result = reformulate(
                hard,
                step=self.global_steps,
                tokens=self._tokens,
                max_prompt_length=int(self.config.data.max_prompt_length),
                config=reformulation,
                measure_prompt=self._measure_prompt,
            )
            metrics.update(result.metrics(prefix="zppo/"))
            items += [item_of(p, p.correct_position or "") for p in result.prompts]

        if self.reference_spend is not None:  # grpo_matched (compute_matching.py)
            plan = plan_extra_groups(
                target=self.reference_spend.at(self.global_steps),
                spent=self.compute_ledger.total("generated_tokens"),
                hard=[(q.question_id, float(np.mean([r.correct for r in q.student_responses])),
                       float(np.mean([len(r.token_ids) for r in q.student_responses]))) for q in hard],
                n=int(self.config.actor_rollout_ref.rollout.n),
                max_per_hard=self.zppo.matched.max_extra_groups_per_hard,
            )
            metrics.update(plan.metrics())
            metrics["zppo/extra_built"] = float(len(plan.question_ids))
            for question_id in plan.question_ids:
                item = self.train_dataset.item_for(question_id, KIND_EXTRA)
                item["zppo_correct_position"] = ""
                items.append(item)

        guidance = self.zppo.guidance
        if guidance.mode == HINT:
            result = build_hints(
                hard, step=self.global_steps, tokens=self._tokens,
                max_prompt_length=int(self.config.data.max_prompt_length), config=guidance,
                measure_prompt=self._measure_prompt,
            )
            _add_counts(metrics, result.metrics(prefix="zppo/"))
            items += [item_of(p) for p in result.prompts]
        elif guidance.mode == PREFIX:
            from ..baselines.prefix_agent_loop import AGENT_NAME, PREFIX_IDS_KEY

            result = build_prefixes(
                hard, step=self.global_steps, tokens=self._tokens,
                max_response_length=int(self.config.data.max_response_length), config=guidance,
            )
            _add_counts(metrics, result.metrics(prefix="zppo/"))
            default_loop = self.config.actor_rollout_ref.rollout.agent.default_agent_loop
            for item in items:  # a batch names its agent loop for every item or for none
                item["agent_name"] = default_loop
            for plan in result.prompts:
                item = item_of(plan)
                item["agent_name"] = AGENT_NAME
                item[PREFIX_IDS_KEY] = list(plan.prefix_ids)
                self._prefix_ids[str(plan.question_id)] = list(plan.prefix_ids)
                items.append(item)
        return items

    def _measure_prompt(self, prompt) -> int:
        """The final length check: the processor's length of the built prompt (what the rollout will see)."""
        with marked_timer("zppo/length_check", self.timing_raw):
            return self._processor_length(prompt)

    def _processor_length(self, prompt) -> int:
        dataset = self.train_dataset
        item = dataset.item_for(prompt.question_id, prompt.kind, messages=prompt.messages)
        self._built_items[id(prompt)] = item  # reused when the prompt is submitted
        messages = item["raw_prompt"]
        apply_kwargs = dict(dataset.apply_chat_template_kwargs)
        if dataset.processor is None:
            ids = dataset.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=False, **apply_kwargs)
            return len(ids)
        from verl.utils.tokenizer import build_multimodal_processor_inputs

        text = dataset.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False, **apply_kwargs)
        images, videos, audios = dataset._process_multi_modal_info(messages, dataset.image_patch_size, dataset.config)
        if images is None and videos is None and audios is None:
            return len(dataset.processor.tokenizer(text=text, add_special_tokens=False)["input_ids"])
        inputs = build_multimodal_processor_inputs(dataset.processor, text=[text], images=images, videos=videos,
                                                   audio=audios, mm_processor_kwargs=dataset.mm_processor_kwargs)
        return len(inputs["input_ids"][0])

    def record_reformulated(self, second, metrics: dict) -> None:
        """Phase-2 metrics: accuracy on BCQ / NCQ prompts, and the position-bias audit of BCQ."""
        trajectories = read_trajectories(list(second.keys), list(second.tags), reformulated=True)
        self._account(trajectories)
        self._record.routes.extend(t.route for t in trajectories if t.route)
        self._check_on_policy(trajectories, metrics, prefix="zppo/phase2")
        by_kind: dict[str, list[float]] = defaultdict(list)
        by_position: dict[str, list[float]] = defaultdict(list)
        for t in trajectories:
            by_kind[t.kind].append(t.acc)
            if t.kind == BCQ and t.correct_position:
                by_position[t.correct_position].append(t.acc)
        guided = (self.zppo.guidance.mode,) if self.zppo.guidance.mode != "none" else ()
        extra = (KIND_EXTRA,) if self.reference_spend is not None else ()
        for kind in (BCQ, NCQ, *guided, *extra):
            metrics[f"zppo/{kind}_acc"] = float(np.mean(by_kind[kind])) if by_kind[kind] else float("nan")
        # In-context saturation: second-phase groups whose n rollouts all scored the same teach nothing either.
        groups_by_kind: dict[str, list[list[Trajectory]]] = defaultdict(list)
        for group in group_by_uid(trajectories).values():
            groups_by_kind[group[0].kind].append(group)
        for kind, groups in groups_by_kind.items():
            zero = sum(len({t.score for t in group}) == 1 for group in groups)
            metrics[f"zppo/{kind}_zero_adv_group_frac"] = zero / len(groups)
        prefixed = [t for t in trajectories if t.kind == PREFIX]
        if prefixed:
            metrics.update(self._audit_prefix_rollouts(prefixed))
        for position in ("A", "B"):
            values = by_position[position]
            metrics[f"zppo/bcq_acc_correct_at_{position.lower()}"] = float(np.mean(values)) if values else float("nan")
        metrics["zppo/reformulated_rollouts"] = float(len(trajectories))

    def _audit_prefix_rollouts(self, trajectories: list[Trajectory]) -> dict[str, float]:
        """What the update will see of the teacher prefixes, from the stored trajectories (phase 2's one read).

        ``prefix/intact_frac``: share of prefix rollouts whose response starts with exactly the planned teacher
        tokens, all masked; ``prefix/tokens_in_loss``: planned tokens not in that masked start (must be 0);
        ``prefix/tokens_masked`` and ``prefix/continuation_tokens``: what is excluded from and kept in the loss.
        """
        intact = in_loss = masked = continuation = 0
        for t in trajectories:
            planned = tuple(self._prefix_ids.get(t.question_id, []))
            kept = next((i for i, (a, b) in enumerate(zip(t.given_head, planned)) if a != b), min(len(t.given_head), len(planned)))
            intact += t.given_head == planned
            in_loss += len(planned) - kept
            masked += len(t.given_head)
            continuation += len(t.response_ids)
        count = max(len(trajectories), 1)
        return {
            "zppo/prefix/intact_frac": intact / count,
            "zppo/prefix/tokens_in_loss": float(in_loss),
            "zppo/prefix/tokens_masked": float(masked),
            "zppo/prefix/continuation_tokens": float(continuation),
        }

    def _account(self, trajectories: list[Trajectory]) -> None:
        """Spend of this step's rollouts: ``response_ids`` are the sampled tokens (a prefix's teacher tokens are not)."""
        for t in trajectories:
            self.compute_ledger.add(t.kind, prompt_tokens=t.prompt_length, generated_tokens=len(t.response_ids))

    def _check_on_policy(self, trajectories: list[Trajectory], metrics: dict, prefix: str) -> None:
        """Every rollout of this step must come from the weights synced at the end of the previous step."""
        expected = self.global_steps - 1
        versions = [t.weight_version for t in trajectories if t.weight_version is not None]
        metrics[f"{prefix}/stale_rollouts"] = float(sum(v != expected for v in versions))

    # ------------------------------------------------------------------ update: loss weight of each prompt kind

    def _compute_advantage(self, batch, metrics: dict):
        """verl's advantage, then ``zppo.update.loss_weighting`` (see loss_weighting.py); logs each kind's weight."""
        batch = super()._compute_advantage(batch, metrics)
        keys = [key for key, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)]
        data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id,
                               select_fields=["advantages", "response_mask", "zppo_kind"])
        advantages, masks = list(data["advantages"].unbind()), list(data["response_mask"].unbind())
        kinds = [str(kind) for kind in _as_list(data["zppo_kind"])]
        # What the update uses, per prompt kind (padding rows excluded): read here, with the advantages, not again.
        for kind in (KIND_ORIGINAL, KIND_REPLAY, BCQ, NCQ, HINT, PREFIX, KIND_EXTRA):
            metrics[f"zppo/update/{kind}_trajectories"] = float(kinds.count(kind))
        signal = [bool(((a != 0) & m.bool()).any()) for a, m in zip(advantages, masks)]
        weights = loss_weights(kinds, [int(m.sum()) for m in masks], signal, self.zppo.loss_weighting)
        metrics.update({f"zppo/loss_weight/{kind}": value for kind, value in weights.kind_weight.items()})
        if self.zppo.loss_weighting == "verl" or not any(weights.keep):
            return batch  # nothing to change (a batch without any signal keeps verl's masks: no 0/0 loss)
        advantages = [a * m for a, m in zip(advantages, weights.multipliers)]
        masks = [m if keep else torch.zeros_like(m) for m, keep in zip(masks, weights.keep)]
        fields = TensorDict(
            {"advantages": torch.nested.as_nested_tensor(advantages, layout=torch.jagged),
             "response_mask": torch.nested.as_nested_tensor(masks, layout=torch.jagged)},
            batch_size=len(keys),
        )
        tq.kv_batch_put(keys=keys, partition_id=batch.partition_id, fields=fields)
        metrics["zppo/loss_weight/excluded_responses"] = float(len(keys) - sum(weights.keep))
        return batch

    # ------------------------------------------------------------------ update: a fixed NUMBER of mini-batches

    def _get_required_batch_multiple(self, dp_size: int) -> int:
        """With ``zppo.update.num_mini_batches``, pad the batch to a multiple of (mini-batches x n x dp), not of
        verl's fixed mini-batch size: a ZPPO batch's size changes every step (BCQ/NCQ groups), so a fixed size
        would change the number of updates per step (mu) and pad many empty rows."""
        if self.zppo.num_mini_batches is None:
            return super()._get_required_batch_multiple(dp_size)
        n = int(self.config.actor_rollout_ref.rollout.n)
        return math.lcm(dp_size, int(self.zppo.num_mini_batches) * n)

    def _update_actor(self, batch, metrics: dict):
        """verl's update with the mini-batch size of this step's batch: len(batch) / num_mini_batches."""
        if self.zppo.num_mini_batches is None:
            return super()._update_actor(batch, metrics)
        n = int(self.config.actor_rollout_ref.rollout.n)
        num_mini_batches = int(self.zppo.num_mini_batches)
        prompts_per_mini_batch = len(batch.keys) // (num_mini_batches * n)  # exact: see the batch multiple above
        actor = self.config.actor_rollout_ref.actor
        configured = actor.ppo_mini_batch_size
        with open_dict(self.config):
            actor.ppo_mini_batch_size = prompts_per_mini_batch
        try:
            result = super()._update_actor(batch, metrics)
        finally:
            with open_dict(self.config):
                actor.ppo_mini_batch_size = configured
        metrics["zppo/update/mini_batches"] = float(num_mini_batches)
        metrics["zppo/update/mini_batch_trajectories"] = float(prompts_per_mini_batch * n)
        return result

    # ------------------------------------------------------------------ step 5: buffer update

    def step(self, metrics: dict, timing_raw: dict):
        batch = super().step(metrics, timing_raw)
        # ZPPO's estimator alone (verl's `adv` timer also holds its TransferQueue traffic); 0 under plain GRPO.
        timing_raw["zppo/adv_estimator"] = take_estimator_seconds()
        metrics.update(self.compute_ledger.close_step())
        metrics.update(self.transfer.close_step())
        if self.reference_spend is not None:  # grpo_matched's tracking error: own spend minus the reference's
            metrics["zppo/matched/gap_tokens"] = (
                self.compute_ledger.total("generated_tokens") - self.reference_spend.at(self.global_steps)
            )
        if self._record.routes:  # share of this step's answers scored by each reward route
            from ..reward import route_shares

            metrics.update(route_shares(self._record.routes, prefix="zppo/reward/"))
        with marked_timer("zppo/buffer", timing_raw):
            self._update_prompt_buffer(metrics)
        return batch

    def _update_prompt_buffer(self, metrics: dict) -> None:
        if self.zppo.enable and self.zppo.replay_enable:
            position_of = self.train_dataset.position_of  # the buffer's keys are row positions
            for question_id, accuracy in self._record.replay_accuracy.items():
                self.prompt_buffer.update_replayed(position_of(question_id), accuracy, step=self.global_steps)
            for question_id, accuracy in self._record.fresh_accuracy.items():
                self.prompt_buffer.admit(position_of(question_id), accuracy, step=self.global_steps)
        deltas = self.prompt_buffer.step_deltas()
        metrics["zppo/buffer_size"] = float(len(self.prompt_buffer))
        for name, value in deltas.items():
            metrics[f"zppo/{name}"] = float(value)
        if self.zppo.summary_every > 0 and self.global_steps % self.zppo.summary_every == 0:
            print(self._summary_line(metrics, deltas), flush=True)

    def _summary_line(self, metrics: dict, deltas: dict) -> str:
        """One line per step of what ZPPO did, read from the step's own metrics."""
        nan = float("nan")
        questions = len(self._record.fresh_accuracy) + len(self._record.replay_accuracy)
        return (
            f"[zppo] step {self.global_steps}: hard {int(metrics.get('zppo/hard_questions', 0))}/{questions}"
            f" | BCQ {int(metrics.get('zppo/bcq_built', 0))} (acc {metrics.get('zppo/bcq_acc', nan):.2f})"
            f" | NCQ {int(metrics.get('zppo/ncq_built', 0))} (acc {metrics.get('zppo/ncq_acc', nan):.2f})"
            + (
                f" | {mode} {int(metrics.get(f'zppo/{mode}_built', 0))} (acc {metrics.get(f'zppo/{mode}_acc', nan):.2f})"
                if (mode := self.zppo.guidance.mode) != "none"
                else ""
            )
            + f" | skipped for length {int(metrics.get('zppo/skipped_for_length', 0))}"
            f" | buffer {len(self.prompt_buffer)} (+{deltas.get('admitted', 0)} in,"
            f" -{deltas.get('graduated', 0)} graduated, -{deltas.get('evicted', 0)} evicted)"
        )

    # ------------------------------------------------------------------ checkpoint

    def _save_checkpoint(self):
        # Written before verl writes latest_checkpointed_iteration.txt (inside super()): a checkpoint marked
        # complete always has its buffer.
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        os.makedirs(folder, exist_ok=True)
        # The prompt replay buffer goes to its own .npz (numpy arrays, written atomically), logged with its digest.
        buffer_path = os.path.join(folder, BUFFER_FILE)
        buffer_state = self.prompt_buffer.save(buffer_path)
        print(
            f"[zppo] saved a prompt replay buffer of {len(self.prompt_buffer)} questions to {buffer_path} "
            f"(state sha256 {buffer_state_digest(buffer_state)})",
            flush=True,
        )
        state = {
            "global_steps": self.global_steps,
            "data_fingerprint": self.train_dataset.fingerprint,
            # Answers already fetched from the online teacher: a resumed run does not ask again.
            "online_teacher": self.online_teacher.state_dict() if self.online_teacher is not None else None,
            "compute": self.compute_ledger.state_dict(),  # cumulative rollouts/tokens continue after a resume
            "transfer": self.transfer.state_dict(),  # hard questions awaiting their next plain-prompt rollout
        }
        tmp = os.path.join(folder, STATE_FILE + ".tmp")
        with open(tmp, "w") as f:
            json.dump(state, f)
        os.replace(tmp, os.path.join(folder, STATE_FILE))
        super()._save_checkpoint()

    def _load_checkpoint(self):
        super()._load_checkpoint()
        if self.global_steps == 0:
            return
        if self.config.trainer.resume_mode == "resume_path":
            folder = self.config.trainer.resume_from_path
        else:
            folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        path = os.path.join(folder, STATE_FILE)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"{path} is missing: this checkpoint was not written by the ZPPO trainer, so the prompt replay buffer "
                "cannot be restored (start a new run directory, or resume_mode=disable)"
            )
        with open(path) as f:
            state = json.load(f)
        if state["data_fingerprint"] != self.train_dataset.fingerprint:
            raise ValueError(
                f"{path}: the training data differs from the data this run was checkpointed with "
                f"(fingerprint {state['data_fingerprint']} vs {self.train_dataset.fingerprint}); the buffer holds "
                "row positions of the old data"
            )
        buffer_path = os.path.join(folder, BUFFER_FILE)
        if not os.path.exists(buffer_path):
            raise FileNotFoundError(
                f"{buffer_path} is missing: the prompt replay buffer of this checkpoint cannot be restored (checkpoints "
                f"written before the buffer moved out of {STATE_FILE} cannot be resumed; start a new run directory, "
                "or resume_mode=disable)"
            )
        self.prompt_buffer.load(buffer_path)
        self.compute_ledger.load_state_dict(state.get("compute"))
        self.transfer.load_state_dict(state.get("transfer"))
        if self.online_teacher is not None and state.get("online_teacher"):
            self.online_teacher.load_state_dict(state["online_teacher"])
        print(
            f"[zppo] restored a prompt replay buffer of {len(self.prompt_buffer)} questions from {buffer_path} "
            f"(state sha256 {buffer_state_digest(self.prompt_buffer.state_dict())})",
            flush=True,
        )
