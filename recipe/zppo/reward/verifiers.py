"""Deterministic verifiers, one per ``extra_info["reward_type"]``.

Every verifier takes the extracted answer ``pred`` (a non-empty string), the gold answer (str, int, float,
or a list/tuple/array of them) and the row's ``extra_info``, and returns a ``Verdict``:

- ``correct=True`` / ``False``: the verifier decided;
- ``correct=None``: the verifier could not interpret ``pred`` for this answer type (e.g. no number in a
  numeric answer, no choice in a multiple-choice answer); ``compute_score`` then treats the response as
  unparseable (judge fallback when enabled).

Reward types (Vero-600k values, plus ``math``; aliases in ``ALIASES``):

=================== ======================================================================================
string_match        normalised text equality (case, whitespace, LaTeX ``\\text{}``, accents, punctuation,
                    articles); numbers compared as numbers; "Yes, because..." matches "yes"; a gold list
                    means any of its items.
multiple_choice     letter or option text. Options from ``extra_info["choices"|"options"]`` (list, dict or
                    text) or parsed from the question text ("A. ...", "(B) ...", "C) ...", "D: ...").
                    Several different letters in the answer = wrong.
numeric             numbers in any spelling (see ``normalize.parse_number``), relative ``tolerance`` from
                    ``extra_info["tolerance"]`` (|pred-gold| <= tol*|gold|; absolute when gold is 0;
                    "5%" means 0.05); expressions fall back to math-verify.
number_list         an ordered sequence of numbers ("[1, 2, 3]", "1,2,3", "(1; 2; 3)"); all must match in
                    order (a comma always separates items here).
list_string_match   the gold is a list (or its Python/JSON text) of acceptable answers: any may match.
counting            a count: digits or number words ("three"), units ignored ("3 apples").
math                normalised equality, then numbers, then math-verify (symbolic equivalence).
auto (missing or    single capital letter gold -> multiple_choice; a number -> numeric; LaTeX-looking ->
unknown type)       math; else string_match, then math-verify if the gold looks mathematical.
=================== ======================================================================================
"""

from __future__ import annotations

import ast
import json
import logging
import math
import re
from dataclasses import dataclass

from recipe.zppo.reward import mathverify
from recipe.zppo.reward.normalize import Num, clean_unicode, normalize_text, numbers_match, parse_number, strip_latex

logger = logging.getLogger(__name__)

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
_warned_types: set[str] = set()

MAX_GOLD_ITEMS = 64
MAX_GOLD_CHARS = 10_000


@dataclass(frozen=True)
class Verdict:
    correct: bool | None
    detail: str


# ---------------------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------------------
def resolve_reward_type(extra_info) -> str:
    """The verifier name for a row: one of ``REWARD_TYPES`` or "auto" (missing or unknown type)."""
    raw = extra_info.get("reward_type") if isinstance(extra_info, dict) else None
    if not isinstance(raw, str) or not raw.strip():
        return "auto"
    name = raw.strip().lower()
    name = ALIASES.get(name, name)
    if name in REWARD_TYPES:
        return name
    if name not in _warned_types and len(_warned_types) < 100:
        _warned_types.add(name)
        logger.warning("zppo reward: unsupported reward_type %r, using the 'auto' verifier", raw)
    return "auto"


def _is_listlike(value) -> bool:
    return isinstance(value, (list, tuple, set, frozenset)) or (
        hasattr(value, "tolist") and hasattr(value, "ndim") and getattr(value, "ndim", 0) >= 1
    )


def _to_list(value) -> list:
    if hasattr(value, "tolist"):
        value = value.tolist()
    return list(value)


def gold_items(gold) -> list:
    """Gold as a list of alternatives: scalars stay one item; lists/arrays are their items (at most 64)."""
    if gold is None:
        return []
    if _is_listlike(gold):
        return [g for g in _to_list(gold)[:MAX_GOLD_ITEMS] if g is not None and str(g).strip()]
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
    if not text or text[0] not in "[(" or text[-1] not in "])" or len(text) > MAX_GOLD_CHARS:
        return None
    for loader in (json.loads, ast.literal_eval):
        try:
            value = loader(text)
        except Exception:
            continue
        if isinstance(value, (list, tuple)):
            return list(value)
    return None


def tolerance_of(extra_info) -> float | None:
    """Relative tolerance from ``extra_info["tolerance"]`` (number, numeric string, or "5%"); None if absent."""
    raw = extra_info.get("tolerance") if isinstance(extra_info, dict) else None
    if raw is None or isinstance(raw, bool):
        return None
    try:
        if isinstance(raw, str):
            raw = raw.strip()
            tol = float(raw[:-1]) / 100.0 if raw.endswith("%") else float(raw)
        else:
            tol = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(tol) or tol < 0:
        return None
    return tol


# ---------------------------------------------------------------------------------------------------------
# string_match / list_string_match
# ---------------------------------------------------------------------------------------------------------
_YES_NO = {"yes", "no", "true", "false"}


def text_equal(pred: str, gold) -> bool:
    """One pred against one gold item: numbers as numbers (units must agree when both have one:
    "12 cm" == "12" but "3 Musketeers" != "3 Idiots"), else normalised text."""
    p_num = parse_number(pred, word_units=False)
    g_num = parse_number(gold, word_units=False)
    if p_num is not None and g_num is not None:
        if not numbers_match(p_num, g_num):
            return False
        if not p_num.unit or not g_num.unit or p_num.unit == g_num.unit:
            return True
    p_norm, g_norm = normalize_text(pred), normalize_text(gold)
    if not p_norm or not g_norm:
        return False
    if p_norm == g_norm:
        return True
    if g_norm in _YES_NO:
        first = p_norm.split()[0]
        others = _YES_NO - {g_norm}
        return first == g_norm and not any(o in p_norm.split() for o in others)
    return False


def verify_string_match(pred: str, gold, extra_info=None) -> Verdict:
    items = gold_items(gold)
    if not items:
        return Verdict(False, "no_ground_truth")
    return Verdict(any(text_equal(pred, g) for g in items), "text")


def verify_list_string_match(pred: str, gold, extra_info=None) -> Verdict:
    items = []
    for g in gold_items(gold):
        parsed = _literal_list(g) if isinstance(g, str) else None
        items.extend(parsed if parsed is not None else [g])
    items = [g for g in items if g is not None and str(g).strip()][:MAX_GOLD_ITEMS]
    if not items:
        return Verdict(False, "no_ground_truth")
    return Verdict(any(text_equal(pred, g) for g in items), "text_any")


# ---------------------------------------------------------------------------------------------------------
# multiple_choice
# ---------------------------------------------------------------------------------------------------------
_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_OPTION_LINE_RE = re.compile(r"^\s*(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])\s*[.):：\uff0e])\s*(\S.*)$")
_OPTION_INLINE_RE = re.compile(r"\(([A-Z])\)\s*(.+?)(?=\s*\([A-Z]\)|$)")
_LETTER_ONLY_RE = re.compile(
    r"^(?:(?:the\s+)?(?:correct\s+)?(?:answer|option|choice)\s*(?:is)?\s*[:：]?\s*)?"
    r"[(\[]?\s*([A-Za-z])\s*[)\]]?\s*[.:)]?$",
    re.IGNORECASE,
)
_LETTER_LEAD_RE = re.compile(
    r"^(?:(?:option|choice)\s*)?(?:\(([A-Z])\)|\[([A-Z])\]|([A-Z])\s*[.):：])\s*(.*)$", re.IGNORECASE
)
_STANDALONE_LETTER_RE = re.compile(r"(?<![A-Za-z'])([A-Z])(?![A-Za-z'])")


def _options_from_text(text: str) -> dict[str, str]:
    text = clean_unicode(str(text))
    options: dict[str, str] = {}
    for line in text.splitlines():
        m = _OPTION_LINE_RE.match(line)
        if m:
            letter = m.group(1) or m.group(2) or m.group(3)
            options.setdefault(letter, m.group(4).strip())
    if len(options) < 2:
        inline = {}
        for m in _OPTION_INLINE_RE.finditer(text):
            inline.setdefault(m.group(1), m.group(2).strip())
        if len(inline) > len(options):
            options = inline
    # keep only a run of consecutive letters starting at A (rejects "I." in prose, "B) the" in a sentence)
    run: dict[str, str] = {}
    for letter in _LETTERS:
        if letter not in options:
            break
        run[letter] = options[letter]
    return run if len(run) >= 2 else {}


def options_of(extra_info) -> dict[str, str]:
    """Options of a multiple-choice row: letter -> option text ({} when unknown)."""
    if not isinstance(extra_info, dict):
        return {}
    for key in ("choices", "options", "option", "candidates"):
        raw = extra_info.get(key)
        if raw is None:
            continue
        if isinstance(raw, dict):
            opts = {str(k).strip().strip("().").upper(): str(v).strip() for k, v in raw.items()}
            opts = {k: v for k, v in opts.items() if len(k) == 1 and k in _LETTERS}
            if opts:
                return opts
        elif _is_listlike(raw):
            items = [str(v).strip() for v in _to_list(raw)][: len(_LETTERS)]
            if items:
                opts = {}
                for i, item in enumerate(items):
                    m = _OPTION_LINE_RE.match(item)
                    if m and (m.group(1) or m.group(2) or m.group(3)) == _LETTERS[i]:
                        item = m.group(4).strip()
                    opts[_LETTERS[i]] = item
                return opts
        elif isinstance(raw, str) and raw.strip():
            parsed = _literal_list(raw)
            if parsed:
                return options_of({"choices": parsed})
            opts = _options_from_text(raw)
            if opts:
                return opts
    for key in ("question", "problem", "prompt", "original_question"):
        raw = extra_info.get(key)
        if isinstance(raw, str) and raw:
            opts = _options_from_text(raw[-20_000:])
            if opts:
                return opts
    return {}


def _letters_in(text: str, valid: str) -> tuple[str | None, set[str]]:
    """(the letter a short answer names, all standalone valid capital letters it contains)."""
    s = strip_latex(clean_unicode(text)).strip().strip("*_`\"'").strip()
    m = _LETTER_ONLY_RE.match(s)
    if m:
        return m.group(1).upper(), {m.group(1).upper()}
    m = _LETTER_LEAD_RE.match(s)
    if m:
        letter = (m.group(1) or m.group(2) or m.group(3)).upper()
        return letter, {letter}
    found = set(_STANDALONE_LETTER_RE.findall(s)) & set(valid)
    return None, found


def _option_letter_for_text(text: str, options: dict[str, str]) -> str | None:
    norm = normalize_text(text)
    if not norm:
        return None
    matches = [k for k, v in options.items() if normalize_text(v) == norm]
    if len(matches) == 1:
        return matches[0]
    num = parse_number(text)
    if num is not None:
        matches = [k for k, v in options.items() if (o := parse_number(v)) is not None and numbers_match(num, o)]
        if len(matches) == 1:
            return matches[0]
    return None


def _gold_choice(gold: str, options: dict[str, str]) -> tuple[str | None, str | None]:
    """(gold letter or None, gold option text or None)."""
    s = strip_latex(clean_unicode(str(gold))).strip()
    m = _LETTER_ONLY_RE.match(s)
    if m and (len(s) <= 3 or not options or m.group(1).upper() in options):
        letter = m.group(1).upper()
        return letter, options.get(letter)
    m = _LETTER_LEAD_RE.match(s)
    if m:
        letter = (m.group(1) or m.group(2) or m.group(3)).upper()
        if not options or letter in options:
            return letter, options.get(letter) or (m.group(4).strip() or None)
    if options:
        letter = _option_letter_for_text(s, options)
        if letter:
            return letter, options[letter]
    return None, s


def verify_multiple_choice(pred: str, gold, extra_info=None) -> Verdict:
    items = gold_items(gold)
    if not items:
        return Verdict(False, "no_ground_truth")
    options = options_of(extra_info)
    valid = "".join(options) if options else "ABCDEFGH"
    verdicts = [_verify_choice(pred, str(g), options, valid) for g in items]
    if any(v.correct for v in verdicts):
        return next(v for v in verdicts if v.correct)
    if all(v.correct is None for v in verdicts):
        return verdicts[0]
    return next(v for v in verdicts if v.correct is False)


def _verify_choice(pred: str, gold: str, options: dict[str, str], valid: str) -> Verdict:
    gold_letter, gold_text = _gold_choice(gold, options)
    pred_letter, letters = _letters_in(pred, valid)
    if pred_letter is None and options:
        pred_letter = _option_letter_for_text(pred, options)
    if pred_letter is None and len(letters) == 1 and len(pred) <= 40:
        pred_letter = next(iter(letters))
    if pred_letter is None and len(letters) > 1:
        return Verdict(False, "several_choices")
    if gold_letter is not None:
        if pred_letter is not None:
            return Verdict(pred_letter == gold_letter, "letter")
        if gold_text and text_equal(pred, gold_text):
            return Verdict(True, "option_text")
        return Verdict(None, "no_choice")
    # gold is an option text that is not among the known options
    if pred_letter is not None and pred_letter in options:
        return Verdict(text_equal(options[pred_letter], gold_text or ""), "letter_text")
    return Verdict(text_equal(pred, gold_text or ""), "text")


# ---------------------------------------------------------------------------------------------------------
# numeric / counting / number_list
# ---------------------------------------------------------------------------------------------------------
def verify_numeric(pred: str, gold, extra_info=None) -> Verdict:
    items = gold_items(gold)
    if not items:
        return Verdict(False, "no_ground_truth")
    tol = tolerance_of(extra_info)
    p = parse_number(pred)
    undecided = None
    for g in items:
        g_num = parse_number(g)
        if p is not None and g_num is not None:
            if numbers_match(p, g_num, tol):
                return Verdict(True, "number")
            continue
        # an expression on either side (2\sqrt{3}, \pi/2): math-verify, with the tolerance if any
        correct, detail = mathverify.math_equal(str(g), pred, rel_tol=tol)
        if correct:
            return Verdict(True, "math_verify")
        if detail == mathverify.TIMEOUT:
            undecided = undecided or Verdict(False, "math_verify_timeout")
        elif correct is None and p is None:
            undecided = undecided or Verdict(None, "no_number")
    if undecided is not None:
        return undecided
    return Verdict(False, "number" if p is not None else "math_verify")


def verify_counting(pred: str, gold, extra_info=None) -> Verdict:
    items = gold_items(gold)
    if not items:
        return Verdict(False, "no_ground_truth")
    p = parse_number(pred)
    if p is None:
        return Verdict(None, "no_number")
    tol = tolerance_of(extra_info)
    for g in items:
        g_num = parse_number(g)
        if g_num is not None and numbers_match(p, g_num, tol):
            return Verdict(True, "count")
    return Verdict(False, "count")


_LIST_SPLIT_RE = re.compile(r"\s*(?:,|;|\band\b|\s)\s*")
_BRACKETS = "[](){}<>"


def parse_number_list(value) -> list[Num] | None:
    """A sequence of numbers from a list/array or its text; None if any item is not a number or none is."""
    if value is None:
        return None
    if _is_listlike(value):
        items = _to_list(value)
    else:
        text = strip_latex(clean_unicode(str(value)))
        if len(text) > MAX_GOLD_CHARS:
            return None
        if "=" in text:
            text = text.rsplit("=", 1)[1]
        text = text.replace("\\{", "").replace("\\}", "").replace("\\langle", "").replace("\\rangle", "")
        text = text.strip().strip(_BRACKETS).strip()
        text = re.sub(r"[\[\](){}<>]", " ", text)
        items = [t for t in _LIST_SPLIT_RE.split(text) if t and t.strip(".")]
    if not items or len(items) > 1000:
        return None
    nums = []
    for item in items:
        n = parse_number(item)
        if n is None:
            return None
        nums.append(n)
    return nums


def verify_number_list(pred: str, gold, extra_info=None) -> Verdict:
    if gold is None or (not _is_listlike(gold) and not str(gold).strip()):
        return Verdict(False, "no_ground_truth")
    golds = [gold]
    if _is_listlike(gold) and gold_items(gold) and all(_is_listlike(g) for g in gold_items(gold)):
        golds = gold_items(gold)  # several acceptable sequences
    p = parse_number_list(pred)
    if p is None:
        return Verdict(None, "no_number_list")
    tol = tolerance_of(extra_info)
    any_gold = False
    for g in golds:
        g_list = parse_number_list(g)
        if g_list is None:
            continue
        any_gold = True
        if len(g_list) == len(p) and all(numbers_match(a, b, tol) for a, b in zip(p, g_list)):
            return Verdict(True, "sequence")
    return Verdict(False, "sequence" if any_gold else "bad_ground_truth")


# ---------------------------------------------------------------------------------------------------------
# math / auto
# ---------------------------------------------------------------------------------------------------------
_MATHY_RE = re.compile(r"\\[a-zA-Z]+|[\^_{}]|\d\s*[-+*/]\s*\d|\bsqrt\b|\bpi\b|[a-z]\s*[=<>]|[π√∞]")


def looks_mathy(text) -> bool:
    return bool(_MATHY_RE.search(str(text)))


def _normalize_math(text: str) -> str:
    s = strip_latex(clean_unicode(str(text)))
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac")
    return re.sub(r"\s+", "", s).rstrip(".").lower()


def verify_math(pred: str, gold, extra_info=None) -> Verdict:
    items = gold_items(gold)
    if not items:
        return Verdict(False, "no_ground_truth")
    tol = tolerance_of(extra_info)
    p_num = parse_number(pred)
    p_norm = _normalize_math(pred)
    undecided = None
    for g in items:
        if p_norm and p_norm == _normalize_math(g):
            return Verdict(True, "normalized")
        g_num = parse_number(g)
        if p_num is not None and g_num is not None:
            if numbers_match(p_num, g_num, tol):
                return Verdict(True, "number")
            continue
        correct, detail = mathverify.math_equal(str(g), pred, rel_tol=tol)
        if correct:
            return Verdict(True, "math_verify")
        if detail == mathverify.TIMEOUT:
            undecided = undecided or Verdict(False, "math_verify_timeout")
        elif correct is None:
            if text_equal(pred, g):
                return Verdict(True, "text")
            undecided = undecided or Verdict(None, "math_verify_" + detail)
    if undecided is not None:
        return undecided
    return Verdict(False, "math_verify" if p_num is None else "number")


_SINGLE_LETTER_GOLD_RE = re.compile(r"^\(?[A-Z]\)?\.?$")


def auto_type(gold) -> str:
    """The verifier used when a row has no (known) reward_type, chosen from the gold answer."""
    items = gold_items(gold)
    if not items:
        return "string_match"
    first = items[0]
    if isinstance(first, str):
        s = strip_latex(clean_unicode(first)).strip()
        if _SINGLE_LETTER_GOLD_RE.match(s):
            return "multiple_choice"
    if parse_number(first) is not None:
        return "numeric"
    if looks_mathy(first):
        return "math"
    return "string_match"


def verify_auto(pred: str, gold, extra_info=None) -> Verdict:
    kind = auto_type(gold)
    if kind == "string_match":
        verdict = verify_string_match(pred, gold, extra_info)
        if not verdict.correct and any(looks_mathy(g) for g in gold_items(gold)) and looks_mathy(pred):
            mv = verify_math(pred, gold, extra_info)
            if mv.correct:
                return mv
        return verdict
    return VERIFIERS[kind](pred, gold, extra_info)


VERIFIERS = {
    "string_match": verify_string_match,
    "multiple_choice": verify_multiple_choice,
    "numeric": verify_numeric,
    "number_list": verify_number_list,
    "list_string_match": verify_list_string_match,
    "counting": verify_counting,
    "math": verify_math,
    "auto": verify_auto,
}


def verify(reward_type: str, pred: str, gold, extra_info=None) -> Verdict:
    """Run the verifier ``reward_type`` (a name from ``VERIFIERS``); unknown names use ``auto``."""
    return VERIFIERS.get(reward_type, verify_auto)(pred, gold, extra_info)
