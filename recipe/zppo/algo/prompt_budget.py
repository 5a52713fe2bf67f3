"""How long a BCQ/NCQ prompt can get, from the config alone (Tab. 8, App. D.1).

Tab. 8: "Max prompt length 4,096 tokens (plain rollouts only; BCQ/NCQ rollouts are bounded only by the policy's
262K context window)". A reformulated prompt is its plain prompt (at most ``data.max_prompt_length``) plus the
Fig. 17/18 instruction, the candidate blocks and, for NCQ, the list of wrong answers. Compression (Fig. 16) bounds
each candidate, so the rollout's prompt budget for BCQ/NCQ prompts can be derived before anything runs:

    plain + max(BCQ: instruction + 2 x (block tags + candidate),
                NCQ: instruction + G_S x (block tags + candidate + one listed answer))

Text parts are counted as their UTF-8 bytes: with a byte-level BPE (Qwen's) or a byte-fallback tokenizer every
token covers at least one byte, so the count is an upper bound that needs no tokenizer (the driver derives it before
any model is loaded). The listed answers are the students' parsed final answers, whose length nothing bounds: each is
given ``wrong_answer_tokens`` (ours). A prompt that still does not fit is skipped and counted by the builder, never
cut (``reformulation.reformulate``).
"""

from __future__ import annotations

from dataclasses import dataclass

from .reformulation import STUDENT, Candidate, ReformulationConfig, bcq_content, candidate_blocks, ncq_content


def text_tokens_at_most(text: str) -> int:
    """An upper bound on the tokens of ``text`` for byte-level (or byte-fallback) tokenizers: its UTF-8 bytes."""
    return len(text.encode("utf-8"))


@dataclass(frozen=True)
class PromptBudget:
    """The longest prompt each kind can make, in tokens (an upper bound)."""

    plain: int
    bcq: int  # 0 when BCQ is off
    ncq: int  # 0 when NCQ is off

    @property
    def total(self) -> int:
        """What the rollout must accept: the longest of the plain, BCQ and NCQ prompts."""
        return max(self.plain, self.bcq, self.ncq)


def reformulated_prompt_budget(plain_tokens: int, group_size: int, teacher_candidate_tokens: int,
                               student_candidate_tokens: int, wrong_answer_tokens: int,
                               config: ReformulationConfig) -> PromptBudget:
    """The budget of plain, BCQ and NCQ prompts. ``group_size``: G_S (NCQ shows every wrong rollout of a group, so
    up to G_S candidates and G_S listed answers); the candidate sizes: compression's token cap (or, compression off,
    the raw responses' caps). The glue is measured on the templates themselves (``bcq_content``, ``ncq_content``)
    with empty parts, so it follows the strings in use; the closer is left out (the plain prompt already has it)."""
    closer = text_tokens_at_most(config.answer_closer)
    block = text_tokens_at_most(candidate_blocks([Candidate("", STUDENT, "")])) + 1  # + the "\n" joining blocks
    bcq = ncq = 0
    if config.build_bcq:
        glue = text_tokens_at_most(bcq_content("", [], config)) - closer
        bcq = plain_tokens + glue + 2 * block + teacher_candidate_tokens + student_candidate_tokens
    if config.build_ncq:
        glue = text_tokens_at_most(ncq_content("", [], [], config)) - closer
        ncq = plain_tokens + glue + group_size * (block + student_candidate_tokens + wrong_answer_tokens)
    return PromptBudget(plain=plain_tokens, bcq=bcq, ncq=ncq)
