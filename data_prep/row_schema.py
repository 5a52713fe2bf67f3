"""The Arrow schema of a trainer row (verl's RL parquet layout), shared by every writer of training or benchmark data.

A row: ``data_source``, ``prompt`` (chat messages), ``ability``, ``reward_model`` {style, ground_truth},
``extra_info`` (the common keys below, then the writer's own), and ``images`` [{"bytes": ...}] for image rows.
"""

from __future__ import annotations

import pyarrow as pa

PROMPT_TYPE = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
REWARD_MODEL_TYPE = pa.struct([("style", pa.string()), ("ground_truth", pa.string())])
IMAGES_TYPE = pa.list_(pa.struct([("bytes", pa.binary())]))
# extra_info keys every writer fills (the trainer reads question_id; the verifiers reward_type).
COMMON_EXTRA_FIELDS = [
    ("index", pa.int64()),
    ("split", pa.string()),
    ("question_id", pa.string()),
    ("question", pa.string()),
    ("answer", pa.string()),
    ("reward_type", pa.string()),
]


def extra_info_type(*own_fields: tuple[str, pa.DataType]) -> pa.StructType:
    return pa.struct([*COMMON_EXTRA_FIELDS, *own_fields])


def row_schema(extra_info: pa.StructType, images: bool) -> pa.Schema:
    fields = [
        ("data_source", pa.string()),
        ("prompt", PROMPT_TYPE),
        ("ability", pa.string()),
        ("reward_model", REWARD_MODEL_TYPE),
        ("extra_info", extra_info),
    ]
    return pa.schema(fields + ([("images", IMAGES_TYPE)] if images else []))
