"""Hint and Prefix baselines (method=hint / method=prefix; App. D.2, Algorithms 5-6): the Fig. 19 request, the hint's
sanitizing and place in the prompt, the 40% prefix and its mask, and the teacher work that feeds them (fresh
rollouts, one correct one drawn, the hint request) against a scripted teacher."""

from __future__ import annotations

import math
import re
import threading
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from recipe.zppo.algo.answer_format import ANSWER_CLOSER, extract_boxed, extract_final_answer
from recipe.zppo.algo.reformulation import NO_TEACHER_CANDIDATE, SKIPPED_FOR_LENGTH, Tokenization
from recipe.zppo.baselines.prefix_agent_loop import splice_prefix
from recipe.zppo.baselines.teacher_guidance import (
    HINT,
    HINT_EMPTY,
    HINT_OK,
    HINT_PROMPT,
    NO_HINT,
    PREFIX,
    GuidanceConfig,
    GuidanceMaterial,
    build_hints,
    build_prefixes,
    hint_messages,
    sanitize_hint,
)
from recipe.zppo.teacher.candidates import TeacherConfig, TeacherWork
from recipe.zppo.teacher.client import Completion, Reply

# One token per character: lengths can be checked exactly.
CHARS = Tokenization(decode=lambda ids: "".join(map(chr, ids)), count_text_tokens=len,
                     encode=lambda t: [ord(c) for c in t])

QUESTION = "What is 17 + 25?"
TEACHER = "<think>add the tens then the ones</think>\\boxed{42}"


def _material(qid="q1", teacher_text=TEACHER, hint="add the tens first", prompt_length=None):
    content = QUESTION + "\n\n" + ANSWER_CLOSER
    return GuidanceMaterial(question_id=qid, prompt=[{"role": "user", "content": content}],
                            prompt_length=len(content) if prompt_length is None else prompt_length,
                            ground_truth="42", teacher_text=teacher_text, hint=hint)


def test_fig_19_prompt_is_verbatim_around_the_correct_teacher_rollout():
    (message,) = hint_messages(TEACHER)
    assert message["role"] == "user"
    assert message["content"] == (
        "Read the solved response below and write a concise hint that helps solve the original question. Do NOT "
        "reveal the final answer, do NOT include any \\boxed{} expression, and do NOT copy the full solution. Keep "
        "only high-level guidance or the key intermediate idea.\n<response>\nadd the tens then the ones\n"
        "\\boxed{42}\n</response>")  # think tags become line breaks (as for compression), the reasoning stays
    assert HINT_PROMPT.count("{response}") == 1


@pytest.mark.parametrize("output, text, reason, boxes", [
    ("Add the tens first, then the ones.", "Add the tens first, then the ones.", HINT_OK, 0),
    # A teacher that boxes anyway: every box is stripped, content included (ours), and counted.
    ("Add tens: \\boxed{30}, then ones \\boxed{\\frac{1}{2}} done", "Add tens: , then ones  done", HINT_OK, 2),
    ("<think>the answer is 42</think>Pair the tens.", "Pair the tens.", HINT_OK, 0),  # the thinking is dropped
    ("<hint>Pair the tens.</hint><|im_end|>", "Pair the tens.", HINT_OK, 0),  # no nested hint tags, no control
    ("\\boxed{42}", None, HINT_EMPTY, 1),  # nothing left: refused
    ("  ", None, HINT_EMPTY, 0),
    ("Start with \\boxed{4", "Start with", HINT_OK, 1),  # an unclosed box is cut to the end
])
def test_hints_are_sanitized_of_boxed_answers(output, text, reason, boxes):
    outcome = sanitize_hint(output)
    assert (outcome.text, outcome.reason, outcome.boxes_stripped) == (text, reason, boxes)
    if outcome.text is not None:
        assert "\\boxed" not in outcome.text and extract_boxed(outcome.text) is None


def test_hint_goes_inside_hint_tags_after_the_question_and_before_the_closer():
    config = GuidanceConfig(mode=HINT)
    result = build_hints([_material()], tokens=CHARS, max_prompt_length=4096, config=config)
    (prompt,) = result.prompts
    assert prompt.messages[-1]["content"] == (
        f"{QUESTION}\n\n<hint>\nadd the tens first\n</hint>\n\n{ANSWER_CLOSER}")
    assert prompt.kind == HINT and prompt.ground_truth == "42" and prompt.question_id == "q1"
    assert result.metrics()["zppo/hint_built"] == 1.0


def test_no_hint_group_without_a_correct_teacher_rollout_or_a_usable_hint():
    materials = [_material("teacher-failed", teacher_text=None, hint=None), _material("hint-refused", hint=None),
                 _material("ok")]
    result = build_hints(materials, CHARS, 4096, GuidanceConfig(mode=HINT))
    assert [p.question_id for p in result.prompts] == ["ok"]
    assert [(s.question_id, s.reason) for s in result.skipped] == [("teacher-failed", NO_TEACHER_CANDIDATE),
                                                                    ("hint-refused", NO_HINT)]
    metrics = result.metrics()
    assert metrics["zppo/no_teacher_candidate"] == 1.0 and metrics["zppo/no_hint"] == 1.0


def test_a_hint_prompt_over_the_budget_is_skipped_never_cut():
    material = _material()
    block = len("\n\n<hint>\nadd the tens first\n</hint>")
    fits = material.prompt_length + block
    (prompt,) = build_hints([material], CHARS, fits, GuidanceConfig(mode=HINT)).prompts
    assert prompt.estimated_length == fits == len(prompt.messages[-1]["content"])
    tight = build_hints([material], CHARS, fits - 1, GuidanceConfig(mode=HINT))
    assert not tight.prompts and tight.skipped[0].reason == SKIPPED_FOR_LENGTH
    # The processor's measurement is the last word.
    measured = build_hints([material], CHARS, 4096, GuidanceConfig(mode=HINT), measure_prompt=lambda p: 5000)
    assert not measured.prompts and measured.metrics()["zppo/skipped_for_length"] == 1.0


@pytest.mark.parametrize("length", [1, 2, 3, 10, 51, 52])
def test_prefix_is_the_first_40_percent_of_the_teacher_rollouts_tokens(length):
    text = "".join(chr(65 + i % 26) for i in range(length))
    result = build_prefixes([_material(teacher_text=text)], CHARS, max_response_length=200,
                            config=GuidanceConfig(mode=PREFIX))
    keep = math.floor(0.4 * length)  # Algorithm 6 step 13: p = (t_1, ..., t_floor(alpha L))
    if keep == 0:  # nothing to force: no prefix group
        assert not result.prompts and result.skipped[0].reason == SKIPPED_FOR_LENGTH
        return
    (plan,) = result.prompts
    assert plan.prefix_ids == [ord(c) for c in text[:keep]] and plan.teacher_length == length
    assert plan.messages == _material().prompt  # the prompt is the original question
    assert result.metrics()["zppo/prefix_tokens_mean"] == keep


def test_prefix_leaves_room_for_the_continuation_and_needs_a_correct_rollout():
    config = GuidanceConfig(mode=PREFIX, min_continuation_tokens=16)
    materials = [_material("long", teacher_text="x" * 100), _material("none", teacher_text=None),
                 _material("ok", teacher_text="y" * 20)]
    result = build_prefixes(materials, CHARS, max_response_length=50, config=config)  # 40 > 50 - 16 = 34
    assert [p.question_id for p in result.prompts] == ["ok"] and len(result.prompts[0].prefix_ids) == 8
    assert [(s.question_id, s.reason) for s in result.skipped] == [("long", SKIPPED_FOR_LENGTH),
                                                                    ("none", NO_TEACHER_CANDIDATE)]


def test_splice_masks_the_prefix_and_trains_the_continuation():
    ids, mask, logprobs = splice_prefix([5, 6, 7], [8, 9], [-0.5, -0.25], response_length=10)
    assert ids == [5, 6, 7, 8, 9] and mask == [0, 0, 0, 1, 1] and logprobs == [0.0, 0.0, 0.0, -0.5, -0.25]
    ids, mask, logprobs = splice_prefix([5, 6, 7], [8, 9, 10], None, response_length=4)
    assert ids == [5, 6, 7, 8] and mask == [0, 0, 0, 1] and logprobs is None


@pytest.mark.parametrize("bad", [dict(mode="teacher"), dict(prefix_fraction=0.0), dict(prefix_fraction=1.0),
                                 dict(min_continuation_tokens=0), dict(hint_max_tokens=0),
                                 dict(hint_temperature=-1.0)])
def test_bad_guidance_settings_are_refused(bad):
    with pytest.raises(ValueError, match="zppo.guidance"):
        GuidanceConfig(**bad)


def test_paper_defaults():
    assert GuidanceConfig().prefix_fraction == 0.4  # alpha (App. D.2, Algorithm 6)
    assert not hasattr(GuidanceConfig(), "hint_fraction")  # the hint is the teacher's Fig. 19 answer, not a cut


# ------------------------------------------------------------------ the teacher work behind them
class ScriptedTeacher:
    """Rollouts answer from ``answers`` (cycled); a Fig. 19 request gets ``hint``. Records every request."""

    def __init__(self, answers=("42", "41"), hint="Pair the tens. \\boxed{42}"):
        self.answers, self.hint = list(answers), hint
        self.requests: list[tuple[str, str, dict]] = []
        self.lock = threading.Lock()
        self.pool = ThreadPoolExecutor(4)

    def reply(self, messages, kwargs) -> Reply:
        content = messages[-1]["content"]
        with self.lock:
            kind = "hint" if content.startswith(HINT_PROMPT.split("\n", 1)[0]) else "rollout"
            self.requests.append((kind, content, kwargs))
            count = sum(k == kind for k, _, _ in self.requests)
        if kind == "hint":
            return Reply(Completion(self.hint, "stop", 50, 7), None, 0.0)
        answer = self.answers[(count - 1) % len(self.answers)]
        return Reply(Completion(f"<think>17+25={answer}</think> \\boxed{{{answer}}}", "stop", 10, 12), None, 0.0)

    def submit(self, messages, **kwargs) -> Future:
        return self.pool.submit(self.reply, messages, kwargs)


def _is_42(text: str) -> bool:
    return extract_final_answer(text) == "42"


def _guidance(teacher, mode, question_ids=("q1",), step=1, seed=0):
    work = TeacherWork(teacher, TeacherConfig(rollouts=4))
    work.begin_step(step)
    config = GuidanceConfig(mode=mode, seed=seed)
    for qid in question_ids:
        work.start_guidance(qid, [{"role": "user", "content": QUESTION}], [], is_correct=_is_42,
                            hint=config if mode == HINT else None, seed=seed)
    return work, work.collect(list(question_ids), timeout_s=30)


def test_hint_comes_from_a_fresh_correct_teacher_rollout_through_fig_19():
    teacher = ScriptedTeacher()
    work, made = _guidance(teacher, HINT)
    rollouts = [r for r in teacher.requests if r[0] == "rollout"]
    hints = [r for r in teacher.requests if r[0] == "hint"]
    assert len(rollouts) == 4 and len(hints) == 1  # G_T fresh rollouts, one hint request
    material = made["q1"]
    assert material.teacher_correct == 2 and extract_final_answer(material.guide_text) == "42"
    # The hint request carries that correct rollout inside Fig. 19's <response> block, with the hint settings.
    content, kwargs = hints[0][1], hints[0][2]
    assert re.search(r"<response>\n(.*)\n</response>", content, re.S).group(1).strip().endswith("\\boxed{42}")
    assert kwargs["max_tokens"] == 512 and kwargs["temperature"] == 0.0 and kwargs["thinking"] is False
    assert material.hint == "Pair the tens." and "\\boxed" not in material.hint
    counts = work.counts
    assert (counts["rollouts"], counts["hints"], counts["hint_ok"], counts["hint_boxed_stripped"]) == (4, 1, 1, 1)
    # Each request kind's tokens apart (the compute ledger's teacher kinds).
    assert counts["rollout_completion_tokens"] == 4 * 12 and counts["hint_completion_tokens"] == 7
    assert counts["hint_prompt_tokens"] == 50 and counts["compression_prompt_tokens"] == 0
    assert counts["completion_tokens"] == 4 * 12 + 7


def test_no_hint_request_when_the_teacher_solves_nothing():
    teacher = ScriptedTeacher(answers=("41",))
    work, made = _guidance(teacher, HINT)
    assert [r[0] for r in teacher.requests] == ["rollout"] * 4
    assert made["q1"].guide_text is None and made["q1"].hint is None and work.counts["hints"] == 0
    (skipped,) = build_hints([_material(teacher_text=None, hint=None)], CHARS, 4096, GuidanceConfig()).skipped
    assert skipped.reason == NO_TEACHER_CANDIDATE


def test_a_refused_hint_leaves_the_question_without_a_hint():
    work, made = _guidance(ScriptedTeacher(hint="\\boxed{42}"), HINT)
    assert made["q1"].guide_text is not None and made["q1"].hint is None
    assert work.counts["hint_empty"] == 1 and work.counts["hint_ok"] == 0


def test_prefix_teacher_work_asks_for_rollouts_only_and_draws_a_correct_one_seeded():
    teacher = ScriptedTeacher(answers=("42", "42 ", "41", "42  "))
    picks = []
    for step in range(8):
        work, made = _guidance(teacher, PREFIX, step=step, seed=3)
        picks.append(made["q1"].guide_text)
        assert made["q1"].teacher_correct == 3 and _is_42(made["q1"].guide_text)
    assert all(kind == "rollout" for kind, _, _ in teacher.requests) and len(teacher.requests) == 32
    assert len(set(picks)) > 1  # uniform over the correct rollouts: not always the first
