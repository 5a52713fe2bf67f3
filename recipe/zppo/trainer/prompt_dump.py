"""What the student saw: each step's BCQ/NCQ (or hint / prefix) prompts written to
``<run dir>/zppo_prompts/step_<N>.jsonl``.

One JSON object per prompt: ``question_id``, ``kind`` (bcq/ncq/hint/prefix), ``prompt`` (the user turn as sent,
closer included), ``candidates`` (each one's ``source``, teacher or student, its compressed ``text`` and the
``answer`` it keeps) and, for a BCQ, ``correct_position`` (A: the first block); a prefix plan adds its forced tokens
(``prompt_record``). ``zppo.dump_prompts``: -1 every prompt, 0 none, k the first k of each kind per step.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence

DUMP_DIR = "zppo_prompts"


def prompt_record(prompt) -> dict:
    """A built ``ReformulatedPrompt`` (BCQ, NCQ, hint) or the Prefix baseline's ``PrefixPlan`` as one JSON-ready
    record; a prefix plan adds its forced ``prefix_ids``, the teacher rollout they were cut from (``teacher_text``)
    and its length in the student's tokens (``teacher_length``)."""
    user = next((m for m in reversed(prompt.messages) if m.get("role") == "user"), {})
    measured = getattr(prompt, "measured_length", None)
    record = {
        "question_id": str(prompt.question_id),
        "kind": prompt.kind,
        "prompt": user.get("content"),
        "candidates": [{"source": c.source, "text": c.text, "answer": c.answer}
                       for c in getattr(prompt, "candidates", ())],
        "correct_position": getattr(prompt, "correct_position", None),
        "length": measured if measured is not None else getattr(prompt, "estimated_length", None),
    }
    if hasattr(prompt, "prefix_ids"):
        record.update(prefix_ids=[int(t) for t in prompt.prefix_ids], teacher_length=int(prompt.teacher_length),
                      teacher_text=prompt.teacher_text)
    return record


class PromptDump:
    def __init__(self, run_dir: str, limit: int):
        self.folder = os.path.join(run_dir, DUMP_DIR)
        self.limit = int(limit)

    def write(self, step: int, prompts: Sequence) -> str | None:
        """Write this step's prompts (within the limit per kind); returns the file written, if any."""
        if self.limit == 0 or not prompts:
            return None
        taken: dict[str, int] = {}
        records = []
        for prompt in prompts:
            if self.limit > 0 and taken.get(prompt.kind, 0) >= self.limit:
                continue
            taken[prompt.kind] = taken.get(prompt.kind, 0) + 1
            records.append(prompt_record(prompt))
        os.makedirs(self.folder, exist_ok=True)
        path = os.path.join(self.folder, f"step_{int(step)}.jsonl")
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
        os.replace(tmp, path)
        return path
