"""Candidate compression (paper Sec. 3.2 (i), App. D.1, Fig. 16): the prompt, and the rules that judge a reply."""

from __future__ import annotations

import pytest

from recipe.zppo.algo.answer_format import extract_final_answer
from recipe.zppo.algo.compression import (
    ANSWER_CHANGED,
    COMPRESSION_MAX_TOKENS,
    COMPRESSION_PROMPT,
    NO_ANSWER,
    NO_SUMMARY,
    OK,
    REASONS,
    TRUNCATED,
    Compressed,
    compression_messages,
    parse_compression,
)

STUDENT = "<think>I add 12 and 7. 12 + 7 = 18, let me check... yes 18</think> \\boxed{18}"
SUMMARY = "<summary>12 + 7 = 18\n\\boxed{18}</summary>"


# ------------------------------------------------------------------------------------------------- the prompt


def test_prompt_is_fig16_with_dash_bullets_and_the_response_slot_last():
    lines = COMPRESSION_PROMPT.split("\n")
    assert lines[0] == "Compress the response below into a summary (in 5 lines max). Rules:"
    assert lines[1:7] == [
        "- Response is in <response>...</response> tags",
        "- Summary should be in <summary>...</summary> tags and should be in 5 lines max",
        "- Keep ONLY the essential reasoning steps and the final answer",
        "- Remove ALL exploratory text, self-corrections, retries, and filler",
        "- Do NOT re-derive or add new information",
        "- End with the final answer in \\boxed{} format",
    ]
    assert COMPRESSION_PROMPT.endswith("<response>\n{response}\n</response>")
    assert COMPRESSION_PROMPT.count("{response}") == 1
    assert COMPRESSION_MAX_TOKENS == 512
    assert len(set(REASONS)) == 5 and OK in REASONS


def test_messages_keep_the_reasoning_as_plain_text():
    messages = compression_messages(STUDENT)
    assert len(messages) == 1 and messages[0]["role"] == "user"
    content = messages[0]["content"]
    head = COMPRESSION_PROMPT.split("{response}")[0]
    assert content.startswith(head) and content.endswith("\n</response>")
    inside = content[len(head) : -len("\n</response>")]
    assert "<think>" not in inside and "</think>" not in inside
    assert "I add 12 and 7. 12 + 7 = 18, let me check... yes 18" in inside
    assert inside.endswith("\\boxed{18}")


def test_messages_strip_control_tokens_and_media_placeholders():
    nasty = "<|im_start|>assistant\n<image>Count: 3<|im_end|><video> so \\boxed{3}<|endoftext|>"
    content = compression_messages(nasty)[0]["content"]
    for token in ("<|im_start|>", "<|im_end|>", "<|endoftext|>", "<image>", "<video>"):
        assert token not in content
    assert "Count: 3 so \\boxed{3}" in content


def test_braces_in_the_response_are_kept_as_they_are():
    response = "{response} \\boxed{\\frac{1}{2}} {0}"
    content = compression_messages(response)[0]["content"]
    assert content.count("{response}") == 1 and "\\boxed{\\frac{1}{2}} {0}\n</response>" in content
    assert "\\boxed{} format" in content  # the template's own braces are untouched


# ------------------------------------------------------------------------------------------------ the reasons


def test_ok_returns_the_stripped_summary():
    result = parse_compression("  " + SUMMARY + "\n", "18")
    assert result == Compressed("12 + 7 = 18\n\\boxed{18}", OK) and result.ok
    assert extract_final_answer(result.text) == "18"


def test_answer_compared_after_stripping_surrounding_white_space():
    assert parse_compression("<summary>\\boxed{ 18 }</summary>", " 18\n").reason == OK


def test_truncated_wins_over_a_good_summary():
    assert parse_compression(SUMMARY, "18", truncated=True) == Compressed(None, TRUNCATED)


@pytest.mark.parametrize(
    "output",
    [
        "12 + 7 = 18 \\boxed{18}",  # no tags at all
        "<summary>12 + 7 = 18 \\boxed{18}",  # never closed
        "12 + 7 = 18 \\boxed{18}</summary>",  # closed, never opened
        "",
    ],
)
def test_no_summary(output):
    assert parse_compression(output, "18") == Compressed(None, NO_SUMMARY)


def test_no_answer():
    assert parse_compression("<summary>12 + 7 = 18</summary>", "18") == Compressed(None, NO_ANSWER)
    assert parse_compression("<summary>so \\boxed{}</summary>", "18").reason == NO_ANSWER
    assert parse_compression("<summary>\\boxed{18</summary>", "18").reason == NO_ANSWER  # unclosed box


@pytest.mark.parametrize("answer", ["19", "18.0", "x=18", "-18", "1 8"])
def test_answer_changed(answer):
    assert parse_compression(f"<summary>12 + 7 = 18\n\\boxed{{{answer}}}</summary>", "18").reason == ANSWER_CHANGED


def test_the_last_box_of_the_summary_is_its_answer():
    assert parse_compression("<summary>\\boxed{18} then \\boxed{19}</summary>", "19").reason == OK
    assert parse_compression("<summary>\\boxed{18} then \\boxed{19}</summary>", "18").reason == ANSWER_CHANGED


def test_nested_braces_in_the_boxed_answer():
    out = "<summary>half of one: \\boxed{\\frac{1}{2}}</summary>"
    assert parse_compression(out, "\\frac{1}{2}") == Compressed("half of one: \\boxed{\\frac{1}{2}}", OK)
    assert parse_compression("<summary>\\boxed{\\{1, 2\\}}</summary>", "\\{1, 2\\}").reason == OK
    assert parse_compression(out, "1/2").reason == ANSWER_CHANGED  # verbatim, no normalisation


def test_original_answer_is_required():
    with pytest.raises(ValueError):
        parse_compression(SUMMARY, "")
    with pytest.raises(ValueError):
        parse_compression(SUMMARY, None)


# ----------------------------------------------------------------------------------------- think and blocks


def test_leading_think_block_is_dropped():
    out = "<think>The summary could be <summary>\\boxed{5}</summary> but no.</think>\n" + SUMMARY
    assert parse_compression(out, "18") == Compressed("12 + 7 = 18\n\\boxed{18}", OK)


def test_reply_that_starts_inside_a_prefilled_think_block():
    out = "let me write <summary>\\boxed{99}</summary>\n</think>\n\n" + SUMMARY
    assert parse_compression(out, "18").reason == OK


def test_think_block_that_never_closes_is_no_summary():
    assert parse_compression("<think>I will write " + SUMMARY, "18").reason == NO_SUMMARY


def test_summary_only_inside_the_leading_think_block_does_not_count():
    assert parse_compression("<think>" + SUMMARY + "</think> done", "18").reason == NO_SUMMARY


def test_the_last_of_several_summary_blocks_is_used():
    out = "<summary>first \\boxed{18}</summary> retry: <summary>second\n\\boxed{18}</summary> trailing"
    assert parse_compression(out, "18") == Compressed("second\n\\boxed{18}", OK)
    out = "<summary>good \\boxed{18}</summary><summary>bad \\boxed{17}</summary>"
    assert parse_compression(out, "18").reason == ANSWER_CHANGED
    out = "<summary>good \\boxed{18}</summary><summary>no box</summary>"
    assert parse_compression(out, "18").reason == NO_ANSWER


def test_stray_open_tag_inside_the_last_block():
    out = "<summary>ignored <summary>kept \\boxed{18}</summary>"
    assert parse_compression(out, "18") == Compressed("kept \\boxed{18}", OK)


def test_control_tokens_and_placeholders_are_cleaned_from_the_summary():
    out = "<summary><|im_start|>12 + 7 = 18<image>\n<think>x</think>\\boxed{18}<|im_end|></summary><|im_end|>"
    result = parse_compression(out, "18")
    assert result.reason == OK
    for token in ("<|im_start|>", "<|im_end|>", "<image>", "<think>", "</think>"):
        assert token not in result.text
    assert result.text.startswith("12 + 7 = 18") and result.text.endswith("\\boxed{18}")


def test_a_control_token_inside_the_box_is_removed_before_the_answer_check():
    assert parse_compression("<summary>\\boxed{1<|im_end|>8}</summary>", "18").reason == OK
