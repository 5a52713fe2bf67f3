"""The ZPPO trainer: verl's synchronous V1 trainer with ZPPO's step wired in (``trainer.v1.trainer_mode=zppo``).

One step (Algorithm 1, App. C of arXiv 2606.18216), data flowing one way:

1. ``prepare_step``: ``data.train_batch_size`` new questions from the data set and, ON TOP of them,
   round(rho_replay x that) questions drawn uniformly from the prompt replay buffer are submitted to the rollout
   as usual (``algo.caps``).
2. While phase 1 runs, each plain group is read as soon as it is scored (``_on_poll``); a hard one starts its
   teacher work at once (``teacher.candidates``: fresh teacher rollouts, candidate compression), overlapping the
   rest of the student's rollouts. ``_second_phase`` (called once by the sampler, after every plain group is
   scored) decides which questions are hard (``algo.step``), waits for their teacher work, and builds BCQ/NCQ
   prompts (``algo.reformulation``) for the hardest of them within Algorithm 1's pre-cap and post-cap
   (``algo.caps``), or a baseline's prompts, from THIS step's rollouts; the same replicas
   roll them out with the same weights, before verl puts the replicas to sleep. Each prompt is its own group;
   both phases form one batch.
3. verl's pipeline runs unchanged on that batch: old log-probs, advantage (``algorithm.adv_estimator=zppo``,
   grouped by prompt uid), update.
4. ``step`` then updates the prompt replay buffer from the PLAIN groups only, logs the step and its summary line.
   The buffer and the trainer's counters are saved with every checkpoint.

ZPPO's decisions live in pure modules (``algo/``); this file only moves data between them and verl.
``zppo.enable=false`` gives plain GRPO through the same code path.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import time
import uuid

import numpy as np
import torch
import transfer_queue as tq
from omegaconf import DictConfig, open_dict
from tensordict import TensorDict
from verl.trainer.ppo.v1.trainer_base import register_trainer
from verl.trainer.ppo.v1.trainer_sync import PPOTrainerSync
from verl.utils import tensordict_utils as tu
from verl.utils.dataset.rl_dataset import collate_fn
from verl.utils.debug import marked_timer

from ..algo import caps
from ..algo import step as zstep
from ..algo.answer_format import extract_final_answer
from ..algo.compute_ledger import ComputeLedger
from ..algo.loss_weighting import loss_weights
from ..algo.reformulation import BCQ, NCQ, CandidateSet, Tokenization
from ..algo.replay_buffer import BUFFER_FILE, PromptReplayBuffer, state_digest
from ..algo.transfer import TransferTracker
from ..baselines.compute_matching import KIND_EXTRA, ReferenceCurve, plan_extra_groups
from ..baselines.off_policy_distill import KIND_DISTILL, TeacherRollouts, build_trajectories
from ..baselines.teacher_guidance import HINT, PREFIX, GuidanceMaterial, build_hints, build_prefixes
from ..config.schema import load_zppo_config
from ..teacher.candidates import OFFLINE, TeacherWork, WrongRollout
from ..teacher.client import TeacherClient
from .dataset import ZPPODataset
from .prompt_dump import PromptDump
from .rollouts import CORRECT_POSITION_KEY, as_list, read_rollouts

logger = logging.getLogger(__name__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "INFO"))

TRAINER_NAME = "zppo"
STATE_FILE = "zppo_state.json"  # the trainer's counters, next to the buffer's file in each checkpoint folder
ALL_KINDS = (zstep.KIND_ORIGINAL, zstep.KIND_REPLAY, BCQ, NCQ, HINT, PREFIX, KIND_EXTRA)


class TwoPhaseSampler:
    """verl's sync ``ReplayBuffer`` with ZPPO's second rollout phase inside ``sample`` (training partition only).

    verl's trainer calls ``sample`` between ``on_sample_begin`` and ``on_sample_end`` (which puts the replicas to
    sleep), so the second phase runs on awake replicas with the step's weights. ``second_phase(first, metrics,
    sample)`` gets the scored first phase and a function that waits for n more prompts, and returns the step's
    batch; everything else is delegated unchanged.
    """

    # verl's sync buffer looks for finished rollouts every 2 s: up to 2 s of idle wait per rollout phase, and a
    # ZPPO step has two. A poll is one metadata read, so a shorter interval costs little.
    POLL_INTERVAL_S = 0.25

    def __init__(self, inner, second_phase, on_poll=None):
        self._inner = inner
        self._second_phase = second_phase
        self._polling = False  # phase 1 of a training step: on_poll sees each poll's finished groups
        # Prompts submitted for phase 1 of this step (new + replayed questions, set by the trainer's prepare_step):
        # verl asks for data.train_batch_size, but the replayed questions come on top of the new ones.
        self.plain_batch_size: int | None = None
        if getattr(inner, "poll_interval", 0.0) > self.POLL_INTERVAL_S:
            inner.poll_interval = self.POLL_INTERVAL_S
        # verl 0.9.1's sync ReplayBuffer waits between two TransferQueue polls in ``_wait_for_next_poll``: wrapping
        # it on this instance lets the trainer see groups as they finish (to start their teacher work early).
        # Without it (another verl) the teacher work simply starts after phase 1.
        wait = getattr(inner, "_wait_for_next_poll", None)
        if on_poll is not None and wait is not None:
            def wait_and_look(partition_id, last_debug_time):
                if self._polling and partition_id == "train":
                    on_poll(inner)
                return wait(partition_id, last_debug_time)

            inner._wait_for_next_poll = wait_and_look

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def sample(self, global_steps: int, partition_id: str, batch_size: int):
        if partition_id == "train" and self.plain_batch_size:
            batch_size = self.plain_batch_size
        self._polling = partition_id == "train"
        try:
            first, metrics = self._inner.sample(global_steps=global_steps, partition_id=partition_id,
                                                batch_size=batch_size)
        finally:
            self._polling = False
        if partition_id != "train":
            return first, metrics

        def sample_more(size: int):
            return self._inner.sample(global_steps=global_steps, partition_id="train", batch_size=size)

        return self._second_phase(first, metrics, sample_more), metrics


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
        self.zppo = load_zppo_config(config)  # checked before Ray started (main_zppo); built here from that config
        self.reference_spend = (
            ReferenceCurve.from_run(self.zppo.matched.reference) if self.zppo.matched.enable else None
        )
        with open_dict(config):
            # Exact fresh/replay split: the dataloader yields one question at a time (verl coalesces them).
            config.data.gen_batch_size = 1
        super().__init__(config)
        self.replay_buffer = TwoPhaseSampler(self.replay_buffer, self._second_phase, on_poll=self._on_poll)
        # One tau for hardness, admission and graduation (Algorithm 1 line 19).
        self.prompt_buffer = PromptReplayBuffer(capacity=self.zppo.buffer.capacity,
                                                threshold=self.zppo.hard_threshold, seed=self.zppo.seed)
        self.compute_ledger = ComputeLedger()  # rollouts and tokens per prompt kind, for compute-matched comparisons
        self.transfer = TransferTracker(self.zppo.transfer.delay_steps)
        teacher = self.zppo.teacher
        # main_zppo started the teacher service (or was given its url) before Ray: zppo.teacher.server.url is set.
        self.teacher_client = (TeacherClient(teacher.server.url, teacher.server.model, teacher.client)
                               if self.zppo.needs_teacher_service and teacher.server.url else None)
        self.teacher_work = TeacherWork(self.teacher_client, teacher, seed=self.zppo.reformulation.seed)
        self._teacher_busy_at_step_start = 0.0
        self._early_rollouts: dict[str, zstep.Rollout] = {}  # phase-1 rollouts read while phase 1 still ran
        self._early_uids: set[str] = set()
        self.prompt_dump = PromptDump(config.trainer.default_local_dir, self.zppo.dump_prompts)
        self._plain = zstep.PlainOutcome()  # this step's plain-prompt outcome: set in phase 1, read at the step end
        self._groups: list[zstep.Group] = []  # this step's groups, both phases (the buffer keeps the plain ones)
        self._num_new = 0  # |X_new| of this step
        self._routes: list[str] = []  # reward routes of this step's rollouts
        self._teacher_routes: list[str] = []  # reward routes of the teacher responses scored this step
        # method=off_policy_distill(_buffer), Algorithm 2: G_T fresh teacher rollouts for every prompt of the step.
        self.distill_rollouts = None
        if self.zppo.distill == "off_policy":
            self.distill_rollouts = TeacherRollouts(self.teacher_client, teacher.rollouts, dict(
                max_tokens=teacher.max_tokens, temperature=teacher.temperature, top_p=teacher.top_p,
                thinking=teacher.thinking))
        self._distill_skip_update = False  # no correct teacher rollout this step: no update

    # ------------------------------------------------------------------ data

    def _init_dataloader(self):
        super()._init_dataloader()
        if not isinstance(self.train_dataset, ZPPODataset):
            raise TypeError(
                "the ZPPO trainer needs data.custom_cls.path=pkg://recipe.zppo.trainer.dataset, "
                "data.custom_cls.name=ZPPODataset"
            )
        self._tokens = Tokenization.for_tokenizer(self.tokenizer)
        from verl.trainer.ppo.reward import get_custom_reward_fn

        from ..reward import compute_score

        # Teacher responses are scored with the run's own reward function (and its kwargs).
        self._score_fn = get_custom_reward_fn(self.config) or compute_score

    def _collate(self, items: list[dict]):
        batch_dict = collate_fn(items)
        batch_dict["uid"] = np.array([str(uuid.uuid4()) for _ in items], dtype=object)  # one group per prompt
        batch = tu.get_tensordict(batch_dict)
        tu.assign_non_tensor_data(batch, "global_steps", self.global_steps)
        return batch

    # ------------------------------------------------------------------ 1. new + replayed questions

    def prepare_step(self) -> dict:
        self._plain, self._routes, self._teacher_routes, self._groups = zstep.PlainOutcome(), [], [], []
        self._early_rollouts, self._early_uids = {}, set()
        self.teacher_work.begin_step(self.global_steps)
        if self.teacher_client is not None:
            self._teacher_busy_at_step_start = self.teacher_client.stats()["busy_s"]
        # Algorithm 1 line 2: X_new (every step the same number of new questions) and X_replay ON TOP of it.
        self._num_new = int(self.config.data.train_batch_size)
        new = self._next_train_batch(self._num_new)
        replay_ids: list[str] = []
        if self.zppo.enable and self.zppo.replay.enable and len(self.prompt_buffer):
            count = caps.replay_count(self._num_new, self.zppo.replay.ratio, len(self.prompt_buffer))
            # Not a question that is also new this step (a later epoch): it would be in the batch twice.
            new_ids = [str(qid) for qid in as_list(new["zppo_question_id"])]
            replay_ids = self.prompt_buffer.sample(count, step=self.global_steps, exclude=new_ids)
        # Two submissions rather than one concatenated batch: the sampler waits for the groups of both.
        self._submit_batch_to_rollout(new)
        if replay_ids:
            items = [self.train_dataset.item_for(qid, zstep.KIND_REPLAY) for qid in replay_ids]
            self._submit_batch_to_rollout(self._collate(items))
        self.replay_buffer.plain_batch_size = self._num_new + len(replay_ids)
        self._start_distill_teacher([str(qid) for qid in as_list(new["zppo_question_id"])] + list(replay_ids))
        return {"zppo/new_questions": float(self._num_new), "zppo/replayed_questions": float(len(replay_ids))}

    # ------------------------------------------------------------------ 2. hard questions -> teacher work

    def _on_poll(self, sampler) -> None:
        """Between two of phase 1's polls: read the groups that finished since, start the hard ones' teacher work."""
        finished = set(sampler.finished_keys.get("train", ())) - self._early_uids
        if not finished:
            return
        partition = sampler.partitions.get("train", {})
        keys = [key for key in list(partition) if key.split("_")[0] in finished]
        if not keys:
            return
        rollouts = read_rollouts(keys, [partition[key] for key in keys])
        self._early_uids |= finished
        self._early_rollouts.update(zip(keys, rollouts))
        for group in zstep.group_rollouts(rollouts):
            self._start_teacher_work(group)

    def _start_teacher_work(self, group: zstep.Group) -> None:
        """A hard plain group's teacher work (its wrong rollouts compressed, fresh teacher rollouts), if any."""
        if not (self.zppo.enable and self.zppo.needs_candidates and zstep.is_hard(group, self.zppo.hard_threshold)):
            return
        qid, dataset = group.question_id, self.train_dataset
        if self.teacher_work.started(qid):
            return
        wrong = []
        for index, rollout in enumerate(group.rollouts):
            if not rollout.acc:
                text = self._tokens.decode(rollout.response_ids)
                wrong.append(WrongRollout(index, text, extract_final_answer(text)))
        row = dataset.row_of(qid)
        want_teacher = self.zppo.reformulation.build_bcq
        self.teacher_work.start(
            qid, dataset.original_messages(qid), dataset.images_of(qid), wrong,
            is_correct=lambda text, r=row: self._teacher_correct(text, r),
            stored=dataset.teacher_responses(qid, self._teacher_correct) if want_teacher else (),
            want_teacher=want_teacher,
        )

    def _teacher_wait_s(self) -> float:
        """Longest wait for a question's teacher work: its rollouts, then up to G_T compressions one after the other
        (each request bounded by the client's timeout and retries), with slack."""
        teacher = self.zppo.teacher
        per_request = teacher.client.timeout_s * (teacher.client.max_retries + 1)
        return per_request * (2 + teacher.rollouts) + 30.0

    def _teacher_metrics(self, metrics: dict, waited_s: float) -> None:
        counts = self.teacher_work.counts
        names = ["rollouts", "correct", "truncated", "compressions", "compression_answer_changed", "failures",
                 "abandoned", "compression_ok", "compression_no_answer", "compression_no_summary",
                 "compression_truncated"]
        if self.zppo.guidance.mode == HINT:
            names += ["hints", "hint_ok", "hint_empty", "hint_truncated", "hint_boxed_stripped"]
        for name in names:
            metrics[f"zppo/teacher/{name}"] = float(counts[name])
        for name in ("rollouts", "compressions", "hints", "failures"):  # since the start of the run, across resumes
            metrics[f"zppo/teacher/cum_{name}"] = float(self.teacher_work.totals[name])
        busy = self.teacher_client.stats()["busy_s"] if self.teacher_client is not None else 0.0
        metrics["zppo/teacher/busy_s"] = busy - self._teacher_busy_at_step_start
        metrics["zppo/teacher/critical_path_s"] = waited_s
        # The teacher's work per request kind (compute_ledger: teacher_rollouts, teacher_compressions, teacher_hints)
        for kind, requests in (("rollout", "rollouts"), ("compression", "compressions"), ("hint", "hints")):
            if counts[requests]:
                self.compute_ledger.add(f"teacher_{requests}", prompt_tokens=counts[f"{kind}_prompt_tokens"],
                                        generated_tokens=counts[f"{kind}_completion_tokens"],
                                        rollouts=counts[requests])

    # ------------------------------------------------------------------ 2. second phase

    def _second_phase(self, first, metrics: dict, sample_more):
        """Read the plain groups, build and roll out the second-phase prompts; returns the step's whole batch."""
        with marked_timer("zppo/reformulate", self.timing_raw):
            keys = list(first.keys)
            late = [i for i, key in enumerate(keys) if key not in self._early_rollouts]
            read = read_rollouts([keys[i] for i in late], [first.tags[i] for i in late]) if late else []
            by_key = dict(self._early_rollouts)
            by_key.update(zip([keys[i] for i in late], read))
            rollouts = [by_key[key] for key in keys]
            metrics["zppo/phase1/groups_read_early"] = float(len({r.uid for r in rollouts} & self._early_uids))
            self._account(rollouts)
            groups = zstep.group_rollouts(rollouts)
            self._groups = list(groups)
            self._plain = zstep.assess_plain_groups(groups, self.zppo.hard_threshold, find_hard=self.zppo.enable)
            metrics.update(zstep.plain_metrics(groups, self._plain, self.zppo.hard_threshold))
            metrics["zppo/phase1/stale_rollouts"] = zstep.stale_rollouts(rollouts, self.global_steps - 1)
            # Logged every step, whatever gets built (NaN: no such rollout this step).
            metrics.update({f"zppo/{kind}_built": 0.0 for kind in self._second_phase_kinds()})
            metrics.update({"zppo/bcq_acc": float("nan"), "zppo/ncq_acc": float("nan"),
                            "zppo/no_teacher_correct": 0.0})
            if self._augments:
                empty = caps.PreCap()
                metrics.update(caps.CapReport(caps.aug_cap(self._num_new, self.zppo.aug_ratio), empty).metrics())
            for group in groups:  # transfer: this step's plain accuracy completes earlier hard questions' records
                self.transfer.observe_plain(group.question_id, self.global_steps, group.accuracy)
            for group in self._plain.hard:  # groups that finished after the last poll
                self._start_teacher_work(group)
            items, planned_prefixes = [], {}
            if self._plain.hard:
                items, planned_prefixes = self._build_second_phase(self._plain.hard, metrics)
            elif self.zppo.needs_candidates or self.zppo.needs_guidance:
                self._teacher_metrics(metrics, 0.0)
            helped = {item["zppo_question_id"] for item in items}
            for group in self._plain.hard:
                self.transfer.mark_hard(group.question_id, self.global_steps, group.accuracy,
                                        group.question_id in helped)
        if self.distill_rollouts is not None:  # off-policy distillation: the update batch is the teacher's
            return self._off_policy_distill_batch(first, metrics, sample_more)
        if not items:
            return first
        self._submit_batch_to_rollout(self._collate(items))
        with marked_timer("zppo/gen_phase2", self.timing_raw):
            second, second_metrics = sample_more(len(items))
        metrics.update({f"zppo/phase2/{k}": v for k, v in second_metrics.items() if isinstance(v, (int, float))})
        second_rollouts = read_rollouts(list(second.keys), list(second.tags), second_phase=True)
        self._groups += zstep.group_rollouts(second_rollouts)
        self._record_second_phase(second_rollouts, planned_prefixes, metrics)
        merged = type(first)(partition_id=first.partition_id, keys=[*first.keys, *second.keys],
                             tags=[*first.tags, *second.tags])
        if getattr(first, "extra_info", None):
            merged.extra_info.update(first.extra_info)
        return merged

    @property
    def _augments(self) -> bool:
        """Whether this run builds second-phase prompts under Algorithm 1's cap (BCQ/NCQ, hints, prefixes)."""
        return self.zppo.enable and (self.zppo.needs_candidates or self.zppo.guidance.mode in (HINT, PREFIX))

    def _candidate_sets(self, hard: list[zstep.Group], metrics: dict) -> list[CandidateSet]:
        """BCQ/NCQ material of every hard question: what its teacher work made (waiting for what still runs).
        Algorithm 1 step 2: the teacher works on all of X_hard, before the pre-cap."""
        started = time.perf_counter()
        with marked_timer("zppo/teacher_wait", self.timing_raw):
            made = self.teacher_work.collect([g.question_id for g in hard], timeout_s=self._teacher_wait_s())
        self._teacher_metrics(metrics, time.perf_counter() - started)
        if self.zppo.reformulation.build_bcq:  # hard questions on which none of the teacher's G_T rollouts is right
            metrics["zppo/no_teacher_correct"] = float(sum(not made[g.question_id].teacher_correct for g in hard))
        dataset, sets = self.train_dataset, []
        for group in hard:
            material = made[group.question_id]
            sets.append(CandidateSet(
                question_id=group.question_id,
                prompt=dataset.original_messages(group.question_id),
                prompt_length=group.rollouts[0].prompt_length,
                ground_truth=dataset.ground_truth(group.question_id),
                teacher=material.teacher,
                student=sorted(material.student, key=lambda c: c.index),  # rollout order, whatever finished first
                wrong_answers=material.wrong_answers,
            ))
        return sets

    def _guidance_material(self, question_ids: list[str], hard: list[zstep.Group], metrics: dict
                           ) -> list[GuidanceMaterial]:
        """The Hint and Prefix baselines' material for X_aug (Algorithms 5-6 steps 8-13): this step's fresh teacher
        rollouts on those questions only, one correct one drawn, and (Hint) the teacher's Fig. 19 hint on it."""
        dataset, guidance = self.train_dataset, self.zppo.guidance
        offline = self.zppo.teacher.source == OFFLINE
        for qid in question_ids:
            row = dataset.row_of(qid)
            self.teacher_work.start_guidance(
                qid, dataset.original_messages(qid), dataset.images_of(qid),
                is_correct=lambda text, r=row: self._teacher_correct(text, r),
                hint=guidance if guidance.mode == HINT else None, seed=guidance.seed,
                stored=dataset.teacher_responses(qid, self._teacher_correct) if offline else (),
            )
        started = time.perf_counter()
        with marked_timer("zppo/teacher_wait", self.timing_raw):
            made = self.teacher_work.collect(question_ids, timeout_s=self._teacher_wait_s())
        self._teacher_metrics(metrics, time.perf_counter() - started)
        metrics["zppo/no_teacher_correct"] = float(sum(not made[qid].teacher_correct for qid in question_ids))
        lengths = {group.question_id: group.rollouts[0].prompt_length for group in hard}
        return [
            GuidanceMaterial(question_id=qid, prompt=dataset.original_messages(qid), prompt_length=lengths[qid],
                             ground_truth=dataset.ground_truth(qid), teacher_text=made[qid].guide_text,
                             hint=made[qid].hint)
            for qid in question_ids
        ]

    def _teacher_correct(self, text: str, row: dict) -> bool:
        extra_info = {**(row.get("extra_info") or {}), "zppo_kind": "teacher"}
        result = self._score_fn(row.get("data_source"), text, (row.get("reward_model") or {}).get("ground_truth"),
                                extra_info)
        score = result.get("acc", result.get("score", 0.0)) if isinstance(result, dict) else result
        if isinstance(result, dict) and result.get("route"):  # the judge's calls for the teacher are logged too
            self._teacher_routes.append(str(result["route"]))
        return float(score) >= 0.5

    def _build_second_phase(self, hard_groups: list[zstep.Group], metrics: dict):
        """This step's second-phase items for the hard questions (BCQ/NCQ, and the baselines' prompts), and the
        Prefix baseline's planned teacher tokens per question (for its audit).

        Algorithm 1 steps 3-5 (``algo.caps``): of the hard questions, the round(rho_aug x |X_new|) hardest that can
        give a prompt; of what they give, that many at most, BCQ before NCQ. The length check is the rollout's prompt
        budget (``actor_rollout_ref.rollout.prompt_length``, derived for BCQ/NCQ prompts by main_zppo): a longer
        prompt is skipped and counted, never cut (verl's agent loop would cut or refuse it)."""
        max_prompt_length = int(self.config.actor_rollout_ref.rollout.prompt_length)
        accuracy = {group.question_id: group.accuracy for group in hard_groups}
        cap = caps.aug_cap(self._num_new, self.zppo.aug_ratio)
        built: dict[tuple[str, str], dict] = {}  # (question id, kind) -> item, made once while measuring it

        # verl's dataset turns an item's messages into multimodal parts in place: it gets copies, so the built
        # prompts keep their text (the prompt dump reads it).
        def measure(prompt) -> int:
            item = self.train_dataset.item_for(prompt.question_id, prompt.kind, messages=copy.deepcopy(prompt.messages))
            built[(prompt.question_id, prompt.kind)] = item
            with marked_timer("zppo/length_check", self.timing_raw):
                return self._processor_length(item)

        def item_of(prompt, correct_position: str = "") -> dict:
            item = built.get((prompt.question_id, prompt.kind)) or self.train_dataset.item_for(
                prompt.question_id, prompt.kind, messages=copy.deepcopy(prompt.messages)
            )
            item[CORRECT_POSITION_KEY] = correct_position
            return item

        items: list[dict] = []
        planned_prefixes: dict[str, list[int]] = {}
        if self.zppo.enable and self.zppo.needs_candidates:
            candidate_sets = self._candidate_sets(hard_groups, metrics)
            result, report = caps.capped_reformulation(
                candidate_sets, accuracy, cap, seed=self.zppo.seed, step=self.global_steps, tokens=self._tokens,
                max_prompt_length=max_prompt_length, config=self.zppo.reformulation, measure_prompt=measure)
            metrics.update(result.metrics(prefix="zppo/"))
            metrics.update(report.metrics(prefix="zppo/"))
            self.prompt_dump.write(self.global_steps, result.prompts)
            items += [item_of(p, p.correct_position or "") for p in result.prompts]

        baseline_material = []
        if self.zppo.needs_guidance:
            # Algorithms 5-6 step 6: X_aug = the round(rho_aug x |X_new|) hardest hard questions (one prompt per
            # question at most, so the pre-cap is the whole cap); every hard question qualifies, since the teacher
            # is asked only afterwards, on X_aug alone (App. D.2: "only on the X_aug subset").
            pre = caps.pre_cap(accuracy, lambda qid: True, cap, self.zppo.seed, self.global_steps)
            metrics.update(caps.CapReport(cap, pre).metrics(prefix="zppo/"))
            baseline_material = self._guidance_material(pre.kept, hard_groups, metrics)

        if self.reference_spend is not None:  # grpo_matched: extra plain-prompt groups of the hard questions
            plan = plan_extra_groups(
                target=self.reference_spend.at(self.global_steps),
                spent=self.compute_ledger.total("generated_tokens"),
                hard=[(g.question_id, g.accuracy, float(np.mean([len(r.response_ids) for r in g.rollouts])))
                      for g in hard_groups],
                n=int(self.config.actor_rollout_ref.rollout.n),
                max_per_hard=self.zppo.matched.max_extra_groups_per_hard,
            )
            metrics.update(plan.metrics())
            metrics["zppo/extra_built"] = float(len(plan.question_ids))
            for question_id in plan.question_ids:
                item = self.train_dataset.item_for(question_id, KIND_EXTRA)
                item[CORRECT_POSITION_KEY] = ""
                items.append(item)

        guidance = self.zppo.guidance
        if guidance.mode == HINT:
            result = build_hints(baseline_material, tokens=self._tokens, max_prompt_length=max_prompt_length,
                                 config=guidance, measure_prompt=measure)
            zstep.add_counts(metrics, result.metrics(prefix="zppo/"))
            self.prompt_dump.write(self.global_steps, result.prompts)
            items += [item_of(p) for p in result.prompts]
        elif guidance.mode == PREFIX:
            from ..baselines.prefix_agent_loop import AGENT_NAME, PREFIX_IDS_KEY

            result = build_prefixes(baseline_material, tokens=self._tokens,
                                    max_response_length=int(self.config.data.max_response_length), config=guidance)
            zstep.add_counts(metrics, result.metrics(prefix="zppo/"))
            self.prompt_dump.write(self.global_steps, result.prompts)
            default_loop = self.config.actor_rollout_ref.rollout.agent.default_agent_loop
            for item in items:  # a batch names its agent loop for every item or for none
                item["agent_name"] = default_loop
            for plan in result.prompts:
                item = item_of(plan)
                item["agent_name"] = AGENT_NAME
                item[PREFIX_IDS_KEY] = planned_prefixes[str(plan.question_id)] = list(plan.prefix_ids)
                items.append(item)
        return items, planned_prefixes

    def _processor_length(self, item: dict) -> int:
        """The processor's length of an item's prompt: what the rollout will see (the final length check)."""
        dataset = self.train_dataset
        messages = item["raw_prompt"]
        apply_kwargs = dict(dataset.apply_chat_template_kwargs)
        if dataset.processor is None:
            ids = dataset.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                                        return_dict=False, **apply_kwargs)
            return len(ids)
        from verl.utils.tokenizer import build_multimodal_processor_inputs

        text = dataset.processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=False,
                                                     **apply_kwargs)
        images, videos, audios = dataset._process_multi_modal_info(messages, dataset.image_patch_size, dataset.config)
        if images is None and videos is None and audios is None:
            return len(dataset.processor.tokenizer(text=text, add_special_tokens=False)["input_ids"])
        inputs = build_multimodal_processor_inputs(dataset.processor, text=[text], images=images, videos=videos,
                                                   audio=audios, mm_processor_kwargs=dataset.mm_processor_kwargs)
        return len(inputs["input_ids"][0])

    def _record_second_phase(self, rollouts: list[zstep.Rollout], planned_prefixes: dict, metrics: dict) -> None:
        """Phase-2 metrics: accuracy per prompt kind, trivial groups, the BCQ position audit, the prefix audit."""
        self._account(rollouts)
        metrics["zppo/phase2/stale_rollouts"] = zstep.stale_rollouts(rollouts, self.global_steps - 1)
        metrics.update(zstep.second_phase_metrics(rollouts, self._second_phase_kinds()))
        prefixed = [r for r in rollouts if r.kind == PREFIX]
        if prefixed:
            metrics.update(zstep.prefix_audit(prefixed, planned_prefixes))

    def _second_phase_kinds(self) -> list[str]:
        """The prompt kinds this run's second phase can build."""
        guided = [self.zppo.guidance.mode] if self.zppo.guidance.mode != "none" else []
        extra = [KIND_EXTRA] if self.reference_spend is not None else []
        return [BCQ, NCQ, *guided, *extra]

    def _account(self, rollouts: list[zstep.Rollout]) -> None:
        """Spend of this step's rollouts: ``response_ids`` are the sampled tokens (not a prefix's teacher tokens)."""
        for rollout in rollouts:
            self.compute_ledger.add(rollout.kind, prompt_tokens=rollout.prompt_length,
                                    generated_tokens=len(rollout.response_ids))
            if rollout.route:
                self._routes.append(rollout.route)

    # ------------------------------------------------------------------ 3. update: loss weight of each prompt kind

    def _compute_advantage(self, batch, metrics: dict):
        """verl's advantage, then ``zppo.update.loss_weighting`` (algo/loss_weighting.py); logs each kind's weight."""
        with marked_timer("zppo/adv_estimator", self.timing_raw):
            batch = super()._compute_advantage(batch, metrics)
        keys = [key for key, tag in zip(batch.keys, batch.tags) if not tag.get("is_padding", False)]
        data = tq.kv_batch_get(keys=keys, partition_id=batch.partition_id,
                               select_fields=["advantages", "response_mask", "zppo_kind"])
        advantages, masks = list(data["advantages"].unbind()), list(data["response_mask"].unbind())
        kinds = [str(kind) for kind in as_list(data["zppo_kind"])]
        for kind in ALL_KINDS:  # what the update uses, per prompt kind (padding rows excluded)
            metrics[f"zppo/update/{kind}_trajectories"] = float(kinds.count(kind))
        signal = [bool(((a != 0) & m.bool()).any()) for a, m in zip(advantages, masks)]
        weights = loss_weights(kinds, [int(m.sum()) for m in masks], signal, self.zppo.update.loss_weighting)
        metrics.update({f"zppo/loss_weight/{kind}": value for kind, value in weights.kind_weight.items()})
        if self.zppo.update.loss_weighting == "verl" or not any(weights.keep):
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

    # ------------------------------------------------------------------ 3. update: a fixed NUMBER of mini-batches

    def _get_required_batch_multiple(self, dp_size: int) -> int:
        """With ``zppo.update.num_mini_batches``, pad the batch so that it splits into that many equal mini-batches
        of whole groups, each dividing over the ranks into micro-batches (``algo.step.update_batch_multiple``), not
        to verl's fixed mini-batch size: a ZPPO batch's size changes every step (replay, BCQ/NCQ groups), so a fixed
        size would change the number of updates per step."""
        if self.zppo.update.num_mini_batches is None:
            return super()._get_required_batch_multiple(dp_size)
        actor = self.config.actor_rollout_ref.actor
        micro = None if actor.get("use_dynamic_bsz", False) else actor.get("ppo_micro_batch_size_per_gpu")
        return zstep.update_batch_multiple(dp_size, int(self.config.actor_rollout_ref.rollout.n),
                                           int(self.zppo.update.num_mini_batches), int(micro) if micro else None)

    def _update_actor(self, batch, metrics: dict):
        """verl's update with the mini-batch size of this step's batch: len(batch) / num_mini_batches."""
        if self._distill_skip_update:  # off-policy distillation without a single correct teacher rollout
            metrics["zppo/distill/skipped_update"] = 1.0
            return batch
        num_mini_batches = self.zppo.update.num_mini_batches
        if num_mini_batches is None:
            return super()._update_actor(batch, metrics)
        n = int(self.config.actor_rollout_ref.rollout.n)
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

    # ------------------------------------------------------------------ 4. buffer update, step metrics

    def step(self, metrics: dict, timing_raw: dict):
        batch = super().step(metrics, timing_raw)
        metrics.update(self.compute_ledger.close_step())
        metrics.update(self.transfer.close_step())
        if self.reference_spend is not None:  # grpo_matched's tracking error: own spend minus the reference's
            metrics["zppo/matched/gap_tokens"] = (
                self.compute_ledger.total("generated_tokens") - self.reference_spend.at(self.global_steps)
            )
        if self._routes:  # share of this step's answers scored by each reward route
            from ..reward import route_shares

            metrics.update(route_shares(self._routes, prefix="zppo/reward/"))
        if self._teacher_routes:  # teacher responses are scored in this process (the same reward, judge included)
            from ..reward import route_shares

            teacher = route_shares(self._teacher_routes, prefix="")
            metrics["zppo/reward/teacher_judge_calls"] = teacher["judge_calls"]
            metrics["zppo/reward/teacher_judge_share"] = teacher["judge_share"]
        with marked_timer("zppo/buffer", timing_raw):
            if self.zppo.enable and self.zppo.replay.enable:  # membership from PLAIN groups only (Algorithm 1 l. 19)
                zstep.refresh_buffer(self.prompt_buffer, self._groups, step=self.global_steps)
            deltas = self.prompt_buffer.step_deltas()
        metrics["zppo/buffer_size"] = float(len(self.prompt_buffer))
        metrics.update({f"zppo/{name}": float(value) for name, value in deltas.items()})
        if self.zppo.summary_every > 0 and self.global_steps % self.zppo.summary_every == 0:
            print(zstep.summary_line(self.global_steps, metrics, self.zppo.guidance.mode, len(self.prompt_buffer),
                                     deltas), flush=True)
        return batch

    # ------------------------------------------------------------------ off-policy distillation (Algorithm 2)

    def _start_distill_teacher(self, question_ids: list[str]) -> None:
        """Algorithm 2 line 5: G_T fresh teacher rollouts for EVERY prompt of the step (new and replayed), requested
        with the student's rollouts so that they overlap."""
        self._distill_skip_update = False
        if self.distill_rollouts is None:
            return
        dataset = self.train_dataset
        for question_id in question_ids:
            self.distill_rollouts.start(question_id, dataset.original_messages(question_id),
                                        dataset.images_of(question_id))

    def _off_policy_distill_batch(self, first, metrics: dict, sample_more):
        """The step's update batch for off-policy distillation: the CORRECT teacher rollouts of every prompt as
        responses (``baselines/off_policy_distill.py``), rolled through verl's agent loop without generation
        (``zppo_teacher_forced_agent``) so that verl's teacher pool rescores them. The student's rollouts (``first``)
        only fed the buffer and the metrics: they leave the batch. No correct teacher rollout at all: the student's
        batch stays (verl needs one) and the update is skipped (``zppo/distill/skipped_update``)."""
        from ..baselines.teacher_forced_agent_loop import AGENT_NAME, FORCED_IDS_KEY

        dataset, teacher = self.train_dataset, self.zppo.teacher
        with marked_timer("zppo/teacher_wait", self.timing_raw):
            answers = self.distill_rollouts.collect(timeout_s=teacher.client.timeout_s * (teacher.client.max_retries
                                                                                           + 1) + 30.0)

        def is_correct(question_id: str, text: str) -> bool:
            return self._teacher_correct(text, dataset.row_of(question_id))

        rows, report = build_trajectories(answers, teacher.rollouts, is_correct,
                                          lambda text: self.tokenizer.encode(text, add_special_tokens=False),
                                          self.tokenizer.eos_token_id, int(self.config.data.max_response_length))
        metrics.update(report.metrics())
        metrics["zppo/distill/skipped_update"] = 0.0
        self.compute_ledger.add("teacher_rollouts", prompt_tokens=report.prompt_tokens,
                                generated_tokens=report.completion_tokens, rollouts=report.rollouts_requested)
        self._dump_distill(rows)
        # verl's teacher pool rescored every trajectory of the step: the student's (unused by the loss) and these.
        rescored = [r.prompt_length + len(r.response_ids) for g in self._groups for r in g.rollouts]
        if not rows:
            self._distill_skip_update = True
            self.compute_ledger.add("teacher_rescoring", prompt_tokens=sum(rescored), generated_tokens=0,
                                    rollouts=len(rescored))
            return first
        items = []
        for row in rows:
            item = dataset.item_for(row.question_id, KIND_DISTILL)
            item[CORRECT_POSITION_KEY] = ""
            item["agent_name"] = AGENT_NAME
            item[FORCED_IDS_KEY] = list(row.token_ids)
            item["__rollout_n__"] = 1  # one trajectory per item: the teacher rollout
            items.append(item)
        self._submit_batch_to_rollout(self._collate(items))
        with marked_timer("zppo/distill_rescore", self.timing_raw):
            second, _ = sample_more(len(items))
        trained = read_rollouts(list(second.keys), list(second.tags), second_phase=True)
        planned = sorted(tuple(r.token_ids) for r in rows)
        got = sorted(tuple(int(t) for t in r.response_ids) for r in trained)
        # Audit: the update's responses are exactly the correct teacher rollouts' tokens (must be 0).
        metrics["zppo/distill/response_mismatch"] = float(planned != got)
        rescored += [r.prompt_length + len(r.response_ids) for r in trained]
        self.compute_ledger.add("teacher_rescoring", prompt_tokens=sum(rescored), generated_tokens=0,
                                rollouts=len(rescored))
        tq.kv_clear(keys=list(first.keys), partition_id=first.partition_id)  # the student's rows leave the batch
        if getattr(first, "extra_info", None):
            second.extra_info.update(first.extra_info)
        return second

    def _dump_distill(self, rows) -> None:
        """<run dir>/zppo_distill/step_<N>.jsonl: the step's training trajectories (question, text, token ids), with
        ``zppo.dump_prompts`` != 0 (what the tests read to check freshness and the trained tokens)."""
        if self.zppo.dump_prompts == 0:
            return
        folder = os.path.join(self.config.trainer.default_local_dir, "zppo_distill")
        os.makedirs(folder, exist_ok=True)
        with open(os.path.join(folder, f"step_{self.global_steps}.jsonl"), "w") as f:
            for row in rows:
                f.write(json.dumps({"question_id": row.question_id, "text": row.text,
                                    "token_ids": list(row.token_ids)}) + "\n")

    # ------------------------------------------------------------------ checkpoint

    def _save_checkpoint(self):
        # Written before verl writes latest_checkpointed_iteration.txt (inside super()): a checkpoint marked
        # complete always has its buffer.
        folder = os.path.join(self.config.trainer.default_local_dir, f"global_step_{self.global_steps}")
        os.makedirs(folder, exist_ok=True)
        buffer_path = os.path.join(folder, BUFFER_FILE)
        buffer_state = self.prompt_buffer.save(buffer_path)
        print(f"[zppo] saved a prompt replay buffer of {len(self.prompt_buffer)} questions to {buffer_path} "
              f"(state sha256 {state_digest(buffer_state)[:16]})", flush=True)
        state = {
            "global_steps": self.global_steps,
            "data_fingerprint": self.train_dataset.fingerprint,
            "teacher": self.teacher_work.state_dict(),  # the teacher's cumulative counters continue after a resume
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
        path, buffer_path = os.path.join(folder, STATE_FILE), os.path.join(folder, BUFFER_FILE)
        for required in (path, buffer_path):
            if not os.path.exists(required):
                raise FileNotFoundError(
                    f"{required} is missing: this checkpoint was not written by this version of the ZPPO trainer, so "
                    "the prompt replay buffer cannot be restored (start a new run directory, or resume_mode=disable)"
                )
        with open(path) as f:
            state = json.load(f)
        if state["data_fingerprint"] != self.train_dataset.fingerprint:
            raise ValueError(
                f"{path}: the training data differs from the data this run was checkpointed with "
                f"(fingerprint {state['data_fingerprint']} vs {self.train_dataset.fingerprint})"
            )
        buffer_state = self.prompt_buffer.load(buffer_path)
        self.compute_ledger.load_state_dict(state.get("compute"))
        self.transfer.load_state_dict(state.get("transfer"))
        self.teacher_work.load_state_dict(state.get("teacher"))
        print(f"[zppo] restored a prompt replay buffer of {len(self.prompt_buffer)} questions from {buffer_path} "
              f"(state sha256 {state_digest(buffer_state)[:16]})", flush=True)
