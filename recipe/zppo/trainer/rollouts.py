"""Read a rollout phase back from verl's TransferQueue into plain ``Rollout`` records (one read per phase)."""

from __future__ import annotations

from typing import Any

import torch
import transfer_queue as tq

from ..algo.step import Rollout

_FIELDS = ["uid", "zppo_question_id", "zppo_kind", "rm_scores", "extra_fields", "responses", "response_mask", "prompts"]
CORRECT_POSITION_KEY = "zppo_correct_position"  # BCQ: where the correct candidate was shown (an audit field)


def as_list(value) -> list:
    """A TransferQueue field (tensor, nested tensor, NonTensorStack, list) as a Python list of per-sample values."""
    if isinstance(value, torch.Tensor):
        if getattr(value, "is_nested", False):
            return list(value.unbind())
        return list(value)
    if hasattr(value, "tolist"):
        return value.tolist()
    return list(value)


def _reward_info(extra_fields: Any) -> dict:
    extra = extra_fields if isinstance(extra_fields, dict) else getattr(extra_fields, "data", {}) or {}
    info = extra.get("reward_extra_info") if isinstance(extra, dict) else None
    return info if isinstance(info, dict) else {}


def binary_accuracy(score: float, reward_info: dict) -> float:
    """The correctness ZPPO uses for hardness and the buffer: the reward's ``acc`` if it gives one, else score >= 1."""
    acc = reward_info.get("acc")
    if acc is None:
        return float(score >= 1.0)
    return float(float(acc) >= 0.5)


def read_rollouts(keys: list[str], tags: list[dict], second_phase: bool = False,
                  partition_id: str = "train") -> list[Rollout]:
    """The scored rollouts of ``keys``; ``second_phase`` also reads the BCQ audit field and the masked head."""
    fields = _FIELDS + ([CORRECT_POSITION_KEY] if second_phase else [])
    data = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=fields)
    columns = {name: as_list(data[name]) for name in fields}
    rollouts = []
    for i in range(len(keys)):
        info = _reward_info(columns["extra_fields"][i])
        score = float(torch.as_tensor(columns["rm_scores"][i]).float().sum().item())
        mask = torch.as_tensor(columns["response_mask"][i]).bool()
        tokens = torch.as_tensor(columns["responses"][i])[: mask.numel()]
        first_trained = int(mask.int().argmax()) if bool(mask.any()) else mask.numel()
        rollouts.append(
            Rollout(
                uid=str(columns["uid"][i]),
                question_id=str(columns["zppo_question_id"][i]),
                kind=str(columns["zppo_kind"][i]),
                score=score,
                acc=binary_accuracy(score, info),
                response_ids=tuple(tokens[mask].tolist()),
                prompt_length=int(torch.as_tensor(columns["prompts"][i]).numel()),
                weight_version=tags[i].get("max_global_steps"),
                route=info.get("route"),
                correct_position=str(columns[CORRECT_POSITION_KEY][i] or "") if second_phase else "",
                given_head=tuple(tokens[:first_trained].tolist()) if second_phase else (),
            )
        )
    return rollouts
