"""Question text: task-specific format instructions out, the answer-format closer (Fig. 8) in.

Every training prompt ends with ``recipe.zppo.algo.answer_format.ANSWER_CLOSER`` (the same closer evaluation uses), so
an upstream instruction that asks for another answer format ("Answer with the option's letter ... directly",
"put your final answer within \\boxed{}", "<answer></answer> tags", ...) would contradict it. ``FORMAT_RULES`` is
the list of such instructions this builder removes, each a named, case-insensitive regex; a rule's replacement
is empty except where the instruction also carries content (MathVista's "requiring a floating-point number with
two decimal places" keeps the answer type as a plain sentence). Only these patterns are touched: the question,
its choices and any other hint stay as they are.

Also here: the ``<image>`` placeholder layout of the user turn, the key used for de-duplication, and the
reward type inferred for rows that carry none (MMFineReason).
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass

from recipe.zppo.algo.answer_format import ANSWER_CLOSER

IMAGE_PLACEHOLDER = "<image>"


@dataclass(frozen=True)
class FormatRule:
    """One format instruction: ``pattern`` (case-insensitive) is replaced by ``replacement``."""

    name: str
    pattern: re.Pattern
    replacement: str | Callable[[re.Match], str]
    example: str  # an instance the unit tests check the rule against


def _requirement(match: re.Match) -> str:
    # "an integer answer" -> "an integer"; "a Python list as an answer" -> "a Python list"
    kind = re.sub(r"\s+(?:as an\s+)?answer$", "", match.group(1).strip(), flags=re.IGNORECASE)
    return f"The answer is {kind}."


def _rule(name: str, pattern: str, example: str, replacement="") -> FormatRule:
    return FormatRule(name, re.compile(pattern, re.IGNORECASE | re.DOTALL), replacement, example)


# Applied in this order. Patterns are anchored on the instruction's own words, so they do not eat question text.
FORMAT_RULES: tuple[FormatRule, ...] = (
    # Fig. 8's closer (ANSWER_CLOSER, the R1-style system prompt that upstream rows fold into the question, or a
    # row prepared by an earlier run) and its spacing variants: appended again, exactly once, afterwards. First,
    # so that the rules below do not take it apart.
    _rule("reasoning_monologue",
          r"You FIRST think about the reasoning process as an internal monologue and then provide the final "
          r"answer\.(?:\s*The reasoning process MUST BE enclosed within <think>\s*</think> tags\.)?"
          r"(?:\s*The final answer MUST BE (?:put|placed) in \\boxed\{\s*\}\.)?",
          ANSWER_CLOSER),
    # LLaVA-style multiple-choice suffix.
    _rule("mc_letter_directly",
          r"Answer with the option'?s letter from the given choices directly\.?",
          "Answer with the option's letter from the given choices directly."),
    # LLaVA-style short-answer suffix.
    _rule("single_word_or_phrase",
          r"Answer the question using a single (?:word|number)(?: or (?:a )?(?:short )?phrase)?\.?",
          "Answer the question using a single word or phrase."),
    # MathVista hints that name the answer type: the type is kept, the "provide ... at the end" part goes.
    _rule("hint_answer_type",
          r"Hint:\s*Please answer the question requiring (an? [^\n]+?) and provide the final (?:value|list|answer), "
          r"e\.g\.,"
          r"[^\n]*? at the end\.?",
          "Hint: Please answer the question requiring an integer answer and provide the final value, "
          "e.g., 1, 2, 3, at the end.",
          _requirement),
    # MathVista-style hints without content.
    _rule("hint_final_answer_at_end",
          r"(?:Hint:\s*)?Please answer the question and provide the (?:correct option letter, e\.g\., A, B, C, D,"
          r"|final answer) at the end\.?",
          "Hint: Please answer the question and provide the correct option letter, e.g., A, B, C, D, at the end."),
    # "<think> ... </think> and <answer> ... </answer>" instructions.
    _rule("think_answer_tags",
          r"(?:Output|Put|Provide|Enclose|Place) the (?:thinking|reasoning) process (?:with)?in <think>\s*</think>"
          r"(?: tags)? and (?:the )?final answer (?:with)?in <answer>\s*</answer>(?: tags?)?\.?",
          "Output the thinking process in <think> </think> and final answer in <answer> </answer> tags."),
    # Vero's / Molmo2's suffix: "(Think step by step before answering.) Present the final answer in LaTeX using
    # \boxed." (vero-rl's molmo2_prompt_instructions.py and its variants).
    _rule("latex_boxed_directive",
          r"(?:(?:Think|Reason|Work|Go|Proceed)(?: through the solution)? step[- ]by[- ]step(?: in your reasoning)? "
          r"before (?:answering|responding|replying|you respond)[.,]?\s*(?:and\s+)?)?"
          r"(?:Present|Provide|Write|Format|Express|State|Show|Display|Give) the final (?:answer|result|conclusion|"
          r"expression) in LaTeX using \\boxed(?:\{\s*\})?\.?",
          "Think step by step before answering. Present the final answer in LaTeX using \\boxed."),
    # "(Please) (reason step by step, and) put your final answer within \boxed{}."
    _rule("boxed_directive",
          r"(?:Please\s+)?(?:(?:reason|think) step[- ]by[- ]step,?\s*(?:and\s+)?)?"
          r"(?:put|place|write|present|give) (?:your|the) (?:final )?answer (?:with)?in(?:side)? "
          r"(?:a )?\\boxed\{\s*\}\.?",
          "Please reason step by step, and put your final answer within \\boxed{}."),
    # A bare "Let's think step by step." left over.
    _rule("think_step_by_step",
          r"\b(?:(?:Let's|Let us|Please)\s+)?think step[- ]by[- ]step\b[.:]?",
          "Let's think step by step."),
)

_SENTINEL = "\x00"  # marks where an instruction was removed, so the whitespace around it can be tidied
_LEADING_SENTINEL = re.compile(r"(^|\n)[ \t]*\x00+[ \t]*")
_INNER_SENTINEL = re.compile(r"[ \t]*\x00+[ \t]*")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_BLANK_LINES = re.compile(r"\n{3,}")


def strip_format_instructions(text: str) -> tuple[str, list[str]]:
    """``text`` without the instructions of ``FORMAT_RULES``; returns (text, names of the rules that matched)."""
    applied = []
    for rule in FORMAT_RULES:
        text, n = rule.pattern.subn(rule.replacement or _SENTINEL, text)
        if n:
            applied.append(rule.name)
    if applied:
        text = _LEADING_SENTINEL.sub(r"\1", text)
        text = _INNER_SENTINEL.sub(" ", text)
        text = _TRAILING_SPACE.sub("\n", text)
        text = _BLANK_LINES.sub("\n\n", text)
    return text.strip(), applied


def remove_image_placeholders(text: str) -> str:
    """The question without ``<image>`` placeholders (they are put back in front, one per image)."""
    if IMAGE_PLACEHOLDER not in text:
        return text.strip()
    return _BLANK_LINES.sub("\n\n", text.replace(IMAGE_PLACEHOLDER, "")).strip()


def clean_question(text: str) -> tuple[str, list[str]]:
    """Placeholders and format instructions removed; returns (question, names of the format rules applied)."""
    return strip_format_instructions(remove_image_placeholders(text))


def question_with_placeholders(question: str, n_images: int) -> str:
    """The question as stored in ``extra_info.question``: one ``<image>`` per image, in front (verl's layout)."""
    return IMAGE_PLACEHOLDER * n_images + question


def user_content(question: str, n_images: int) -> str:
    """The user turn of the prompt: placeholders, question, blank line, the answer-format closer (Fig. 8)."""
    return question_with_placeholders(question, n_images) + "\n\n" + ANSWER_CLOSER


_SPACES = re.compile(r"\s+")


def dedupe_text(question: str) -> str:
    """Normalised question for de-duplication: Unicode NFKC, case-folded, whitespace collapsed."""
    return _SPACES.sub(" ", unicodedata.normalize("NFKC", question).casefold()).strip()


# ------------------------------------------------------------------------------------------------ reward type

_LETTER_ANSWER = re.compile(r"^\(?\s*([A-Z])\s*\)?\.?$")
_OPTION_MARKER = re.compile(r"(?:^|[\s(])\(?([A-H])[).:：]\s*\S", re.MULTILINE)
_PLAIN_NUMBER = re.compile(r"^[+\-−]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?%?$")
_FRACTION = re.compile(r"^[+\-−]?\d+\s*/\s*\d+$")
_MATHY = re.compile(r"\\[a-zA-Z]+|[\^_=]|\d\s*[+*/×÷]\s*\d|\bsqrt\b|π|√|∞")


def infer_reward_type(answer: str, question: str) -> str:
    """A reward type of ``recipe.zppo.reward`` for a row that has none (MMFineReason).

    - ``multiple_choice``: the answer is one letter ("B", "(B)", "B.") and the question lists at least two
      lettered options, the answer's among them;
    - ``numeric``: the answer is a plain number ("42", "-3.5", "1,234", "12%", "3/4");
    - ``math``: the answer looks like an expression (LaTeX commands, ``^``, ``=``, ``sqrt``, ``π``, ...);
    - ``string_match`` otherwise.
    """
    text = answer.strip().strip("$").strip()
    letter = _LETTER_ANSWER.match(text)
    if letter:
        options = set(_OPTION_MARKER.findall(question))
        if len(options) >= 2 and letter.group(1) in options:
            return "multiple_choice"
        return "string_match"
    if text and any(c.isdigit() for c in text) and (_PLAIN_NUMBER.match(text) or _FRACTION.match(text)):
        return "numeric"
    if _MATHY.search(text):
        return "math"
    return "string_match"
