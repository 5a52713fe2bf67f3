"""The paper's two teacher-guided baselines, Hint (Algorithm 5) and Prefix (Algorithm 6) of App. D.2 (pure: no Ray,
no GPU, no HTTP).

Both work on X_aug: the round(rho_aug x |X_new|) hardest hard questions (ascending plain accuracy; ``algo.caps``).
Only for those, the frozen teacher draws G_T = 4 FRESH rollouts on this step (no stored pool), scored with the
run's reward; one correct rollout is drawn uniformly (``teacher.candidates.TeacherWork.start_guidance``). A question
on which the teacher has no correct rollout gets no extra group (only its plain one), counted.

- **Hint** (``method=hint``, Algorithm 5, after Guide-GRPO and SEELE): the teacher is asked, with the Fig. 19 prompt
  (``HINT_PROMPT``, verbatim) around that correct rollout, for an answer-free hint h_T; the student's prompt is the
  question, then ``<hint>`` h_T ``</hint>``, then the answer closer (Fig. 8); one extra group of G_S rollouts on it,
  every response token the student's own (on-policy given the hinted prompt).
- **Prefix** (``method=prefix``, Algorithm 6, after BREAD and StepHint): the first floor(alpha x L) of that
  rollout's L tokens (alpha = 0.4, ``prefix_fraction``; the student's tokenizer) start the student's response and
  the student continues them; the group's G_S continuations share the prefix. The prefix tokens are the teacher's,
  not the policy's samples: they are **masked** out of the loss (``response_mask`` 0: no ratio, no clip, no
  gradient, no entropy; Algorithm 6 step 16, BREAD's E5) and serve only as context. The reward scores the whole
  response (prefix + continuation). See ``prefix_agent_loop.py`` for where the mask is set.

Choices where the paper is silent (*ours*): the hint is sanitized (``sanitize_hint``): Fig. 19 asks for no
``\\boxed{}``; a teacher that writes one anyway has every ``\\boxed{...}`` expression (its content included) STRIPPED
from the hint and counted (``zppo/teacher/hint_boxed_stripped``); a hint left empty is refused (no hint group,
``zppo/teacher/hint_empty``). The hint block is ``<hint>\\n{h_T}\\n</hint>`` after a blank line, like the
``<candidate>`` blocks of Figs 17-18. A prompt or prefix that does not fit the budget is skipped and counted, never
cut (as BCQ/NCQ).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..algo.answer_format import ANSWER_CLOSER, box_content_at
from ..algo.compression import _after_leading_think
from ..algo.reformulation import (
    NO_TEACHER_CANDIDATE,
    SKIPPED_FOR_LENGTH,
    ReformulatedPrompt,
    SkippedReformulation,
    Tokenization,
    _question_part,
    _user_turn,
    clean_candidate_text,
)

HINT = "hint"
PREFIX = "prefix"
GUIDANCE_MODES = ("none", HINT, PREFIX)
NO_HINT = "no_hint"  # the teacher had a correct rollout, but its hint request failed or gave nothing usable

# Fig. 19 ("Hint-generation prompt for the Hint baseline (answer-free guidance from a correct teacher trace)"),
# verbatim; "<response>" starts its own line as in Fig. 16's rendering. "{response}" is the single slot (not a
# str.format template: "\boxed{}" has braces).
HINT_PROMPT = (
    "Read the solved response below and write a concise hint that helps solve the original question. Do NOT reveal "
    "the final answer, do NOT include any \\boxed{} expression, and do NOT copy the full solution. Keep only "
    "high-level guidance or the key intermediate idea.\n"
    "<response>\n{response}\n</response>"
)
RESPONSE_SLOT = "{response}"
HINT_OPEN, HINT_CLOSE = "<hint>", "</hint>"  # App. D.2: "appended to the question inside <hint> ... </hint> tags"

# Hint outcomes (each doubles as a counter name: zppo/teacher/hint_<outcome>)
HINT_OK = "ok"
HINT_EMPTY = "empty"
HINT_TRUNCATED = "truncated"

_BOX_START = re.compile(r"\\(?:boxed|fbox)\s*\{")
_HINT_TAGS = re.compile(r"</?hint\s*>", re.IGNORECASE)


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class GuidanceConfig:
    """``zppo.guidance.*`` (defaults and checks here; composed by config/schema.py)."""

    mode: str = "none"
    # alpha: share of the chosen correct teacher rollout's tokens forced as the response prefix (floor(alpha x L)).
    # paper: 0.4 (App. D.2, Algorithm 6)
    prefix_fraction: float = 0.4
    # A prefix leaves at least this many response tokens for the student's own continuation. ours: 16
    min_continuation_tokens: int = 16
    # The teacher's hint request (Fig. 19). ours (the paper gives none): at most 512 tokens, as a compressed
    # candidate (Tab. 8); greedy and without a thinking block, as compression (teacher/candidates.py)
    hint_max_tokens: int = 512
    hint_temperature: float = 0.0
    hint_thinking: bool = False
    # Between the question, the hint block and the closer. ours: a blank line, as BCQ/NCQ (Figs 17-18)
    section_separator: str = "\n\n"
    answer_closer: str = ANSWER_CLOSER
    # Seed of the uniform draw of the correct teacher rollout (with step and question id). ours: 0
    seed: int = 0

    def __post_init__(self):
        if self.mode not in GUIDANCE_MODES:
            raise ValueError(f"zppo.guidance.mode={self.mode!r}: expected one of {GUIDANCE_MODES}")
        if not 0.0 < self.prefix_fraction < 1.0:
            raise ValueError(f"zppo.guidance.prefix_fraction={self.prefix_fraction} must be in (0, 1)")
        if self.min_continuation_tokens < 1:
            raise ValueError("zppo.guidance.min_continuation_tokens must be >= 1")
        if self.hint_max_tokens < 1 or self.hint_temperature < 0:
            raise ValueError("zppo.guidance: hint_max_tokens must be >= 1 and hint_temperature >= 0")
        if self.seed < 0:
            raise ValueError("zppo.guidance.seed must be >= 0")


# ------------------------------------------------------------------ the teacher's hint request (Fig. 19)
def hint_prompt(response: str) -> str:
    """The Fig. 19 prompt around a correct teacher rollout (cleaned: think tags become line breaks, control tokens
    and media placeholders removed, as for compression)."""
    head, tail = HINT_PROMPT.split(RESPONSE_SLOT)
    return head + clean_candidate_text(response or "") + tail


def hint_messages(response: str) -> list[dict]:
    """The teacher's chat for a hint: one user turn, the Fig. 19 prompt."""
    return [{"role": "user", "content": hint_prompt(response)}]


def _strip_boxes(text: str) -> tuple[str, int]:
    """``text`` without any ``\\boxed{...}`` / ``\\fbox{...}`` expression (content included, nested braces allowed;
    an unclosed one is cut to the end of the text), and how many were removed."""
    count = 0
    while True:
        match = _BOX_START.search(text)
        if match is None:
            return text, count
        content = box_content_at(text, match.end() - 1)  # match ends at the opening brace
        end = len(text) if content is None else match.end() + len(content) + 1
        text = text[: match.start()] + text[end:]
        count += 1


@dataclass(frozen=True)
class SanitizedHint:
    text: str | None  # None: refused
    reason: str  # HINT_OK or HINT_EMPTY
    boxes_stripped: int = 0


def sanitize_hint(output: str) -> SanitizedHint:
    """The teacher's hint reply as it goes between ``<hint>`` tags (*ours*, the paper only asks the teacher): a
    leading think block dropped, every ``\\boxed{...}`` stripped (counted), ``<hint>`` tags, think tags, chat-control
    tokens and media placeholders removed, white space trimmed; nothing left: refused (``HINT_EMPTY``)."""
    body = _after_leading_think(output or "")
    body, boxes = _strip_boxes(body or "")
    text = clean_candidate_text(_HINT_TAGS.sub("", body)).strip()
    return SanitizedHint(text or None, HINT_OK if text else HINT_EMPTY, boxes)


# ------------------------------------------------------------------ what the builders get
@dataclass
class GuidanceMaterial:
    """One X_aug question and this step's teacher work for it."""

    question_id: Any
    prompt: Sequence[dict]  # the row's original chat messages
    prompt_length: int  # the processor's length of that prompt
    ground_truth: Any
    teacher_text: str | None = None  # the correct teacher rollout drawn (None: the teacher solved nothing)
    hint: str | None = None  # the sanitized hint (method=hint), None when there is none


@dataclass
class PrefixPlan:
    """A prefix prompt: the original messages, and the teacher tokens the response starts with."""

    question_id: object
    kind: str
    messages: list[dict]
    ground_truth: object
    prefix_ids: list[int]
    teacher_length: int  # L: tokens of the whole teacher rollout the prefix was cut from
    teacher_text: str = ""


@dataclass
class GuidanceResult:
    prompts: list = field(default_factory=list)  # ReformulatedPrompt (hint) or PrefixPlan (prefix)
    skipped: list[SkippedReformulation] = field(default_factory=list)

    def metrics(self, prefix: str = "zppo/") -> dict[str, float]:
        values = {f"{kind}_built": sum(p.kind == kind for p in self.prompts) for kind in (HINT, PREFIX)} | {
            "skipped_for_length": sum(s.reason == SKIPPED_FOR_LENGTH for s in self.skipped),
            "no_teacher_candidate": sum(s.reason == NO_TEACHER_CANDIDATE for s in self.skipped),
            "no_hint": sum(s.reason == NO_HINT for s in self.skipped),
        }
        lengths = [len(p.prefix_ids) for p in self.prompts if isinstance(p, PrefixPlan)]
        if lengths:
            values["prefix_tokens_mean"] = sum(lengths) / len(lengths)
            values["prefix_teacher_tokens_mean"] = sum(p.teacher_length for p in self.prompts) / len(lengths)
        return {prefix + key: float(value) for key, value in values.items()}


def hint_content(question_text: str, hint: str, config: GuidanceConfig) -> str:
    """x_Hint's user turn: the question, the ``<hint>`` block, the closer (Algorithm 5 step 14, ours: the layout)."""
    sep = config.section_separator
    return sep.join([question_text, f"{HINT_OPEN}\n{hint}\n{HINT_CLOSE}", config.answer_closer])


def build_hints(
    materials: Sequence[GuidanceMaterial],
    tokens: Tokenization,
    max_prompt_length: int,
    config: GuidanceConfig,
    measure_prompt: Callable[[ReformulatedPrompt], int] | None = None,
) -> GuidanceResult:
    """One hint prompt per X_aug question with a hint (Algorithm 5 steps 9-15); the others are counted."""
    result = GuidanceResult()
    for material in materials:
        if material.teacher_text is None:
            result.skipped.append(SkippedReformulation(material.question_id, HINT, NO_TEACHER_CANDIDATE))
            continue
        if material.hint is None:
            result.skipped.append(SkippedReformulation(material.question_id, HINT, NO_HINT))
            continue
        messages, user_index, content = _user_turn(material.prompt)
        question_text, _ = _question_part(content, config.answer_closer)
        messages[user_index]["content"] = hint_content(question_text, material.hint, config)
        added = tokens.count_text_tokens(f"{config.section_separator}{HINT_OPEN}\n{material.hint}\n{HINT_CLOSE}")
        estimated = material.prompt_length + added
        if estimated > max_prompt_length:
            result.skipped.append(SkippedReformulation(material.question_id, HINT, SKIPPED_FOR_LENGTH, estimated))
            continue
        prompt = ReformulatedPrompt(question_id=material.question_id, kind=HINT, messages=messages,
                                    ground_truth=material.ground_truth, num_candidates=1, estimated_length=estimated)
        if measure_prompt is not None:
            prompt.measured_length = int(measure_prompt(prompt))
            if prompt.measured_length > max_prompt_length:
                result.skipped.append(
                    SkippedReformulation(material.question_id, HINT, SKIPPED_FOR_LENGTH, prompt.measured_length))
                continue
        result.prompts.append(prompt)
    return result


def prefix_length(teacher_length: int, config: GuidanceConfig) -> int:
    """floor(alpha x L) (Algorithm 6 step 13)."""
    return math.floor(config.prefix_fraction * teacher_length)


def build_prefixes(
    materials: Sequence[GuidanceMaterial],
    tokens: Tokenization,
    max_response_length: int,
    config: GuidanceConfig,
) -> GuidanceResult:
    """One prefix plan per X_aug question with a correct teacher rollout (Algorithm 6 steps 9-15).

    The prefix is the first floor(alpha x L) of the rollout's L token ids (the student's tokenizer). One that would
    leave fewer than ``min_continuation_tokens`` of the response, or is empty, is skipped for length (*ours*).
    """
    if tokens.encode is None:
        raise ValueError("build_prefixes needs Tokenization.encode (the student's tokenizer)")
    result = GuidanceResult()
    limit = max_response_length - config.min_continuation_tokens
    for material in materials:
        if material.teacher_text is None:
            result.skipped.append(SkippedReformulation(material.question_id, PREFIX, NO_TEACHER_CANDIDATE))
            continue
        ids = list(tokens.encode(material.teacher_text))
        keep = prefix_length(len(ids), config)
        if keep < 1 or keep > limit:
            result.skipped.append(SkippedReformulation(material.question_id, PREFIX, SKIPPED_FOR_LENGTH, keep))
            continue
        result.prompts.append(PrefixPlan(
            question_id=material.question_id, kind=PREFIX, messages=[dict(m) for m in material.prompt],
            ground_truth=material.ground_truth, prefix_ids=ids[:keep], teacher_length=len(ids),
            teacher_text=material.teacher_text))
    return result

