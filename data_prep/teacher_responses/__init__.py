"""Offline teacher responses: k responses per training question, scored, stored in the rows the trainer reads.

    python -m data_prep.teacher_responses --data DIR --teacher MODEL --out OUT [--k 4] [--engine hf|vllm]
        [--temperature 0.6] [--top-p 0.95] [--top-k 20] [--max-tokens 8192] [--seed 0]
        [--chat-template-kwargs JSON] [--shard-rows N] [--batch-size N] [--overwrite]
        [--tensor-parallel-size N] [--device cpu|cuda] [--threads N] [--judge-url URL --judge-model NAME]

Input: verl RL parquet rows (``prompt`` chat messages with ``<image>`` placeholders, ``images`` [{"bytes"}],
``reward_model.ground_truth``, ``data_source``, ``extra_info`` with ``question_id``, ``reward_type``, ...), as one
file, a folder of shards or a glob. The teacher sees each row's own messages through its chat template (images to
its processor); each response is scored by ``recipe.zppo.reward.compute_score`` and the row gets, inside
``extra_info``:

- ``teacher_responses``: list[str], the full responses (reasoning included);
- ``teacher_correct``: list[bool], ``bool(compute_score(...)["acc"])`` of each.

Every other column is copied unchanged. OUT mirrors the input's shards (or ``--shard-rows`` re-shards), holds
``summary.json`` and a state folder that makes a rerun of the same command continue where it stopped; finished
shards are never redone. Rows that cannot be asked (no ground truth, undecodable image, ...) are kept with empty
lists and counted in the summary. Details: ``docs/teacher_responses.md``.

Python use: ``from data_prep.teacher_responses import Options, run``; ``run(Options(data=..., teacher=..., out=...))``
returns the summary dict.
"""

from __future__ import annotations

from .cli import main
from .runner import Options, ResumeError, Run, StopEarly
from .shards import InputError

__all__ = ["InputError", "Options", "ResumeError", "Run", "StopEarly", "main", "run"]


def run(options: Options) -> dict:
    """Run the step (resuming whatever OUT already holds); returns the summary written to OUT/summary.json."""
    return Run(options)()
