"""The two published schemas, read into one form (``Parsed``), with the row-level text checks.

Vero-600k rows: ``image`` (image feature), ``prompt`` (chat messages, system prompt included), ``data_source``
(the sub-dataset), ``ability``, ``reward_model`` {``style``, ``ground_truth``}, ``extra_info`` {``answer``,
``question``, ``domain``, ``index``, ``reward_type``, ``tolerance``, ``id``}, and usually ``id``.

- id: the top-level ``id`` when the column exists and the value is not null, else ``extra_info.id`` (what Vero's
  own ``scripts/download_and_format_vero_600k.py`` does; derived copies have no top-level ``id``); ints are fine;
- sub-dataset: ``data_source``; where several sets share one ``data_source`` (Vero's counting / grounding /
  search sets), the tier table routes the row by its id prefix (``TierTable.resolve``), like Vero's loader;

- question: ``extra_info.question``, else the text of the last user message; Vero's system prompt is NOT kept
  (it prescribes Vero's own answer format; every ZPPO prompt has one user turn ending with the project's closer);
- gold answer: ``reward_model.ground_truth`` (what Vero's verifiers compare with), else ``extra_info.answer``;
- reward type and tolerance: ``extra_info.reward_type`` / ``tolerance`` as published (types the project's
  verifiers do not score -- grounding, clicking, web_action, ordering, instruction_following, llm_judge -- drop
  the row); a missing type is inferred like MMFineReason's.

MMFineReason-SFT-586K rows: ``source`` (the sub-dataset), ``id``, ``original_question``, ``original_answer``,
``image``, ``question``, ``answer``, ``qwen3vl_235b_instruct_caption``, ``qwen3vl_235b_thinking_response``, the
Qwen3-VL-4B pass rate, ``is_consistent``, ``consistency_analysis``.

- question / gold answer: ``question`` / ``answer`` (the data set's cleaned, English versions);
- reward type: inferred from the answer (``text.infer_reward_type``), no tolerance;
- pass rate: the column ``pass_rate`` (as the ZPPO paper, App. B.1, and the published rows name it) or
  ``qwen3vl_4b_pass_rate`` (as the authors' card names it); one name is resolved per file
  (``PASS_RATE_COLUMNS``) and read under the key ``pass_rate``. The values are fractions of 4 rollouts
  (the published rows hold 0, .25, .5 and .75); a row must carry a number in [0, 1], at most
  ``--max-pass-rate``.

Rows are handed to ``parse`` keyed by the FIRST name of each column's alternatives (``SourceSpec.required``),
whatever the file calls it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from recipe.zppo.reward.routing import ALIASES, REWARD_TYPES

from .text import clean_question, infer_reward_type

SUPPORTED_REWARD_TYPES = frozenset(REWARD_TYPES) | frozenset(ALIASES)
# MMFineReason's pass-rate column: the paper's / the rows' name first, the authors' card's name second.
PASS_RATE_COLUMNS = ("pass_rate", "qwen3vl_4b_pass_rate")


@dataclass
class Parsed:
    raw_id: str
    sub_dataset: str
    question: str  # no placeholders, no format instructions
    answer: str
    reward_type: str
    tolerance: float | None
    pass_rate: float | None
    ability: str
    format_rules: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SourceSpec:
    key: str  # "vero" | "mmfinereason"
    id_prefix: str  # question ids are "<id_prefix>/<id>"
    priority: int  # lower wins duplicates and fills a shared cap first
    subset_column: str
    required: tuple[tuple[str, ...], ...]  # alternatives per column; the first listed is the name used below
    required_fields: dict[str, tuple[str, ...]]
    optional: tuple[str, ...]
    parse: Callable[[dict, ParseOptions], Parsed | str]
    raw_id: Callable[[dict], str]

    def meta_columns(self, chosen: dict[str, str], schema_names) -> list[tuple[str, str]]:
        """(key in the row handed to ``parse``, column in the file) of every column the row checks read (not
        the image)."""
        cols = [(alts[0], chosen[alts[0]]) for alts in self.required if alts[0] not in ("image",)]
        cols += [(c, c) for c in self.optional if c in schema_names]
        return cols


@dataclass(frozen=True)
class ParseOptions:
    max_answer_chars: int = 512
    max_pass_rate: float = 0.5


def _str_id(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def _as_float(value: Any) -> float | None:
    """A finite float from a number or a numeric string ("0.25", "5%"); None otherwise."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        scale = 1.0
        if text.endswith("%"):
            text, scale = text[:-1].strip(), 0.01
        try:
            value = float(text) * scale
        except ValueError:
            return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def vero_raw_id(row: dict) -> str:
    """Vero's id: the top-level ``id``, else ``extra_info.id`` (as Vero's own formatting script reads it)."""
    value = row.get("id")
    if value is None or (isinstance(value, str) and not value.strip()):
        extra = row.get("extra_info")
        value = extra.get("id") if isinstance(extra, dict) else None
    return _str_id(value)


def mmfinereason_raw_id(row: dict) -> str:
    return _str_id(row.get("id"))


def _check_answer(value: Any, opts: ParseOptions) -> str | tuple[str]:
    """The stripped answer, or a 1-tuple with the drop reason."""
    if value is None:
        return ("answer_missing",)
    if not isinstance(value, str):
        return ("answer_not_string",)
    answer = value.strip()
    if not answer:
        return ("answer_missing",)
    if len(answer) > opts.max_answer_chars:
        return ("answer_too_long",)
    return answer


def _message_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, (list, tuple)):
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                if part.get("type") == "image" or part.get("image") is not None:
                    parts.append("<image>")
                elif isinstance(part.get("text"), str):
                    parts.append(part["text"])
        return "".join(parts)
    return ""


def _vero_question(row: dict) -> str:
    extra = row.get("extra_info") or {}
    question = extra.get("question") if isinstance(extra, dict) else None
    if isinstance(question, str) and question.strip():
        return question
    for message in reversed(row.get("prompt") or []):
        if isinstance(message, dict) and message.get("role") == "user":
            return _message_text(message.get("content"))
    return ""


def parse_vero(row: dict, opts: ParseOptions) -> Parsed | str:
    extra = row.get("extra_info") if isinstance(row.get("extra_info"), dict) else {}
    reward_model = row.get("reward_model") if isinstance(row.get("reward_model"), dict) else {}
    reward_type = extra.get("reward_type")
    reward_type = reward_type.strip() if isinstance(reward_type, str) else ""
    if reward_type and reward_type.lower() not in SUPPORTED_REWARD_TYPES:
        return "unsupported_reward_type"
    gold = reward_model.get("ground_truth")
    if gold is None:
        gold = extra.get("answer")
    answer = _check_answer(gold, opts)
    if isinstance(answer, tuple):
        return answer[0]
    question, rules = clean_question(_vero_question(row))
    if not question:
        return "question_empty"
    ability = row.get("ability")
    return Parsed(
        raw_id=vero_raw_id(row),
        sub_dataset=_str_id(row.get("data_source")),
        question=question,
        answer=answer,
        reward_type=reward_type or infer_reward_type(answer, question),
        tolerance=_as_float(extra.get("tolerance")),
        pass_rate=None,
        ability=ability if isinstance(ability, str) and ability else "vision",
        format_rules=rules,
    )


def parse_mmfinereason(row: dict, opts: ParseOptions) -> Parsed | str:
    pass_rate = _as_float(row.get("pass_rate"))
    if pass_rate is None or not 0.0 <= pass_rate <= 1.0:
        return "pass_rate_missing"
    if pass_rate > opts.max_pass_rate:
        return "pass_rate_above_max"
    answer = _check_answer(row.get("answer"), opts)
    if isinstance(answer, tuple):
        return answer[0]
    raw_question = row.get("question")
    question, rules = clean_question(raw_question) if isinstance(raw_question, str) else ("", [])
    if not question:
        return "question_empty"
    return Parsed(
        raw_id=mmfinereason_raw_id(row),
        sub_dataset=_str_id(row.get("source")),
        question=question,
        answer=answer,
        reward_type=infer_reward_type(answer, question),
        tolerance=None,
        pass_rate=pass_rate,
        ability="vision",
        format_rules=rules,
    )


VERO = SourceSpec(
    key="vero",
    id_prefix="vero",
    priority=0,
    subset_column="data_source",
    required=(("image", "images"), ("prompt",), ("data_source",), ("reward_model",), ("extra_info",)),
    required_fields={"reward_model": ("ground_truth",)},
    optional=("id", "ability"),
    parse=parse_vero,
    raw_id=vero_raw_id,
)

MMFINEREASON = SourceSpec(
    key="mmfinereason",
    id_prefix="mmfr",
    priority=1,
    subset_column="source",
    required=(("source",), ("id",), ("image", "images"), ("question",), ("answer",), PASS_RATE_COLUMNS),
    required_fields={},
    optional=(),
    parse=parse_mmfinereason,
    raw_id=mmfinereason_raw_id,
)

SOURCE_SPECS = {spec.key: spec for spec in (VERO, MMFINEREASON)}
