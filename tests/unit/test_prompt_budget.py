"""The BCQ/NCQ prompt budget (recipe/zppo/algo/prompt_budget.py): by hand on short templates, and as a bound on
real prompts built by the reformulation builder and counted by a real (byte-level BPE) tokenizer."""

from __future__ import annotations

import random

from recipe.zppo.algo.prompt_budget import reformulated_prompt_budget, text_tokens_at_most
from recipe.zppo.algo.reformulation import (
    BCQ,
    NCQ,
    STUDENT,
    TEACHER,
    Candidate,
    CandidateSet,
    ReformulationConfig,
    Tokenization,
    reformulate,
)


def test_budget_by_hand_on_short_templates():
    config = ReformulationConfig(bcq_instruction="B", ncq_instruction="N {answers}.", answer_closer="C")
    # A block is "<candidate>\n" + text + "\n</candidate>" (25 bytes of tags) and the "\n" joining it to the next.
    # BCQ glue: "\n\n" + "B" + "\n" + (blocks) + "\n\n" (the closer is already in the plain prompt) = 6.
    # NCQ glue: "\n\n" + "N ." + "\n" + (blocks) + "\n\n" = 8.
    budget = reformulated_prompt_budget(100, group_size=4, teacher_candidate_tokens=30, student_candidate_tokens=20,
                                        wrong_answer_tokens=5, config=config)
    assert budget.plain == 100
    assert budget.bcq == 100 + 6 + 2 * 26 + 30 + 20
    assert budget.ncq == 100 + 8 + 4 * (26 + 20 + 5)
    assert budget.total == budget.ncq
    # A kind that is off adds nothing; with neither, the plain budget is the total.
    assert reformulated_prompt_budget(100, 4, 30, 20, 5, ReformulationConfig(build_ncq=False)).ncq == 0
    off = ReformulationConfig(build_bcq=False, build_ncq=False)
    assert reformulated_prompt_budget(100, 4, 30, 20, 5, off).total == 100


def test_paper_sizes():
    # Tab. 8: plain 4,096, G_S 8, compression cap 512; the NCQ with 8 candidates is the longest, about 9K tokens,
    # far inside the policy's 262K context.
    budget = reformulated_prompt_budget(4096, 8, 512, 512, 64, ReformulationConfig())
    assert 4096 + 8 * (512 + 64) < budget.total == budget.ncq < 4096 + 8 * (512 + 64) + 8 * 26 + 200
    assert budget.bcq < budget.ncq


def test_bytes_bound_tokens_of_any_text(tiny_text_model):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_text_model)
    for text in ("plain ascii words", "é∑ 漢字 \\boxed{x^2}", "\n\n<candidate>\n\n</candidate>\n", ""):
        assert len(tokenizer.encode(text, add_special_tokens=False)) <= text_tokens_at_most(text)


def _text_of_at_most(tokenizer, rng: random.Random, tokens: int, answer: str) -> str:
    """A random text (mixed scripts) ending in \\boxed{answer}, at most ``tokens`` tokens as a candidate."""
    words = ["step", "x", "=", "∑", "é", "42", "漢", "so", "(", ")", "\\frac{1}{2}", "\n"]
    ending = f" \\boxed{{{answer}}}"
    text = " ".join(rng.choice(words) for _ in range(3 * tokens))
    while len(tokenizer.encode(text + ending, add_special_tokens=False)) > tokens:
        text = text[: max(len(text) - 4, 0)]
    return text + ending


def test_budget_bounds_real_prompts_at_the_caps(tiny_text_model):
    # Worst cases at the caps: candidates of (nearly) cap tokens, G_S wrong rollouts with distinct answers of the
    # allowance, and the plain prompt's own length as the plain budget. The processor's length of every prompt built
    # is within the budget.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tiny_text_model)
    rng = random.Random(0)
    group_size, cap, answer_allowance = 8, 48, 16
    config = ReformulationConfig()
    boxed_glue = len(tokenizer.encode("\\boxed{}, ", add_special_tokens=False))
    for trial in range(5):
        question = " ".join(rng.choice(["What", "is", "7", "x", "∑", "é"]) for _ in range(20 + 10 * trial))
        messages = [{"role": "user", "content": f"{question}\n\n{config.answer_closer}"}]

        def length(msgs):
            return len(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True,
                                                     return_dict=False))

        plain = length(messages)
        answers = []
        for i in range(group_size):  # distinct answers of about the allowance
            answer = f"{i}" + "7" * (4 * answer_allowance)
            while len(tokenizer.encode(answer, add_special_tokens=False)) + boxed_glue > answer_allowance:
                answer = answer[:-1]
            answers.append(answer)
        student = [Candidate(_text_of_at_most(tokenizer, rng, cap, a), STUDENT, a, i) for i, a in enumerate(answers)]
        teacher = [Candidate(_text_of_at_most(tokenizer, rng, cap, "1"), TEACHER, "1")]
        question_set = CandidateSet("q", messages, plain, "1", teacher, student, answers)
        tokens = Tokenization.for_tokenizer(tokenizer)
        result = reformulate([question_set], step=trial, tokens=tokens, max_prompt_length=10**9, config=config,
                             measure_prompt=lambda p: length(p.messages))
        budget = reformulated_prompt_budget(plain, group_size, cap, cap, answer_allowance, config)
        measured = {p.kind: p.measured_length for p in result.prompts}
        assert set(measured) == {BCQ, NCQ}
        assert measured[BCQ] <= budget.bcq and measured[NCQ] <= budget.ncq, (measured, budget)
        # ... and not by a wide margin: the bound is for sizing a rollout, not a guess.
        assert budget.ncq - measured[NCQ] < 8 * 26 + 200
