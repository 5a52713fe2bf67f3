"""BCQ/NCQ prompts (paper Sec. 3.2, Algorithm 1 step 4, Figs 17-18): exact layout, seeded draws, skips, cleaning."""

from __future__ import annotations

import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.algo.reformulation import (
    BCQ,
    BCQ_INSTRUCTION,
    NCQ,
    NO_TEACHER_CANDIDATE,
    NO_WRONG_CANDIDATE,
    SKIPPED_FOR_LENGTH,
    STUDENT,
    TEACHER,
    Candidate,
    CandidateSet,
    ReformulationConfig,
    Tokenization,
    clean_candidate_text,
    reformulate,
)

CHARS = Tokenization(decode=lambda ids: "".join(map(chr, ids)), count_text_tokens=len,
                     encode=lambda text: [ord(c) for c in text])
QUESTION = "What is 2 + 3?"


def question(qid="q1", teacher=("T",), student=("S1", "S2"), answers=None, content=None, prompt_length=30):
    content = content if content is not None else f"{QUESTION}\n\n{ANSWER_CLOSER}"
    return CandidateSet(
        question_id=qid,
        prompt=[{"role": "system", "content": "sys"}, {"role": "user", "content": content}],
        prompt_length=prompt_length,
        ground_truth="5",
        teacher=[Candidate(f"{t} so \\boxed{{5}}", TEACHER, "5") for t in teacher],
        student=[Candidate(f"{s} so \\boxed{{{i + 6}}}", STUDENT, str(i + 6), index=i) for i, s in enumerate(student)],
        wrong_answers=list(answers) if answers is not None else [str(i + 6) for i in range(len(student))],
    )


def build(questions, step=1, max_prompt_length=10_000, **config):
    return reformulate(questions, step=step, tokens=CHARS, max_prompt_length=max_prompt_length,
                       config=ReformulationConfig(**config))


def user_turn(prompt) -> str:
    assert [m["role"] for m in prompt.messages] == ["system", "user"]
    return prompt.messages[1]["content"]


def test_bcq_is_fig17_exactly_with_one_teacher_and_one_student_candidate():
    result = build([question(student=("S1",))])
    (bcq,) = [p for p in result.prompts if p.kind == BCQ]
    first, second = ("T so \\boxed{5}", "S1 so \\boxed{6}")[:: 1 if bcq.correct_position == "A" else -1]
    assert user_turn(bcq) == (
        f"{QUESTION}\n\n{BCQ_INSTRUCTION}\n<candidate>\n{first}\n</candidate>\n<candidate>\n{second}\n</candidate>"
        f"\n\n{ANSWER_CLOSER}"
    )
    assert "Candidate A" not in user_turn(bcq) and sorted(c.source for c in bcq.candidates) == [STUDENT, TEACHER]


def test_ncq_is_fig18_exactly_with_every_wrong_candidate_and_deduplicated_answers():
    q = question(student=("S1", "S2", "S3", "S4", "S5"), answers=["6", "7", "6", "8", " 7 ", "9"])
    (ncq,) = [p for p in build([q]).prompts if p.kind == NCQ]
    blocks = "\n".join(f"<candidate>\n{c.text}\n</candidate>" for c in q.student)
    assert user_turn(ncq) == (
        f"{QUESTION}\n\nThe following answers are all WRONG: \\boxed{{6}}, \\boxed{{7}}, \\boxed{{8}}, \\boxed{{9}}. "
        f"Below are the incorrect reasoning processes in <candidate> </candidate> tags.\n{blocks}\n\n{ANSWER_CLOSER}"
    )
    assert ncq.num_candidates == 5  # no cap on the number of candidates


def test_ncq_lists_answers_of_wrong_rollouts_whose_compression_failed():
    q = question(student=("S1",), answers=["6", "42"])  # rollout 2 (answer 42) was not compressed
    (ncq,) = [p for p in build([q]).prompts if p.kind == NCQ]
    assert "\\boxed{6}, \\boxed{42}." in user_turn(ncq) and user_turn(ncq).count("<candidate>\n") == 1


def test_draws_are_seeded_per_question_and_step_and_both_orders_occur():
    q = question(teacher=("T1", "T2", "T3"), student=("S1", "S2", "S3"))
    once = [user_turn(p) for p in build([q], step=3).prompts]
    assert once == [user_turn(p) for p in build([q], step=3).prompts]
    assert once == [user_turn(p) for p in build([question("other"), q], step=3).prompts][2:]  # batch order
    positions = {build([q], step=s).prompts[0].correct_position for s in range(40)}
    shown = {build([q], step=s).prompts[0].candidates[0].text for s in range(40)}
    assert positions == {"A", "B"} and len(shown) >= 4


def test_no_teacher_candidate_gives_ncq_only_and_no_student_candidate_gives_nothing():
    result = build([question("a", teacher=()), question("b", student=(), answers=["6"])])
    assert [(p.question_id, p.kind) for p in result.prompts] == [("a", NCQ)]
    assert result.count(BCQ, NO_TEACHER_CANDIDATE) == 1 and result.count(None, NO_WRONG_CANDIDATE) == 1
    metrics = result.metrics()
    assert metrics["zppo/bcq_built"] == 0 and metrics["zppo/ncq_built"] == 1
    assert metrics["zppo/teacher_solvable_frac"] == 0.5


def test_build_switches():
    assert {p.kind for p in build([question()], build_bcq=False).prompts} == {NCQ}
    assert {p.kind for p in build([question()], build_ncq=False).prompts} == {BCQ}


def test_prompts_over_the_budget_are_skipped_never_cut():
    long = question(student=("x" * 500,))
    result = build([long], max_prompt_length=300)
    assert result.prompts == [] and result.count(reason=SKIPPED_FOR_LENGTH) == 2
    kept = build([long], max_prompt_length=10_000).prompts
    assert all("x" * 500 in user_turn(p) for p in kept)


def test_estimate_is_the_original_length_plus_the_added_text():
    (bcq, ncq) = build([question(student=("S1",))]).prompts
    for prompt in (bcq, ncq):
        added = len(user_turn(prompt)) - len(f"{QUESTION}\n\n{ANSWER_CLOSER}")
        assert prompt.estimated_length == 30 + added


def test_measure_prompt_is_the_final_check():
    result = reformulate([question()], step=1, tokens=CHARS, max_prompt_length=100,
                         measure_prompt=lambda p: 50 if p.kind == BCQ else 150)
    assert [p.kind for p in result.prompts] == [BCQ] and result.prompts[0].measured_length == 50
    assert result.count(NCQ, SKIPPED_FOR_LENGTH) == 1


def test_candidates_are_cleaned_and_media_placeholders_kept_from_the_question():
    q = question(student=("<|im_end|>S1<image> <think>r</think>",), content=f"<image>{QUESTION}\n\n{ANSWER_CLOSER}")
    for prompt in build([q]).prompts:
        text = user_turn(prompt)
        assert text.count("<image>") == 1 and text.startswith("<image>") and "<|im_end|>" not in text
        assert all("<think>" not in c.split("</candidate>")[0] for c in text.split("<candidate>\n")[1:])


def test_listed_wrong_answers_are_cleaned_too():
    # A garbled student answer (seen in a CPU run: "\\boxed{{{14}<|im_end|>") must not end the user turn early nor
    # add an image; one that is nothing but control tokens is left out of the list.
    q = question(student=("S1",), answers=["{14}<|im_end|>", "<image>7", "<|endoftext|>", "6"],
                 content=f"<image>{QUESTION}\n\n{ANSWER_CLOSER}")
    (ncq,) = [p for p in build([q]).prompts if p.kind == NCQ]
    assert "WRONG: \\boxed{{14}}, \\boxed{7}, \\boxed{6}. Below" in user_turn(ncq)
    assert user_turn(ncq).count("<image>") == 1 and "<|" not in user_turn(ncq)


def test_a_question_without_the_closer_gets_it_appended():
    (ncq,) = [p for p in build([question(content=QUESTION)]).prompts if p.kind == NCQ]
    assert user_turn(ncq).startswith(f"{QUESTION}\n\nThe following") and user_turn(ncq).endswith(ANSWER_CLOSER)


@pytest.mark.parametrize("text", ["a<|im_<think>start|>b", "<|im_start|>x", "<image><video>y"])
def test_clean_candidate_text_leaves_no_control_token(text):
    from recipe.zppo.algo.reformulation import _CONTROL_TOKENS

    assert not _CONTROL_TOKENS.search(clean_candidate_text(text))


def test_config_checks():
    with pytest.raises(ValueError, match="answers"):
        ReformulationConfig(ncq_instruction="no list here")
    with pytest.raises(ValueError, match="control tokens"):
        ReformulationConfig(bcq_instruction="<|im_end|>")
