"""The paper's two teacher-guided baselines (App. D.2), built from the same hard questions as BCQ/NCQ (pure: no
Ray, no GPU).

Both work on the same hard questions as BCQ/NCQ, within the same cap (App. D.2: "on the rho_aug-capped hard
questions"): the trainer keeps the round(rho_aug x |X_new|) hardest ones that ``admits_guidance`` (``algo.caps``).

- **Hint** (``method=hint``): the question, then the first part of a correct teacher response as a hint, then the
  answer closer. The student rolls out on the hinted prompt: every trained token is its own, sampled from the
  current policy given that prompt (on-policy with respect to the hinted prompt).
- **Prefix** (``method=prefix``, the paper's GRPO+Prefix): the first part of a correct teacher response is placed
  at the START of the student's response and the student continues it. The prefix tokens are the teacher's, not
  the policy's samples: they are **masked** out of the loss (``response_mask`` 0, so no ratio, no clip, no
  gradient, no entropy), and serve only as context for the student's continuation, which is trained on-policy
  with the group's advantage. The reward scores the whole response (prefix + continuation). See
  ``recipe/zppo/prefix_agent_loop.py`` for where the mask is set.

Both need a usable correct teacher response (non-empty, with a final answer): the trainer's pre-cap passes over a
hard question without one (``zppo/aug_inadmissible``), and a builder given one skips and counts it
(``no_teacher_candidate``). Which teacher response is used is drawn with a seeded RNG from
(seed, step, question id), as for BCQ. Lengths are counted in the student's tokens: a hint is cut so that the
prompt fits ``max_prompt_length`` (the processor's final check is exact), a prefix so that at least
``min_continuation_tokens`` of the response remain for the student.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ..algo.answer_format import ANSWER_CLOSER
from ..algo.reformulation import (
    _CONTROL_TOKENS,
    NO_TEACHER_CANDIDATE,
    NO_WRONG_CANDIDATE,
    SKIPPED_FOR_LENGTH,
    HardQuestion,
    ReformulatedPrompt,
    SkippedReformulation,
    Tokenization,
    _question_part,
    _question_rng,
    _user_turn,
    clean_candidate_text,
    has_final_answer_default,
)

HINT = "hint"
PREFIX = "prefix"
GUIDANCE_MODES = ("none", HINT, PREFIX)
_PURPOSE_HINT, _PURPOSE_PREFIX = 2, 3  # RNG streams distinct from BCQ (0) and NCQ (1)


@dataclass  # not frozen: it is also a Hydra structured config node (config/schema.py)
class GuidanceConfig:
    """``zppo.guidance.*`` (defaults and checks here; composed by config/schema.py)."""

    mode: str = "none"
    # Share of the teacher response's tokens shown (hint) or placed at the start of the response (prefix).
    hint_fraction: float = 0.5
    prefix_fraction: float = 0.5
    hint_header: str = "Hint: a correct solution begins like this (finish it on your own):"
    section_separator: str = "\n\n"
    answer_closer: str = ANSWER_CLOSER
    # A hint cut below this many tokens to fit the prompt is useless: the prompt is skipped for length.
    min_hint_tokens: int = 8
    # A prefix leaves at least this many response tokens for the student's own continuation.
    min_continuation_tokens: int = 16
    # Slack for tokenizers merging at the joins (hint only; the processor's final check is exact).
    length_margin_tokens: int = 8
    seed: int = 0

    def __post_init__(self):
        if self.mode not in GUIDANCE_MODES:
            raise ValueError(f"zppo.guidance.mode={self.mode!r}: expected one of {GUIDANCE_MODES}")
        for name in ("hint_fraction", "prefix_fraction"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ValueError(f"zppo.guidance.{name}={value} must be in (0, 1]")
        if _CONTROL_TOKENS.search(self.hint_header):
            raise ValueError("zppo.guidance.hint_header must not contain control tokens or media placeholders")
        if self.min_hint_tokens < 1 or self.min_continuation_tokens < 1 or self.length_margin_tokens < 0:
            raise ValueError("zppo.guidance: min_hint_tokens and min_continuation_tokens must be >= 1")


@dataclass
class PrefixPlan:
    """A prefix prompt: the original messages, and the teacher tokens the response starts with."""

    question_id: object
    kind: str
    messages: list[dict]
    ground_truth: object
    prefix_ids: list[int]
    teacher_index: int
    teacher_length: int  # tokens of the whole teacher response the prefix was cut from


@dataclass
class GuidanceResult:
    prompts: list = field(default_factory=list)  # ReformulatedPrompt (hint) or PrefixPlan (prefix)
    skipped: list[SkippedReformulation] = field(default_factory=list)

    def metrics(self, prefix: str = "zppo/") -> dict[str, float]:
        kind_counts = {kind: sum(p.kind == kind for p in self.prompts) for kind in (HINT, PREFIX)}
        values = {
            f"{kind}_built": count for kind, count in kind_counts.items()
        } | {
            "skipped_for_length": sum(s.reason == SKIPPED_FOR_LENGTH for s in self.skipped),
            "no_teacher_candidate": sum(s.reason == NO_TEACHER_CANDIDATE for s in self.skipped),
            "no_wrong_candidate": sum(s.reason == NO_WRONG_CANDIDATE for s in self.skipped),
        }
        lengths = [len(p.prefix_ids) for p in self.prompts if isinstance(p, PrefixPlan)]
        if lengths:
            values["prefix_tokens_mean"] = sum(lengths) / len(lengths)
        return {prefix + key: float(value) for key, value in values.items()}


def _usable_teacher(question: HardQuestion, has_final_answer: Callable[[str], bool]) -> list[int]:
    return [
        i
        for i, r in enumerate(question.teacher_responses)
        if r.correct and (r.text or "").strip() and has_final_answer(r.text)
    ]


def admits_guidance(question: HardQuestion, has_final_answer: Callable[[str], bool] = has_final_answer_default) -> bool:
    """Whether a hint or a prefix can be built for ``question``: it has a usable correct teacher response (what the
    pre-cap ranks, as for BCQ/NCQ: a question that can give nothing takes no slot)."""
    return bool(_usable_teacher(question, has_final_answer))


def _token_ids(response, tokens: Tokenization) -> list[int]:
    if response.token_ids is not None:
        return list(response.token_ids)
    if tokens.encode is None:
        raise ValueError("teacher responses without token_ids need Tokenization.encode")
    return list(tokens.encode(response.text))


def _hint_content(question_text: str, hint: str, config: GuidanceConfig) -> str:
    sep = config.section_separator
    return sep.join([question_text, f"{config.hint_header}\n{hint}", config.answer_closer])


def build_hints(
    questions: Sequence[HardQuestion],
    step: int,
    tokens: Tokenization,
    max_prompt_length: int,
    config: GuidanceConfig,
    has_final_answer: Callable[[str], bool] = has_final_answer_default,
    measure_prompt: Callable[[ReformulatedPrompt], int] | None = None,
) -> GuidanceResult:
    """One hint prompt per hard question with a usable correct teacher response."""
    result = GuidanceResult()
    for question in questions:
        usable = _usable_teacher(question, has_final_answer)
        if not usable:
            result.skipped.append(SkippedReformulation(question.question_id, HINT, NO_TEACHER_CANDIDATE))
            continue
        rng = _question_rng(config.seed, step, question.question_id, purpose=_PURPOSE_HINT)
        index = usable[int(rng.integers(len(usable)))]
        ids = _token_ids(question.teacher_responses[index], tokens)
        wanted = max(1, math.ceil(config.hint_fraction * len(ids)))

        messages, user_index, content = _user_turn(question.prompt)
        question_text, had_closer = _question_part(content, config.answer_closer)
        glue = _hint_content("", "", config)
        already = config.section_separator + config.answer_closer if had_closer else ""
        glue_tokens = tokens.count_text_tokens(glue[: len(glue) - len(already)] if already else glue)
        budget = max_prompt_length - config.length_margin_tokens - question.prompt_length - glue_tokens
        keep = min(wanted, budget)
        if keep < min(config.min_hint_tokens, wanted):
            result.skipped.append(
                SkippedReformulation(
                    question.question_id, HINT, SKIPPED_FOR_LENGTH, question.prompt_length + glue_tokens + wanted
                )
            )
            continue
        hint = clean_candidate_text(tokens.decode(ids[:keep]))
        messages[user_index]["content"] = _hint_content(question_text, hint, config)
        result.prompts.append(
            ReformulatedPrompt(
                question_id=question.question_id,
                kind=HINT,
                messages=messages,
                ground_truth=question.ground_truth,
                num_candidates=1,
                num_truncated=int(keep < len(ids)),
                estimated_length=question.prompt_length + glue_tokens + keep,
                teacher_index=index,
            )
        )
    if measure_prompt is not None:
        kept = []
        for prompt in result.prompts:
            prompt.measured_length = int(measure_prompt(prompt))
            if prompt.measured_length > max_prompt_length:
                result.skipped.append(
                    SkippedReformulation(prompt.question_id, HINT, SKIPPED_FOR_LENGTH, prompt.measured_length)
                )
            else:
                kept.append(prompt)
        result.prompts = kept
    return result


def build_prefixes(
    questions: Sequence[HardQuestion],
    step: int,
    tokens: Tokenization,
    max_response_length: int,
    config: GuidanceConfig,
    has_final_answer: Callable[[str], bool] = has_final_answer_default,
) -> GuidanceResult:
    """One prefix plan per hard question with a usable correct teacher response.

    The prefix is the head of the teacher response's token ids (the student's tokenizer), at most
    ``max_response_length - min_continuation_tokens`` tokens, so the student always continues it.
    """
    result = GuidanceResult()
    limit = max_response_length - config.min_continuation_tokens
    for question in questions:
        usable = _usable_teacher(question, has_final_answer)
        if not usable:
            result.skipped.append(SkippedReformulation(question.question_id, PREFIX, NO_TEACHER_CANDIDATE))
            continue
        if limit < 1:
            result.skipped.append(
                SkippedReformulation(question.question_id, PREFIX, SKIPPED_FOR_LENGTH, max_response_length)
            )
            continue
        rng = _question_rng(config.seed, step, question.question_id, purpose=_PURPOSE_PREFIX)
        index = usable[int(rng.integers(len(usable)))]
        ids = _token_ids(question.teacher_responses[index], tokens)
        keep = min(max(1, math.ceil(config.prefix_fraction * len(ids))), limit)
        result.prompts.append(
            PrefixPlan(
                question_id=question.question_id,
                kind=PREFIX,
                messages=[dict(m) for m in question.prompt],
                ground_truth=question.ground_truth,
                prefix_ids=ids[:keep],
                teacher_index=index,
                teacher_length=len(ids),
            )
        )
    return result
