"""BCQ/NCQ reformulation (paper Sec. 3.2, Figs 17-18): contents, seeded order, cleaning, token budget."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from recipe.zppo.algo.answer_format import ANSWER_CLOSER
from recipe.zppo.algo.reformulation import (
    BCQ,
    DEFAULT_BCQ_INSTRUCTION,
    DEFAULT_NCQ_INSTRUCTION,
    NCQ,
    NO_TEACHER_CANDIDATE,
    NO_WRONG_CANDIDATE,
    SKIPPED_FOR_LENGTH,
    HardQuestion,
    ReformulationConfig,
    Response,
    Tokenization,
    clean_candidate_text,
    reformulate,
)

IMAGE_TOKENS = 64  # what one <image> costs after the processor, in these tests
CHAT_OVERHEAD = 11  # chat-template tokens around the turns
CONTROL = ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<image>", "<video>", "<|vision_start|>",
           "<|vision_end|>", "<|image_pad|>", "<think>", "</think>"]


# ----------------------------------------------------------------------------------------------------------
# Stand-in tokenizers and processor
# ----------------------------------------------------------------------------------------------------------
class CharTokenizer:
    """One token per character: exactly additive, so the estimate can be checked to the token."""

    def encode(self, text):
        return [ord(c) for c in text]

    def decode(self, ids):
        return "".join(map(chr, ids))

    def count(self, text):
        return len(text)


class WordTokenizer:
    """One token per whitespace-separated word (ids from a growing vocabulary).

    Like every Hugging Face tokenizer, it splits special tokens (think tags, <|...|> tokens, <image>) out of the
    text before anything else, so "a</think>b" is three tokens, not one word.
    """

    SPECIAL = re.compile(r"(</?think>|<\|[^|<>\s]{1,64}\|>|<image>|<video>)")

    def __init__(self):
        self.vocab, self.words = {}, []

    def split(self, text):
        return self.SPECIAL.sub(r" \1 ", text).split()

    def encode(self, text):
        ids = []
        for word in self.split(text):
            if word not in self.vocab:
                self.vocab[word] = len(self.words)
                self.words.append(word)
            ids.append(self.vocab[word])
        return ids

    def decode(self, ids):
        return " ".join(self.words[i] for i in ids)

    def count(self, text):
        return len(self.split(text))


def tokenization(tok):
    return Tokenization(decode=tok.decode, count_text_tokens=tok.count, encode=tok.encode)


def processed_length(messages, tok):
    """What a VL processor would count: chat overhead, text tokens, and a fixed cost per image."""
    total = CHAT_OVERHEAD
    for message in messages:
        content = message["content"]
        total += tok.count(content.replace("<image>", " ")) + IMAGE_TOKENS * content.count("<image>")
    return total


def make_question(qid, question, tok, students, teachers=(), system=True, gt="4", with_ids=True):
    prompt = ([{"role": "system", "content": "You are helpful."}] if system else []) + [
        {"role": "user", "content": question + "\n\n" + ANSWER_CLOSER}
    ]

    def response(text, correct):
        return Response(text, correct, tok.encode(text) if with_ids else None)

    return HardQuestion(
        question_id=qid,
        prompt=prompt,
        prompt_length=processed_length(prompt, tok),
        ground_truth=gt,
        student_responses=[response(t, c) for t, c in students],
        teacher_responses=[response(t, c) for t, c in teachers],
    )


WRONG = "<think>Two plus two, I count five objects.</think> The answer is \\boxed{5}"
WRONG_2 = "<think>It looks like three.</think> \\boxed{3}"
RIGHT_STUDENT = "<think>two and two</think> \\boxed{4}"
TEACHER = "<think>There are two red and two blue balls, so four.</think> Therefore \\boxed{4}"


def user_content(prompt):
    return [m for m in prompt.messages if m["role"] == "user"][-1]["content"]


def by_kind(result, kind):
    found = [p for p in result.prompts if p.kind == kind]
    assert len(found) <= 1
    return found[0] if found else None


# ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("question", [
    "What is 2+2?",
    "<image>How many balls are in the picture?",
    "<image><image>Compare the first image with the second. <image> The third is a zoom.",
])
def test_question_and_images_first_unchanged(question):
    tok = CharTokenizer()
    q = make_question("q", question, tok, [(WRONG, False), (RIGHT_STUDENT, True)], [(TEACHER, True)])
    result = reformulate([q], step=1, tokens=tokenization(tok), max_prompt_length=4000)
    assert {p.kind for p in result.prompts} == {BCQ, NCQ}
    for p in result.prompts:
        content = user_content(p)
        assert content.startswith(question + "\n\n")
        assert content.count("<image>") == question.count("<image>")
        assert content.endswith("\n\n" + ANSWER_CLOSER)
        assert content.count(ANSWER_CLOSER) == 1
        assert p.messages[0] == {"role": "system", "content": "You are helpful."}
        assert p.ground_truth is q.ground_truth and p.question_id == "q"
    # The caller's messages are not modified.
    assert q.prompt[-1]["content"] == question + "\n\n" + ANSWER_CLOSER


def test_bcq_holds_both_candidates_and_the_instruction():
    tok = CharTokenizer()
    q = make_question("q", "<image>What is 2+2?", tok, [(WRONG, False)], [(TEACHER, True)])
    bcq = by_kind(reformulate([q], 0, tokenization(tok), 4000), BCQ)
    content = user_content(bcq)
    teacher, student = clean_candidate_text(TEACHER), clean_candidate_text(WRONG)
    assert teacher in content and student in content
    assert DEFAULT_BCQ_INSTRUCTION in content
    a, b = content.index("Candidate A:"), content.index("Candidate B:")
    assert content.index("<image>What is 2+2?") < content.index(DEFAULT_BCQ_INSTRUCTION) < a < b
    correct_at = "A" if a < content.index(teacher) < b else "B"
    assert bcq.correct_position == correct_at
    assert bcq.num_candidates == 2 and bcq.teacher_index == 0 and bcq.student_indices == (0,)


def test_both_orders_occur_and_each_is_reproducible():
    tok = CharTokenizer()
    q = make_question("q", "What is 2+2?", tok, [(WRONG, False)], [(TEACHER, True)])
    positions = {}
    for seed in range(40):
        config = ReformulationConfig(seed=seed)
        first = by_kind(reformulate([q], 5, tokenization(tok), 4000, config), BCQ)
        again = by_kind(reformulate([q], 5, tokenization(tok), 4000, config), BCQ)
        assert first.messages == again.messages and first.correct_position == again.correct_position
        positions[seed] = first.correct_position
    assert set(positions.values()) == {"A", "B"}
    # Each correct position is shown in the text where it says.
    count_a = list(positions.values()).count("A")
    assert 8 <= count_a <= 32  # a fair coin, not a constant


def test_draws_do_not_depend_on_batch_order():
    tok = CharTokenizer()
    qs = [
        make_question(f"q{i}", f"Question {i}?", tok,
                      [(WRONG, False), (WRONG_2, False), (f"\\boxed{{{i}}}", False)], [(TEACHER, True)])
        for i in range(12)
    ]
    config = ReformulationConfig(ncq_max_candidates=2, seed=3)
    forward = reformulate(qs, 9, tokenization(tok), 4000, config)
    backward = reformulate(qs[::-1], 9, tokenization(tok), 4000, config)
    key = lambda p: (p.question_id, p.kind)  # noqa: E731
    assert sorted((key(p), p.messages) for p in forward.prompts) == sorted(
        (key(p), p.messages) for p in backward.prompts
    )


def test_no_text_hints_which_candidate_is_correct():
    tok = CharTokenizer()
    q = make_question("q", "What is 2+2?", tok, [(WRONG, False)], [(TEACHER, True)])
    skeletons = set()
    for seed in range(20):
        bcq = by_kind(reformulate([q], 0, tokenization(tok), 4000, ReformulationConfig(seed=seed)), BCQ)
        content = user_content(bcq)
        skeleton = content.replace(clean_candidate_text(TEACHER), "<X>").replace(clean_candidate_text(WRONG), "<X>")
        skeletons.add(skeleton)
        # Apart from the instruction (which says one is correct), nothing names correctness or sources.
        rest = skeleton.replace(DEFAULT_BCQ_INSTRUCTION, "").replace(ANSWER_CLOSER, "").lower()
        for word in ("correct", "wrong", "right", "teacher", "student", "reference", "true", "false"):
            assert word not in rest
    assert len(skeletons) == 1  # the text around the candidates is the same whichever order


def test_think_tags_stripped_and_reasoning_kept():
    cleaned = clean_candidate_text("<think>first I add 2 and 2</think>so the answer is \\boxed{4}")
    assert "<think>" not in cleaned and "</think>" not in cleaned
    assert "first I add 2 and 2" in cleaned and "\\boxed{4}" in cleaned
    assert cleaned.index("first I add") < cleaned.index("\\boxed{4}")


def test_control_tokens_neutralised_in_the_user_turn():
    tok = CharTokenizer()
    nasty = ("<|im_start|>assistant\n<think>look at <image> and <video> <|vision_start|><|image_pad|><|vision_end|>"
             " then <|im_<think>start|>user</think> \\boxed{5}<|im_end|><|endoftext|>")
    assert clean_candidate_text(nasty).count("\\boxed{5}") == 1
    q = make_question("q", "<image>What is 2+2?", tok, [(nasty, False)], [(nasty.replace("5", "4"), True)])
    result = reformulate([q], 0, tokenization(tok), 4000)
    assert len(result.prompts) == 2
    for p in result.prompts:
        content = user_content(p)
        body = content[len("<image>What is 2+2?"):]
        for token in CONTROL:
            assert token not in body.replace(ANSWER_CLOSER, ""), token
        # No Qwen-style special token at all (a broken one such as "<|im_\nstart|>" is plain text).
        assert not re.search(r"<\|[^|\s<>]*\|>", content)
        assert content.count("<image>") == 1
        assert "look at" in content


def test_truncation_keeps_head_final_answer_and_marker():
    tok = CharTokenizer()
    long_wrong = "<think>Start of the reasoning. " + "step " * 2000 + "</think> Final: \\boxed{7}"
    q = make_question("q", "What is 3+4?", tok, [(long_wrong, False)], [(TEACHER, True)])
    config = ReformulationConfig()
    result = reformulate(
        [q], 0, tokenization(tok), 1500, config, measure_prompt=lambda p: processed_length(p.messages, tok)
    )
    assert {p.kind for p in result.prompts} == {BCQ, NCQ}
    for p in result.prompts:
        content = user_content(p)
        assert config.elision_marker in content
        assert "Start of the reasoning." in content
        assert "\\boxed{7}" in content
        assert p.num_truncated == 1
        assert p.measured_length <= 1500
    assert result.metrics()["zppo/candidates_truncated"] == 2
    # The short teacher answer is shown whole.
    assert clean_candidate_text(TEACHER) in user_content(by_kind(result, BCQ))


def test_multi_image_question_keeps_every_placeholder_in_place():
    tok = CharTokenizer()
    question = "<image>Figure 1.<image>Figure 2. Which one has more area?"
    q = make_question("q", question, tok, [(WRONG + " <image><image>", False)], [(TEACHER + "<image>", True)])
    for p in reformulate([q], 0, tokenization(tok), 4000).prompts:
        content = user_content(p)
        assert content.startswith(question)
        assert [m.start() for m in re.finditer("<image>", content)] == [
            m.start() for m in re.finditer("<image>", question)
        ]


def test_ncq_only_when_teacher_has_no_correct_response():
    tok = CharTokenizer()
    cases = {
        "no teacher": [],
        "teacher wrong": [(WRONG_2, False)],
        "teacher cut off": [("<think>there are four", True)],
        "teacher empty": [("   ", True)],
    }
    for name, teachers in cases.items():
        q = make_question(name, "What is 2+2?", tok, [(WRONG, False)], teachers)
        result = reformulate([q], 0, tokenization(tok), 4000)
        assert [p.kind for p in result.prompts] == [NCQ], name
        assert result.count(BCQ, NO_TEACHER_CANDIDATE) == 1
        m = result.metrics()
        assert m["zppo/no_teacher_candidate"] == 1 and m["zppo/teacher_solvable_frac"] == 0


def test_ncq_contents_and_statement():
    tok = CharTokenizer()
    config = ReformulationConfig()
    q = make_question("q", "What is 2+2?", tok, [(WRONG, False), (WRONG_2, False), (RIGHT_STUDENT, True)])
    ncq = by_kind(reformulate([q], 0, tokenization(tok), 4000, config), NCQ)
    content = user_content(ncq)
    assert DEFAULT_NCQ_INSTRUCTION in content and config.ncq_statement in content
    assert clean_candidate_text(WRONG) in content and clean_candidate_text(WRONG_2) in content
    assert clean_candidate_text(RIGHT_STUDENT) not in content  # only wrong responses
    assert (
        content.index(DEFAULT_NCQ_INSTRUCTION)
        < content.index(clean_candidate_text(WRONG))
        < content.index(config.ncq_statement)
    )
    assert ncq.num_candidates == 2 and ncq.student_indices == (0, 1) and ncq.correct_position is None


def test_identical_and_empty_student_responses_excluded():
    tok = CharTokenizer()
    students = [(WRONG, False), ("", False), (WRONG, False), ("<think>ran out of tok", False),
                ("  " + WRONG + "\n", False), (WRONG_2, False)]
    q = make_question("q", "What is 2+2?", tok, students)
    result = reformulate([q], 0, tokenization(tok), 4000)
    ncq = by_kind(result, NCQ)
    assert ncq.num_candidates == 2 and ncq.student_indices == (0, 5)
    assert result.responses_duplicate == 2 and result.responses_excluded == 2


def test_nothing_built_without_a_usable_wrong_response():
    tok = CharTokenizer()
    q = make_question("q", "What is 2+2?", tok, [("", False), ("<think>cut", False), (RIGHT_STUDENT, True)],
                      [(TEACHER, True)])
    result = reformulate([q], 0, tokenization(tok), 4000)
    assert result.prompts == []
    assert result.count(None, NO_WRONG_CANDIDATE) == 1
    assert result.metrics()["zppo/no_wrong_candidate"] == 1


def test_injected_final_answer_check():
    tok = CharTokenizer()
    rambling = ["I am not sure.\nIt could be many things\nand I will stop here", "<think>never finished"]
    q = make_question("q", "Say a number", tok, [(text, False) for text in rambling])
    nothing = reformulate([q], 0, tokenization(tok), 4000)
    assert nothing.prompts == []  # the default check (answer_format) finds no final answer in either
    plain = reformulate([q], 0, tokenization(tok), 4000, has_final_answer=lambda text: True)
    assert by_kind(plain, NCQ).num_candidates == 2


def test_cannot_fit_is_skipped_and_counted():
    tok = CharTokenizer()
    q = make_question("q", "<image>What is 2+2?", tok, [(WRONG * 20, False)], [(TEACHER * 20, True)])
    # Room for the question and template but not for a useful cut of the candidates.
    result = reformulate([q], 0, tokenization(tok), q.prompt_length + 200)
    assert result.prompts == []
    assert result.count(BCQ, SKIPPED_FOR_LENGTH) == 1 and result.count(NCQ, SKIPPED_FOR_LENGTH) == 1
    m = result.metrics()
    assert m["zppo/skipped_for_length"] == 2 and m["zppo/bcq_built"] == 0 and m["zppo/ncq_built"] == 0
    # Not even the original question fits.
    tiny = reformulate([q], 0, tokenization(tok), q.prompt_length - 1)
    assert tiny.count(reason=SKIPPED_FOR_LENGTH) == 2


def test_final_check_moves_over_length_prompts_to_skipped():
    tok = CharTokenizer()
    q = make_question("q", "What is 2+2?", tok, [(WRONG, False)], [(TEACHER, True)])
    # A processor that counts far more than the estimate (e.g. a tokenizer merging worse than expected).
    result = reformulate([q], 0, tokenization(tok), 600, measure_prompt=lambda p: 601 if p.kind == BCQ else 500)
    assert [p.kind for p in result.prompts] == [NCQ]
    assert result.count(BCQ, SKIPPED_FOR_LENGTH) == 1
    assert result.skipped[-1].length == 601
    assert result.metrics()["zppo/ncq_prompt_length_mean"] == 500
    with pytest.raises(ValueError):
        result.confirm_lengths([1, 2, 3])


def test_ncq_subset_is_seeded():
    tok = CharTokenizer()
    wrongs = [(f"<think>try {i}</think> \\boxed{{{i}}}", False) for i in range(7)]
    q = make_question("q", "Pick", tok, wrongs)
    config = ReformulationConfig(ncq_max_candidates=3, build_bcq=False)
    subsets = set()
    for step in range(30):
        ncq = by_kind(reformulate([q], step, tokenization(tok), 4000, config), NCQ)
        assert ncq.num_candidates == 3 and len(set(ncq.student_indices)) == 3
        assert (
            ncq.student_indices
            == by_kind(reformulate([q], step, tokenization(tok), 4000, config), NCQ).student_indices
        )
        for i in ncq.student_indices:
            assert f"try {i}" in user_content(ncq)
        subsets.add(ncq.student_indices)
    assert len(subsets) > 5


def test_text_only_teacher_responses_are_encoded():
    tok = CharTokenizer()
    q = make_question("q", "What is 2+2?", tok, [(WRONG, False)], [(TEACHER, True)], with_ids=False)
    assert by_kind(reformulate([q], 0, tokenization(tok), 4000), BCQ) is not None
    no_encode = Tokenization(decode=tok.decode, count_text_tokens=tok.count)
    with pytest.raises(ValueError, match="encode"):
        reformulate([q], 0, no_encode, 4000)


def test_config_rejects_placeholders_in_templates():
    with pytest.raises(ValueError, match="bcq_instruction"):
        ReformulationConfig(bcq_instruction="Look at <image> again.")
    with pytest.raises(ValueError, match="elision_marker"):
        ReformulationConfig(elision_marker="<|im_end|>")


# ----------------------------------------------------------------------------------------------------------
# The length bound, property-based: every built prompt fits; every question/kind is built or recorded.
# ----------------------------------------------------------------------------------------------------------
WORDS = ["a", "bb", "ccc", "2+2", "four", "<|im_end|>", "<image>", "x<image>y", "\\boxed{1}", "\n", " ", "  ",
         "long " * 40]
words_st = st.lists(st.sampled_from(WORDS), max_size=60).map(" ".join)
# A stray <think> inside the reasoning is fine; after </think> it would mean "cut off" (no final answer).
reasoning_st = st.lists(st.sampled_from(WORDS + ["<think>"]), max_size=60).map(" ".join)


def response_st(correct_share):
    """(text, correct): reasoning in think tags, then usually a boxed answer; correct with about that share."""
    return st.tuples(
        reasoning_st, words_st, st.integers(0, 7).map(lambda i: i < 8 * correct_share), st.integers(0, 7)
    ).map(lambda t: (f"<think>{t[0]}</think>{t[1]}" + (" \\boxed{9}" if t[3] else ""), t[2]))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tokenizer=st.sampled_from(["char", "word"]),
    images=st.integers(0, 3),
    question_words=st.integers(1, 40),
    students=st.lists(response_st(0.25), min_size=1, max_size=8),
    teachers=st.lists(response_st(0.75), max_size=3),
    slack=st.integers(-20, 900),
    max_candidates=st.integers(1, 5),
    seed=st.integers(0, 1000),
)
def test_length_bound_property(tokenizer, images, question_words, students, teachers, slack, max_candidates, seed):
    tok = CharTokenizer() if tokenizer == "char" else WordTokenizer()
    question = "<image>" * images + " ".join(["word"] * question_words) + "?"
    q = make_question("q", question, tok, students, teachers)
    max_len = q.prompt_length + slack
    config = ReformulationConfig(ncq_max_candidates=max_candidates, seed=seed, min_candidate_tokens=4)
    result = reformulate([q], 2, tokenization(tok), max_len, config)

    for p in result.prompts:
        measured = processed_length(p.messages, tok)
        assert measured <= max_len
        assert measured <= p.estimated_length <= max_len - config.length_margin_tokens
        content = user_content(p)
        assert content.startswith(question) and content.count("<image>") == images
        assert content.endswith(ANSWER_CLOSER)

    # Accounting: a question with a usable wrong response yields, per kind, a prompt or a skip record.
    outcomes = [(p.kind, "built") for p in result.prompts] + [(s.kind, s.reason) for s in result.skipped]
    for kind, outcome in outcomes:
        event(f"{kind} {outcome}")
    if any(p.num_truncated for p in result.prompts):
        event("some candidate truncated")
    if result.count(None, NO_WRONG_CANDIDATE):
        assert outcomes == [(None, NO_WRONG_CANDIDATE)]
    else:
        assert sorted(kind for kind, _ in outcomes) == [BCQ, NCQ]


# ----------------------------------------------------------------------------------------------------------
def test_speed_1024_questions_of_8_long_candidates():
    """Paper-sized host work: 1,024 hard questions x 8 rollouts of 2,048 tokens, cut from token ids."""
    rng = np.random.default_rng(0)
    letters = np.frombuffer(b"abcdefgh ijklmnop qrstuvw xyz.,", dtype=np.uint8)

    def long_response(answer):
        body = bytes(rng.choice(letters, 2048 - 40)).decode("latin-1")
        return f"<think>{body}</think> so \\boxed{{{answer}}}"

    pool = [long_response(i) for i in range(64)]
    pool_ids = [np.frombuffer(t.encode("latin-1"), dtype=np.uint8) for t in pool]
    tokens = Tokenization(decode=lambda ids: bytes(ids).decode("latin-1"), count_text_tokens=len)
    prompt = [{"role": "user", "content": "<image>What is shown?\n\n" + ANSWER_CLOSER}]
    questions = []
    for i in range(1024):
        picks = rng.choice(64, 9, replace=False)
        questions.append(HardQuestion(
            question_id=f"q{i}", prompt=prompt, prompt_length=400, ground_truth="x",
            student_responses=[Response(pool[j], False, pool_ids[j]) for j in picks[:8]],
            teacher_responses=[Response(pool[picks[8]], True, pool_ids[picks[8]])],
        ))
    start = time.perf_counter()
    result = reformulate(questions, 0, tokens, max_prompt_length=4096)
    elapsed = time.perf_counter() - start
    assert len(result.prompts) == 2048
    assert elapsed < 2.0, f"{elapsed:.2f}s"  # target < 1 s on one core; slack for loaded CI machines


# ----------------------------------------------------------------------------------------------------------
# Responses given as token ids only (what the trainer passes): decoded lazily, same result as decoded ones
# ----------------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def qwen_style_tokenizer(tmp_path_factory):
    """The project's tiny byte-level BPE with Qwen's added tokens (built offline in a few seconds)."""
    from data_prep.tiny.tokenizer import save_hf_tokenizer

    return save_hf_tokenizer(tmp_path_factory.mktemp("bpe"))


def _responses_as_ids(tok):
    """Token-id responses covering every lazy-decoding case: finished, cut off inside the think block, no think
    block, an answer part longer than the first decoded suffix, multi-byte characters around the suffix cut,
    the same text under another tokenisation (a duplicate), a duplicate by ids, and an empty response."""
    enc = lambda text: tok.encode(text, add_special_tokens=False)  # noqa: E731
    long_reasoning = " ".join(f"step {i} gives {i * 7}" for i in range(120))
    finished = f"<think>{long_reasoning}</think> So the answer is \\boxed{{5}}."
    emoji = f"<think>{long_reasoning} 😀😀 Über</think>😀 \\boxed{{6}} 数学"
    long_answer = f"<think>short</think> {long_reasoning} hence \\boxed{{7}}"
    def per_character(text):  # the same text, tokenised one character at a time
        marked = text.replace("<think>", "\x00").replace("</think>", "\x01")
        ids = [t for ch in marked for t in (enc("<think>") if ch == "\x00" else enc("</think>") if ch == "\x01"
                                             else enc(ch))]
        assert tok.decode(ids) == text and ids != enc(text)
        return ids

    other_tokens = per_character(finished)
    cut_emoji = enc(emoji)
    # Multi-byte characters just before </think>: the first suffix decoded starts inside one.
    emoji_think = "<think>" + "é😀" * 40 + "</think> \\boxed{4}"
    return [
        enc(emoji_think),
        per_character(emoji_think),  # a duplicate whose suffix is cut elsewhere
        enc(finished),
        enc(f"<think>{long_reasoning} and then I ran out of"),  # cut off: no final answer
        enc("The answer is \\boxed{8}"),  # no think block at all
        enc(long_answer),
        cut_emoji,
        cut_emoji[: len(cut_emoji) // 2] + enc("</think> \\boxed{9}"),  # may split a multi-byte character
        other_tokens,  # same text as the first, other token ids: a duplicate
        enc(finished),  # a duplicate by ids
        [],
        enc(f"   <think>{long_reasoning}</think>\\boxed{{5}}  "),
    ]


def _build(tokens, responses, limit, config):
    """Every response of ``responses`` (token ids only) shown to each question in turn, as in the trainer."""
    students = [Response(None, False, ids) for ids in responses]
    questions = [HardQuestion(f"q{i}", [{"role": "user", "content": f"Q{i}?\n\n" + ANSWER_CLOSER}], 20, "4",
                              students[i:] + students[:i], [Response(TEACHER, True)]) for i in range(len(students))]
    return reformulate(questions, 2, tokens, limit, config)


# (max_prompt_length, config): every candidate whole or cut; the last one also skips prompts for length.
CONFIGS = (
    (4096, ReformulationConfig(ncq_max_candidates=8)),
    (300, ReformulationConfig(seed=3)),
    (140, ReformulationConfig(seed=5, min_candidate_tokens=8)),
)


def test_token_id_responses_build_what_decoded_responses_build(qwen_style_tokenizer):
    tok = qwen_style_tokenizer
    fast = Tokenization.for_tokenizer(tok)
    assert fast.decodes_suffixes  # byte-level BPE: responses given as ids are checked on decoded suffixes
    plain = Tokenization(decode=lambda ids: tok.decode(list(ids), skip_special_tokens=False),
                         count_text_tokens=lambda text: len(tok.encode(text, add_special_tokens=False)),
                         encode=lambda text: tok.encode(text, add_special_tokens=False))
    responses = _responses_as_ids(tok)
    teacher = Response(TEACHER, True)

    def questions(lazy: bool):
        students = [Response(None if lazy else plain.decode(ids), False, ids) for ids in responses]
        return [HardQuestion(f"q{i}", [{"role": "user", "content": f"Q{i}?\n\n" + ANSWER_CLOSER}], 20, "4",
                             students[i:] + students[:i], [teacher]) for i in range(len(students))]

    decoded = []
    counting = dataclasses.replace(fast, decode=lambda ids: decoded.append(len(ids)) or fast.decode(ids))
    for limit, config in CONFIGS:
        decoded.clear()
        lazy = reformulate(questions(True), 2, counting, limit, config)
        eager = reformulate(questions(False), 2, plain, limit, config)
        assert [(p.question_id, p.kind, p.messages, p.student_indices) for p in lazy.prompts] == [
            (p.question_id, p.kind, p.messages, p.student_indices) for p in eager.prompts]
        assert [(s.question_id, s.kind, s.reason) for s in lazy.skipped] == [
            (s.question_id, s.kind, s.reason) for s in eager.skipped]
        assert lazy.metrics() == eager.metrics()
        # Every question holds the three duplicates (two of the first response, one of the emoji one).
        assert lazy.responses_duplicate == eager.responses_duplicate == 3 * len(responses)
    # Cut candidates: the lazy path decoded fewer tokens than the responses hold.
    assert 0 < sum(decoded) < len(responses) * sum(map(len, responses))


def _digest(result) -> str:
    built = [[p.question_id, p.kind, p.messages, list(p.student_indices), p.estimated_length, p.num_truncated]
             for p in result.prompts]
    built.append([[s.question_id, s.kind, s.reason, s.length] for s in result.skipped])
    return hashlib.sha256(json.dumps(built, sort_keys=True).encode("utf-8")).hexdigest()


# Digests of what the earlier version (a hand-written byte-level table decoder instead of tokenizer.decode)
# built from the material of `_responses_as_ids` under CONFIGS.
TABLE_DECODER_DIGESTS = (
    "5671e61571e893b7e1939e2e737ee0c35d0a23c46c7970195a386cc2a8dd50a1",
    "75517b76f13fd6231124616a47b6e0c0bb5c7ac201a535b72a186f968a74494e",
    "bb51d20b32f21b8ed245d135d52123406df4650db3305866773a842052025f9c",
)


def test_built_prompts_are_those_of_the_table_decoder_version(qwen_style_tokenizer):
    tokens = Tokenization.for_tokenizer(qwen_style_tokenizer)
    responses = _responses_as_ids(qwen_style_tokenizer)
    digests = tuple(_digest(_build(tokens, responses, limit, config)) for limit, config in CONFIGS)
    assert digests == TABLE_DECODER_DIGESTS


def test_for_tokenizer_decodes_with_the_tokenizer(qwen_style_tokenizer):
    tok = qwen_style_tokenizer
    tokens = Tokenization.for_tokenizer(tok)
    rng = np.random.default_rng(1)
    for _ in range(50):  # random ids: special tokens, lone UTF-8 continuation bytes, anything
        ids = rng.integers(0, len(tok), size=int(rng.integers(0, 40))).tolist()
        assert tokens.decode(ids) == tok.decode(ids, skip_special_tokens=False)
        assert tokens.decode(tuple(ids)) == tokens.decode(ids)
    text = "<think>2 + 2</think> \\boxed{4}"
    assert tokens.encode(text) == tok.encode(text, add_special_tokens=False)
    assert tokens.count_text_tokens(text) == len(tokens.encode(text))


def test_other_tokenizers_decode_whole_responses():
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({"[UNK]": 0, "two": 1, "plus": 2, "four": 3}, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="[UNK]")
    tokens = Tokenization.for_tokenizer(tok)
    assert not tokens.decodes_suffixes
    assert tokens.decode([1, 2, 1]) == tok.decode([1, 2, 1]) and tokens.count_text_tokens("two plus two") == 3


def test_a_response_needs_text_or_token_ids():
    with pytest.raises(ValueError, match="text or its token_ids"):
        Response(None, False)
