"""``transformers serve`` for the CPU teacher, with its reasoning kept in the reply.

transformers 5.10's server splits a reply at ``</think>`` into ``content`` and ``reasoning_content``, then builds
the reply with openai's ``Choice``, whose ``message`` field is typed as openai's own ``ChatCompletionMessage``:
pydantic serialises the declared type, so ``reasoning_content`` is dropped (huggingface/transformers#46561 notes
it). A teacher rollout then reaches the client as its final answer alone, and its candidate loses the reasoning
that Fig. 16 compresses. ``keep_reasoning_in_replies`` puts the field back into the non-streaming reply (the
client does not stream). It changes nothing when a fixed server already sends the field.

Run as ``python -m recipe.zppo.teacher.transformers_serve serve [transformers serve's arguments]``
(``service.TeacherService`` does).
"""

from __future__ import annotations

import sys

REASONING_KEY = "reasoning_content"


def keep_reasoning_in_replies() -> None:
    """Patch ``ChatCompletionHandler._build_completion`` so the reply dict carries ``reasoning_content``."""
    from transformers.cli.serving.chat_completion import ChatCompletionHandler

    original = ChatCompletionHandler._build_completion
    if getattr(original, "_zppo_keeps_reasoning", False):
        return

    def build_completion(self, *args, **kwargs):
        result = original(self, *args, **kwargs)
        reasoning = kwargs.get("reasoning_content")
        if reasoning is not None:
            for choice in result.get("choices", ()):
                choice.get("message", {}).setdefault(REASONING_KEY, reasoning)
        return result

    build_completion._zppo_keeps_reasoning = True
    ChatCompletionHandler._build_completion = build_completion


def main() -> int:
    keep_reasoning_in_replies()
    from transformers.cli.transformers import main as transformers_main

    sys.argv[0] = "transformers"
    return transformers_main()


if __name__ == "__main__":
    sys.exit(main())
