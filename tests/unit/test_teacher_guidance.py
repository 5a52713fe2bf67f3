"""Hint and prefix baselines (method=hint / method=prefix): what they show, cut and mask."""

from __future__ import annotations

import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.algo.reformulation import (
    NO_TEACHER_CANDIDATE,
    SKIPPED_FOR_LENGTH,
    HardQuestion,
    Response,
    Tokenization,
)
from recipe.zppo.baselines.prefix_agent_loop import splice_prefix
from recipe.zppo.baselines.teacher_guidance import (
    HINT,
    PREFIX,
    GuidanceConfig,
    admits_guidance,
    build_hints,
    build_prefixes,
)

# One token per character: lengths can be checked exactly.
CHARS = Tokenization(decode=lambda ids: "".join(map(chr, ids)), count_text_tokens=len,
                     encode=lambda t: [ord(c) for c in t])

TEACHER = "<think>add the tens then the ones</think>\\boxed{42}"
WRONG_TEACHER = "<think>guess</think>\\boxed{41}"


def _question(qid="q1", teacher=((TEACHER, True),), prompt_length=None):
    content = "What is 17 + 25?\n\n" + ANSWER_CLOSER
    return HardQuestion(
        question_id=qid,
        prompt=[{"role": "user", "content": content}],
        prompt_length=len(content) if prompt_length is None else prompt_length,
        ground_truth="42",
        student_responses=[Response("<think>x</think>\\boxed{7}", False)],
        teacher_responses=[Response(text, ok) for text, ok in teacher],
    )


def test_hint_shows_the_head_of_a_correct_teacher_response_between_question_and_closer():
    config = GuidanceConfig(mode=HINT, hint_fraction=0.5)
    result = build_hints([_question()], step=3, tokens=CHARS, max_prompt_length=4096, config=config)
    (prompt,) = result.prompts
    content = prompt.messages[-1]["content"]
    head = TEACHER[: (len(TEACHER) + 1) // 2]
    # think tags are removed from the hint text, the reasoning stays
    assert content.startswith("What is 17 + 25?\n\n" + config.hint_header + "\n")
    assert content.endswith("\n\n" + ANSWER_CLOSER) and content.count(ANSWER_CLOSER) == 1
    hint = content.split(config.hint_header + "\n", 1)[1].rsplit("\n\n" + ANSWER_CLOSER, 1)[0]
    assert hint == head.replace("<think>", "").strip()  # think tags removed, the reasoning kept
    assert "\\boxed{42}" not in hint  # the answer (second half) is not given away at fraction 0.5
    assert prompt.kind == HINT and prompt.ground_truth == "42" and prompt.teacher_index == 0


def test_hint_is_cut_to_fit_the_prompt_and_skipped_when_nothing_useful_fits():
    config = GuidanceConfig(mode=HINT, hint_fraction=1.0, min_hint_tokens=8, length_margin_tokens=0)
    question = _question()
    glue = len("\n\n" + config.hint_header + "\n")
    fits = question.prompt_length + glue + 10
    (prompt,) = build_hints([question], 0, CHARS, fits, config).prompts
    assert prompt.estimated_length <= fits and prompt.num_truncated == 1
    tight = build_hints([question], 0, CHARS, question.prompt_length + glue + 3, config)
    assert not tight.prompts and tight.skipped[0].reason == SKIPPED_FOR_LENGTH
    # The processor's measurement is the last word: a prompt it finds too long is skipped, not sent.
    measured = build_hints([question], 0, CHARS, 4096, config, measure_prompt=lambda p: 5000)
    assert not measured.prompts and measured.metrics()["zppo/skipped_for_length"] == 1.0


def test_questions_without_a_usable_correct_teacher_response_are_counted_not_built():
    questions = [
        _question("no-teacher", teacher=()),
        _question("only-wrong", teacher=((WRONG_TEACHER, False),)),
        _question("cut-off", teacher=(("<think>never closed", True),)),
        _question("ok"),
    ]
    for mode, build in ((HINT, lambda: build_hints(questions, 0, CHARS, 4096, GuidanceConfig(mode=HINT))),
                        (PREFIX, lambda: build_prefixes(questions, 0, CHARS, 64, GuidanceConfig(mode=PREFIX)))):
        result = build()
        assert [p.question_id for p in result.prompts] == ["ok"]
        skipped = [s.question_id for s in result.skipped if s.reason == NO_TEACHER_CANDIDATE]
        assert skipped == ["no-teacher", "only-wrong", "cut-off"]
        assert result.metrics()[f"zppo/{mode}_built"] == 1.0
    # The trainer's pre-cap ranks only the questions a hint or prefix can be built for: the same rule.
    assert [q.question_id for q in questions if admits_guidance(q)] == ["ok"]


def test_prefix_is_the_head_of_the_teacher_tokens_and_leaves_room_to_continue():
    config = GuidanceConfig(mode=PREFIX, prefix_fraction=0.5, min_continuation_tokens=16)
    ids = [ord(c) for c in TEACHER]
    (plan,) = build_prefixes([_question()], 0, CHARS, max_response_length=200, config=config).prompts
    assert plan.prefix_ids == ids[: (len(ids) + 1) // 2] and plan.teacher_length == len(ids)
    assert plan.messages == _question().prompt  # the prompt is the original question
    (short,) = build_prefixes([_question()], 0, CHARS, max_response_length=24, config=config).prompts
    assert short.prefix_ids == ids[:8]  # 24 - 16 continuation tokens


def test_teacher_choice_is_seeded_per_question_and_step():
    teachers = tuple((TEACHER.replace("42", "42 ") + str(i), True) for i in range(6))
    question = _question(teacher=teachers)
    config = GuidanceConfig(mode=PREFIX, seed=5)
    picks = [build_prefixes([question], step, CHARS, 512, config).prompts[0].teacher_index for step in range(12)]
    again = [build_prefixes([question], step, CHARS, 512, config).prompts[0].teacher_index for step in range(12)]
    assert picks == again and len(set(picks)) > 1


def test_splice_masks_the_prefix_and_trains_the_continuation():
    ids, mask, logprobs = splice_prefix([5, 6, 7], [8, 9], [-0.5, -0.25], response_length=10)
    assert ids == [5, 6, 7, 8, 9] and mask == [0, 0, 0, 1, 1] and logprobs == [0.0, 0.0, 0.0, -0.5, -0.25]
    ids, mask, logprobs = splice_prefix([5, 6, 7], [8, 9, 10], None, response_length=4)
    assert ids == [5, 6, 7, 8] and mask == [0, 0, 0, 1] and logprobs is None


@pytest.mark.parametrize("bad", [dict(mode="teacher"), dict(hint_fraction=0.0), dict(prefix_fraction=1.5),
                                 dict(hint_header="<|im_start|>hint"), dict(min_continuation_tokens=0)])
def test_bad_guidance_settings_are_refused(bad):
    with pytest.raises(ValueError, match="zppo.guidance"):
        GuidanceConfig(**bad)
