"""Throughput of ``compute_score`` on synthetic mixed responses (single process, no judge).

    python -m benchmarks.bench_reward [--n 10000] [--seed 0] [--math-share 0.05] [--only throughput|bounds]

Prints answers scored per second overall and per reward type, and the route shares. The mix covers every
reward type, right and wrong answers, the fallback formats, unclosed think blocks and long responses; a
``--math-share`` of the rows are symbolic math answers that go to math-verify (worker processes).

Then the bounds (``PASS``/``MISS`` lines, never asserted): inputs that must stay cheap however they are built
(2 MB answers, an unclosed giant box, 200,000 unclosed boxes: ``extract_answer`` and ``compute_score``), and a
judge that is down (nothing listens on its port: each call is refused at once, then the circuit opens). These
were wall-clock asserts of tests/unit/test_answer_format.py, test_reward.py and test_reward_judge_live.py; the
tests keep what the calls return.
"""

from __future__ import annotations

import argparse
import random
import socket
import sys
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Goal
from recipe.zppo.algo.answer_format import extract_answer
from recipe.zppo.reward import compute_score, route_shares

_FILLER = "Let me look at the figure carefully and reason about each part of it. " * 12


def _wrap(answer: str, rng: random.Random, style: str | None = None) -> str:
    style = style or rng.choice(["boxed", "boxed", "boxed", "boxed", "answer", "tag", "bare", "unclosed", "nothink"])
    think = "<think>" + _FILLER * rng.randint(1, 4) + "</think>\n"
    if style == "boxed":
        return think + f"So the final answer is \\boxed{{{answer}}}."
    if style == "answer":
        return think + f"Answer: {answer}"
    if style == "tag":
        return think + f"<answer>{answer}</answer>"
    if style == "bare":
        return think + answer
    if style == "unclosed":
        return "<think>" + _FILLER * 8
    return _FILLER + f" The answer is \\boxed{{{answer}}}"


def make_rows(n: int, seed: int = 0, math_share: float = 0.05) -> list[tuple]:
    """(data_source, solution_str, ground_truth, extra_info) rows of a seeded mix."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        right = rng.random() < 0.5
        if rng.random() < math_share:
            k = rng.randint(2, 9)
            gold = f"\\frac{{\\sqrt{{{k}}}}}{{2}}"
            pred = f"\\sqrt{{{k}}}/2" if right else f"\\sqrt{{{k + 1}}}/3"
            rows.append(("math", _wrap(pred, rng, "boxed"), gold, {"reward_type": "math"}))
            continue
        kind = rng.choice(["multiple_choice", "numeric", "string_match", "counting", "number_list",
                           "list_string_match", "auto_letter", "auto_number"])
        if kind == "multiple_choice":
            gold = rng.choice("ABCD")
            pred = gold if right else rng.choice([c for c in "ABCD" if c != gold])
            pred = rng.choice([pred, f"({pred})", f"{pred}.", f"\\text{{{pred}}}"])
            extra = {"reward_type": kind, "question": "Which one?\nA. cat\nB. dog\nC. cow\nD. hen"}
        elif kind == "numeric":
            value = rng.uniform(-1e4, 1e4)
            gold = f"{value:.2f}"
            pred = f"{value:,.2f}" if right else f"{value * 1.5 + 1:.2f}"
            extra = {"reward_type": kind, "tolerance": rng.choice([None, 0.01, 0.05])}
        elif kind == "string_match":
            gold = rng.choice(["Eiffel Tower", "yes", "no", "red", "the cat"])
            pred = gold.upper() if right else "something else"
            extra = {"reward_type": kind}
        elif kind == "counting":
            value = rng.randint(0, 20)
            gold = str(value)
            pred = f"{value} objects" if right else str(value + 1)
            extra = {"reward_type": kind}
        elif kind == "number_list":
            seq = [rng.randint(0, 9) for _ in range(4)]
            gold = str(seq)
            pred = ", ".join(map(str, seq if right else seq[::-1] + [1]))
            extra = {"reward_type": kind}
        elif kind == "list_string_match":
            gold = "['body butter', 'coconut body butter']"
            pred = "Coconut body butter" if right else "lotion"
            extra = {"reward_type": kind}
        elif kind == "auto_letter":
            gold = rng.choice("ABCD")
            pred = gold if right else "E"
            extra = {}
        else:
            gold = str(rng.randint(1, 999))
            pred = gold if right else "1000"
            extra = None
        rows.append((kind, _wrap(pred, rng), gold, extra))
    return rows


def run(n: int = 10_000, seed: int = 0, math_share: float = 0.05) -> dict:
    rows = make_rows(n, seed, math_share)
    compute_score("warmup", "\\boxed{\\sqrt{2}}", "\\sqrt{2}", {"reward_type": "math"})  # start the math worker
    per_type: dict[str, list[float]] = defaultdict(list)
    results = []
    start = time.perf_counter()
    for data_source, solution, gold, extra in rows:
        t0 = time.perf_counter()
        results.append(compute_score(data_source, solution, gold, extra))
        per_type[data_source].append(time.perf_counter() - t0)
    elapsed = time.perf_counter() - start
    return {
        "n": n,
        "seconds": elapsed,
        "per_second": n / elapsed,
        "per_type_us": {k: 1e6 * sum(v) / len(v) for k, v in sorted(per_type.items())},
        "routes": route_shares(results),
        "acc": sum(r["acc"] for r in results) / n,
    }


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _huge_extract_answer() -> None:
    think = "<think>some reasoning</think>\n"
    filler = "blah " * 400_000  # 2 MB
    extract_answer("<think>" + filler + "</think>" + filler + "\\boxed{9}")
    extract_answer("<think>" + filler)  # unclosed think block
    extract_answer(think + filler + "\\boxed{" + filler)  # an unclosed giant box
    extract_answer(think + "\\boxed{" * 200_000)  # many unclosed boxes
    extract_answer(think + "Answer: " * 100_000)


def _huge_compute_score() -> None:
    think = "<think>I looked at the image and worked it out.</think>\n"
    filler = "The figure shows many things. " * 70_000  # ~2 MB
    compute_score("src", "<think>" + filler + "</think>" + filler + "\\boxed{7}", "7", {"reward_type": "numeric"})
    compute_score("src", "<think>" + filler, "7", {"reward_type": "numeric"})
    compute_score("src", think + filler, "7", {"reward_type": "string_match"})


def _judge_down() -> list[str]:
    """Four unparseable answers with the judge's port closed: refused twice, then the circuit is open."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens there once the socket is closed
    kw = {"judge_url": f"http://127.0.0.1:{port}/v1", "judge_model": "m", "judge_timeout_s": 5,
          "judge_max_retries": 0, "judge_fail_threshold": 2, "judge_cooldown_s": 60}
    unparseable = ("<think>I looked at the image and worked it out.</think>\n"
                   "The object on the left is larger than the one on the right,\nso it must be the dog.")
    return [compute_score("src", unparseable, "dog", {}, **kw)["reason"] for _ in range(4)]


def _goal(name: str, seconds: float, limit: float, note: str = "") -> Goal:
    return Goal(name, seconds, limit, "s", seconds <= limit, note)


def bounds() -> list[Goal]:
    """Seconds of the inputs that must stay cheap, each against its goal."""
    reasons: list[str] = []
    judge_s = _seconds(lambda: reasons.extend(_judge_down()))
    return [
        _goal("extract_answer: five adversarial 2 MB / 200,000-box outputs", _seconds(_huge_extract_answer), 5.0),
        _goal("compute_score: three ~2 MB responses", _seconds(_huge_compute_score), 5.0),
        _goal("compute_score: 4 calls with the judge down (timeout 5 s)", judge_s, 3.0,
              note="reasons " + ", ".join(reasons)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--math-share", type=float, default=0.05)
    parser.add_argument("--only", choices=["throughput", "bounds"], default=None)
    args = parser.parse_args()
    if args.only != "throughput":
        for goal in bounds():
            print(goal.line())
    if args.only == "bounds":
        return
    out = run(args.n, args.seed, args.math_share)
    print(f"{out['n']} responses in {out['seconds']:.2f} s: {out['per_second']:.0f} answers/s "
          f"(mean acc {out['acc']:.3f})")
    for kind, us in out["per_type_us"].items():
        print(f"  {kind:18s} {us:8.1f} us/answer")
    for key, value in out["routes"].items():
        if not key.endswith("_count"):
            print(f"  {key:32s} {value:.3f}")


if __name__ == "__main__":
    main()
