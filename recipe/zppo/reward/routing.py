"""Which answers the grader decides and which go to the LLM judge: one table for every reward type.

The paper (App. D.1): short gold answers are graded by mathruler's boxed grader; "free-form questions (math
derivations, OCR, open-ended VLM) instead route to the LLM-as-a-judge ... this routing is identical across every
method". Evaluation (App. B.2) uses the judge "only after deterministic parsing fails". The paper does not say which
of Vero-600k's ``reward_type`` values are free-form; this table is our reading (*ours*), applied in training and
evaluation alike:

====================== ========== ============ ============================================================
reward_type            grader     judge        why
====================== ========== ============ ============================================================
multiple_choice        choice     no           a letter is exactly checkable (letters read from "(B)",
                                               "B.", "\\text{B}", "B. dog"; *ours*)
numeric                plain      no           numbers: grade_answer, then ``extra_info["tolerance"]``
                                               (relative; *ours*)
counting               plain      no           integers, as numeric (tolerance too, if a row has one)
number_list            list       no           whole answer, then item by item in order (*ours*)
string_match           plain      on a miss    OCR and open-ended VQA text: exact match is unsafe (D.1)
list_string_match      plain      on a miss    any listed answer; open-ended text as string_match
math                   plain      on a miss    expressions, "math derivations" (D.1)
llm_judge              plain      on a miss    Vero marks these rows as judge-graded (the ZPPO-77K builder
                                               drops them today)
grounding, clicking,   -          -            boxes, clicks, actions, orderings, instructions: neither a
web_action, ordering,                          boxed short answer nor a Fig. 9 comparison; score 0, route
instruction_following                          "unsupported" (the builder drops these rows)
missing / unknown      as gold    as gold      a single-letter gold -> multiple_choice, a bare number ->
                                               numeric, anything else -> string_match (*ours*; unknown names
                                               are warned about once)
====================== ========== ============ ============================================================

MMFineReason rows carry no type; the ZPPO-77K builder writes one inferred from the answer
(``data_prep.build_zppo77k.text.infer_reward_type``: multiple_choice, numeric, math or string_match), so they route
by the same table. "On a miss": the grader runs first and a correct grade is final (it is what the judge would
say); a miss, or no boxed answer at all, goes to the judge, which looks inside the reasoning when there is no final
answer (Fig. 9). Without a configured judge those rows are graded by the grader alone.
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from dataclasses import dataclass

logger = logging.getLogger(__name__)

# The reward types the ZPPO-77K builder keeps (data_prep.build_zppo77k.sources: other Vero types drop the row).
REWARD_TYPES = ("string_match", "multiple_choice", "numeric", "number_list", "list_string_match", "counting", "math")
ALIASES = {
    "exact_match": "string_match",
    "string": "string_match",
    "search": "string_match",
    "text": "string_match",
    "mc": "multiple_choice",
    "mcq": "multiple_choice",
    "choice": "multiple_choice",
    "multiple-choice": "multiple_choice",
    "number": "numeric",
    "numerical": "numeric",
    "float": "numeric",
    "list_match": "list_string_match",
    "count": "counting",
    "math_verify": "math",
    "latex": "math",
    "expression": "math",
}
JUDGE_TYPES = ("llm_judge",)
UNSUPPORTED_TYPES = ("grounding", "clicking", "web_action", "ordering", "instruction_following")
MAX_GOLD_ITEMS = 64
MAX_GOLD_CHARS = 10_000


@dataclass(frozen=True)
class Route:
    """How one reward type is scored: the grader's ``mode`` (grader.MODES), whether a miss goes to the judge, and
    whether ``extra_info["tolerance"]`` applies."""

    mode: str
    judge: bool
    tolerance: bool


ROUTING: dict[str, Route | None] = {
    "multiple_choice": Route("choice", judge=False, tolerance=False),
    "numeric": Route("plain", judge=False, tolerance=True),
    "counting": Route("plain", judge=False, tolerance=True),
    "number_list": Route("number_list", judge=False, tolerance=True),
    "string_match": Route("plain", judge=True, tolerance=False),
    "list_string_match": Route("plain", judge=True, tolerance=False),
    "math": Route("plain", judge=True, tolerance=False),
    "llm_judge": Route("plain", judge=True, tolerance=False),
    **dict.fromkeys(UNSUPPORTED_TYPES),
}
_warned_types: set[str] = set()


def resolve_reward_type(extra_info, gold=None) -> str:
    """The row's reward type: a key of ``ROUTING`` (aliases resolved; a missing or unknown type from the gold)."""
    raw = extra_info.get("reward_type") if isinstance(extra_info, dict) else None
    name = raw.strip().lower() if isinstance(raw, str) else ""
    name = ALIASES.get(name, name)
    if name in ROUTING:
        return name
    if name and name not in _warned_types and len(_warned_types) < 100:
        _warned_types.add(name)
        logger.warning("zppo reward: unknown reward_type %r, routed by its gold answer", raw)
    return type_of_gold(gold)


_LETTER_GOLD = re.compile(r"\(?[A-Z]\)?\.?")
_NUMBER_GOLD = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)")


def type_of_gold(gold) -> str:
    """*ours*: the type of a row without one: a single-letter gold is multiple choice, a bare number numeric,
    anything else string_match (the grader first, the judge on a miss)."""
    items = gold_items(gold)
    first = str(items[0]).strip() if items else ""
    if _LETTER_GOLD.fullmatch(first):
        return "multiple_choice"
    if _NUMBER_GOLD.fullmatch(first.replace(",", "")):
        return "numeric"
    return "string_match"


def _is_listlike(value) -> bool:
    return isinstance(value, (list, tuple, set, frozenset)) or (
        hasattr(value, "tolist") and getattr(value, "ndim", 0) >= 1)


def gold_items(gold) -> list:
    """Gold as a list of alternatives: a scalar is one item; a list/array its items (at most ``MAX_GOLD_ITEMS``);
    None, NaN, empty strings are no item."""
    if gold is None:
        return []
    if _is_listlike(gold):
        items = gold.tolist() if hasattr(gold, "tolist") else list(gold)
        return [g for g in items[:MAX_GOLD_ITEMS] if g is not None and str(g).strip()]
    if isinstance(gold, float) and math.isnan(gold):
        return []
    if isinstance(gold, bytes):
        gold = gold.decode("utf-8", errors="replace")
    if isinstance(gold, str):
        gold = gold.strip()[:MAX_GOLD_CHARS]
        return [gold] if gold else []
    return [gold]


def _literal_list(text: str) -> list | None:
    """``"['a', 'b']"`` / ``'["a", "b"]'`` -> list; None if the text is not a list literal."""
    text = text.strip()
    if len(text) < 2 or text[0] not in "[(" or text[-1] not in "])" or len(text) > MAX_GOLD_CHARS:
        return None
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(text)
        except Exception:
            continue
        if isinstance(value, (list, tuple)):
            return list(value)
    return None


def _as_text(value) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # a float gold 4.0 is the answer "4"
    return str(value).strip()


def gold_answers(gold, reward_type: str) -> list[str]:
    """The gold answers the grader compares with, as strings.

    - list_string_match: a list, or its Python/JSON text, of acceptable answers (any may match);
    - number_list: the gold IS the sequence (a list becomes "[a, b, c]"); a list of lists lists alternatives;
    - otherwise each item of a list gold is an acceptable answer."""
    if reward_type == "number_list":
        if _is_listlike(gold):
            items = gold.tolist() if hasattr(gold, "tolist") else list(gold)
            if items and all(_is_listlike(i) for i in items):
                return ["[" + ", ".join(_as_text(x) for x in (i.tolist() if hasattr(i, "tolist") else i)) + "]"
                        for i in items[:MAX_GOLD_ITEMS]]
            return ["[" + ", ".join(_as_text(x) for x in items[:1000]) + "]"] if items else []
        return [_as_text(g) for g in gold_items(gold)]
    items = []
    for g in gold_items(gold):
        parsed = _literal_list(g) if reward_type == "list_string_match" and isinstance(g, str) else None
        items.extend(parsed if parsed is not None else [g])
    return [t for t in (_as_text(g) for g in items[:MAX_GOLD_ITEMS] if g is not None) if t]


def tolerance_of(extra_info) -> float | None:
    """Relative tolerance from ``extra_info["tolerance"]`` (number, numeric string, or "5%"); None when absent,
    zero, negative, not finite or not a number (10**400 included: it does not fit a float)."""
    raw = extra_info.get("tolerance") if isinstance(extra_info, dict) else None
    if raw is None or isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, str):
            raw = raw.strip()
            tol = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
        else:
            tol = float(raw)
    except (TypeError, ValueError, OverflowError):
        return None
    return tol if math.isfinite(tol) and tol > 0 else None


def options_text(extra_info) -> str:
    """The options of a row for the judge's "Answer Options" section (Fig. 9): ``extra_info["choices"]`` or
    ``["options"]`` as "A. ...", one per line ("" when the row has none; the question text usually lists them)."""
    if not isinstance(extra_info, dict):
        return ""
    for key in ("choices", "options"):
        raw = extra_info.get(key)
        if raw is None:
            continue
        if isinstance(raw, dict):
            return "\n".join(f"{k}. {v}" for k, v in raw.items())
        if _is_listlike(raw):
            items = [str(v).strip() for v in (raw.tolist() if hasattr(raw, "tolist") else list(raw))[:26]]
            # an item that already carries its letter ("B. dog", "(B) dog") is shown as it is
            return "\n".join(v if v[:2] == f"{chr(65 + i)}." or v[:3] == f"({chr(65 + i)})" else f"{chr(65 + i)}. {v}"
                             for i, v in enumerate(items))
        if isinstance(raw, str) and raw.strip():
            return raw.strip()
    return ""
