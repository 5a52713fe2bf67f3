"""What the tiny teacher (``data_prep/tiny/teacher.py``) can do, as a CPU run asks it: prints three shares.

    python benchmarks/bench_tiny_teacher.py --model .cache/tiny/models/tiny-teacher [--questions 30]

- answers: greedy, and at least one of 4 samples at temperature 1.0, correct on the train questions (thinking on,
  the student's user turn);
- compressions: greedy, thinking off, of student-like responses ``<think>a op b = c</think> \\boxed{c}``, accepted by
  ``parse_compression`` (a summary that keeps the boxed answer).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from data_prep.tiny.datasets import build_text_rows
    from recipe.zppo.algo.answer_format import extract_final_answer
    from recipe.zppo.algo.compression import OK, compression_messages, parse_compression

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--questions", type=int, default=30)
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    end = tokenizer.convert_tokens_to_ids("<|im_end|>")

    def generate(messages, thinking: bool, sample: bool, max_tokens: int) -> str:
        prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=False, enable_thinking=thinking)
        out = model.generate(torch.tensor([prompt]), max_new_tokens=max_tokens, do_sample=sample, temperature=1.0,
                             top_p=1.0, eos_token_id=end, pad_token_id=0)
        return tokenizer.decode(out[0, len(prompt):], skip_special_tokens=True)

    start = time.perf_counter()
    rows = build_text_rows()["train"][: args.questions]
    greedy = sampled = 0
    for row in rows:
        messages, truth = [dict(m) for m in row["prompt"]], row["reward_model"]["ground_truth"]
        greedy += extract_final_answer(generate(messages, True, False, 48)) == truth
        sampled += any(extract_final_answer(generate(messages, True, True, 48)) == truth for _ in range(4))
    rng, accepted = random.Random(5), 0
    for _ in range(args.questions):
        a, b, op, c = rng.randint(0, 40), rng.randint(0, 40), rng.choice("+-*"), rng.randint(0, 120)
        response = f"<think>{a} {op} {b} = {c}</think> \\boxed{{{c}}}"
        accepted += parse_compression(generate(compression_messages(response), False, False, 64), str(c)).reason == OK
    n = len(rows)
    print(f"answers correct: greedy {greedy / n:.2f}, any of 4 sampled {sampled / n:.2f} ({n} train questions)")
    print(f"compressions accepted: {accepted / args.questions:.2f} ({args.questions} student-like responses)")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
