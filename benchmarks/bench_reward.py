"""Throughput and time bounds of the reward (``recipe.zppo.reward.compute_score``), judge off.

    python -m benchmarks.bench_reward [--questions 1250] [--seed 0] [--only throughput|bounds]

Throughput, on typical responses: questions of every grader-scored reward type (multiple choice, numeric with and
without a tolerance, counting, number lists, short text, lists of acceptable texts, expressions), 8 rollouts each
as a policy writes them (a think block of 1-4 KB, then the boxed answer; right about 40% of the time, in the usual
spellings; a few distinct wrong answers per question; 5% without a box, 2% cut off in their reasoning). Each
response is scored once, in order, in this process; answers that string operations cannot decide go to the grader's
worker processes (``recipe/zppo/reward/sandbox.py``). Reported: answers per second of wall time, and per CPU
second of this process AND its grader workers (read from /proc), which is "per core" (the goal: at least 1,000
answers/s per core, i.e. at most 1 ms of CPU per answer); per reward type; the share graded in a worker; the routes.

Bounds (``PASS``/``MISS`` lines, never asserted): inputs that must stay cheap however they are built (2 MB answers,
an unclosed giant box, 200,000 unclosed boxes), the pathological answers of issue #20 (each call under 5 s), and a
judge that is down (nothing listens on its port: each call is refused at once, then the circuit opens).
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from collections import defaultdict
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import Goal
from recipe.zppo.algo.answer_format import extract_answer
from recipe.zppo.reward import compute_score, route_shares, sandbox, verdict_cache

_FILLER = "Let me look at the figure carefully and reason about each part of it. "  # 72 characters


def _response(rng: random.Random, answer: str | None) -> str:
    """A policy's response: a think block of 1-4 KB, then the boxed answer (None: no box; "" cut off)."""
    think = "<think>" + _FILLER * rng.randint(14, 56)
    if answer == "":
        return think  # cut off in its reasoning
    if answer is None:
        return think + "</think>\nI think it is the second one."
    return think + "</think>\n" + rng.choice(["The final answer is ", "So ", "Therefore, "]) + f"\\boxed{{{answer}}}."


_WORDS = ("red", "blue", "green", "tower", "bridge", "cat", "dog", "river", "market", "window", "bottle", "garden",
          "station", "yellow", "wooden", "round", "square", "left", "right", "upper", "lower", "small", "large",
          "church", "bicycle", "lamp", "chair", "table", "mountain", "lake", "forest", "street", "sign", "clock")


def _question(rng: random.Random, kind: str, q: int) -> tuple[str, dict, list[str], list[str]]:
    """(gold, extra_info, right answers in the spellings a policy uses, wrong answers) of question ``q``; every
    question's answers are its own (a gold seldom repeats across questions, as in a real data set)."""
    if kind == "multiple_choice":
        gold = rng.choice("ABCD")
        wrong = [c for c in "ABCD" if c != gold]
        return gold, {}, [gold, f"({gold})", f"{gold}. the {rng.choice(_WORDS)}", f"\\text{{{gold}}}"], wrong
    if kind == "numeric":
        value = round(rng.uniform(1, 5000), rng.choice([0, 1, 2]))
        text = f"{value:g}"
        extra = {"tolerance": 0.01} if rng.random() < 0.3 else {}
        wrong = [f"{value * f:g}" for f in (0.5, 1.5, 2.0)] + [f"{value + 1:g}"]
        return text, extra, [text, f"{value:,}" if value >= 1000 else text, f"{text}\\%", f"{text}°"], wrong
    if kind == "counting":
        value = rng.randint(0, 30)
        return str(value), {}, [str(value), f"{value} objects"], [str(value + d) for d in (1, 2, -1)]
    if kind == "number_list":
        seq = [rng.randint(0, 99) for _ in range(rng.randint(2, 5))]
        gold = str(seq)
        right = [", ".join(map(str, seq)), f"({', '.join(map(str, seq))})", gold]
        return gold, {}, right, [", ".join(map(str, seq[::-1] + [1])), ", ".join(map(str, seq[1:]))]
    if kind == "string_match":
        gold = " ".join(rng.sample(_WORDS, rng.randint(1, 3)))
        wrong = [" ".join(rng.sample(_WORDS, rng.randint(1, 3))) for _ in range(4)]
        return gold, {}, [gold, gold.upper(), gold.title()], wrong
    if kind == "list_string_match":
        items = [" ".join(rng.sample(_WORDS, 2)) for _ in range(3)]
        return str(items), {}, items[:2], [" ".join(rng.sample(_WORDS, 2)) for _ in range(2)]
    # math: a closed form unique to the question; the equal-but-differently-written answer and the wrong ones need
    # sympy (in a worker), the gold's own spelling does not
    k, m = 2 + q, rng.randint(2, 9)
    gold = f"\\frac{{\\sqrt{{{k}}}}}{{{m}}}"
    return gold, {}, [gold, gold, f"\\sqrt{{{k}}}/{m}"], [f"\\sqrt{{{k + 1}}}/{m}", f"{k}/{m}", f"\\sqrt{{{k}}}"]


KINDS = ("multiple_choice", "numeric", "counting", "number_list", "string_match", "list_string_match", "math")


def make_rows(questions: int, seed: int = 0) -> list[tuple]:
    """(data_source, solution_str, ground_truth, extra_info) of ``questions`` x 8 rollouts, seeded."""
    rng = random.Random(seed)
    rows = []
    for q in range(questions):
        kind = KINDS[q % len(KINDS)]
        gold, extra, right, wrong = _question(rng, kind, q)
        extra = dict(extra, reward_type=kind, question=f"Question {q}?")
        wrong = rng.sample(wrong, k=min(len(wrong), rng.randint(1, 3)))  # a policy repeats a few wrong answers
        for _ in range(8):
            draw = rng.random()
            if draw < 0.05:
                answer = None
            elif draw < 0.07:
                answer = ""
            elif draw < 0.47:
                answer = rng.choice(right)
            else:
                answer = rng.choice(wrong)
            rows.append((kind, _response(rng, answer), gold, extra))
    return rows


def _cpu_of(pids: list[int]) -> dict[int, float]:
    """CPU seconds (user + system) of each process, from /proc/<pid>/stat."""
    ticks = os.sysconf("SC_CLK_TCK")
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            out[pid] = (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError, ValueError):
            pass
    return out


def run(questions: int = 1250, seed: int = 0) -> dict:
    rows = make_rows(questions, seed)
    pool = sandbox.pool()
    if not pool.wait_ready(180):
        raise SystemExit("the grader's worker processes did not start")
    compute_score("warmup", "<think>x</think>\\boxed{\\sqrt{2}/2}", "\\frac{\\sqrt{2}}{2}", {"reward_type": "math"})
    pids = pool.worker_pids()
    verdict_cache.clear()
    workers_before, calls_before = _cpu_of(pids), pool.calls
    per_type: dict[str, list[float]] = defaultdict(list)
    results = []
    cpu_start, start = time.process_time(), time.perf_counter()
    for data_source, solution, gold, extra in rows:
        t0 = time.perf_counter()
        results.append(compute_score(data_source, solution, gold, extra))
        per_type[data_source].append(time.perf_counter() - t0)
    elapsed, own_cpu = time.perf_counter() - start, time.process_time() - cpu_start
    workers_after = _cpu_of(pids)
    worker_cpu = sum(workers_after[p] - workers_before[p] for p in workers_after if p in workers_before)
    n = len(rows)
    return {
        "n": n, "seconds": elapsed, "per_second": n / elapsed, "own_cpu_s": own_cpu, "worker_cpu_s": worker_cpu,
        "per_cpu_second": n / (own_cpu + worker_cpu), "worker_share": (pool.calls - calls_before) / n,
        "cache_share": verdict_cache.hits / n,
        "per_type_us": {k: 1e6 * sum(v) / len(v) for k, v in sorted(per_type.items())},
        "routes": route_shares(results), "acc": sum(r["acc"] for r in results) / n,
        "workers_replaced": sorted(pool.worker_pids()) != sorted(pids),
    }


def _seconds(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _huge_extract_answer() -> None:
    """answer_format.extract_answer (NCQ's parsed answers; no longer the reward's) on adversarial outputs."""
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
    compute_score("src", think + filler + "\\boxed{" + filler, "7", {"reward_type": "string_match"})


def pathological() -> list[tuple[str, str, object, dict]]:
    """(name, response, gold, extra_info) of issue #20's answers that once took seconds or raised."""
    def box(answer: str) -> str:
        return f"<think>hm</think> \\boxed{{{answer}}}"

    return [
        ("answer<300 spaces>1 vs a letter", box("answer" + " " * 300 + "1"), "B", {"reward_type": "multiple_choice"}),
        ("power tower vs a 3-item gold list", box("9^{9^{9^{9}}}"), ["1", "2", "3"], {"reward_type": "math"}),
        ("9**9**9**9 vs 3 non-integers", box("9**9**9**9"), ["2.5", "x", "y+1"], {"reward_type": "math"}),
        ("tolerance 10**400", box("101"), "100", {"reward_type": "numeric", "tolerance": 10**400}),
        ("1e5 \\times 10^{400}", box("1e5 \\times 10^{400}"), "1e405", {"reward_type": "numeric", "tolerance": 0.01}),
        ("5,000-digit integers", box("9" * 5000), "9" * 4999 + "8", {"reward_type": "numeric"}),
    ]


def _judge_down() -> list[str]:
    """Four free-form answers with the judge's port closed: refused twice, then the circuit is open."""
    from tests.fake_openai import closed_port

    kw = {"judge_url": f"http://127.0.0.1:{closed_port()}/v1", "judge_model": "m", "judge_timeout_s": 5,
          "judge_max_retries": 0, "judge_fail_threshold": 2, "judge_cooldown_s": 60}
    answer = "<think>I looked at the image and worked it out.</think>\nIt must be \\boxed{the dog}."
    return [compute_score("src", answer, "cat", {"reward_type": "string_match"}, **kw)["reason"] for _ in range(4)]


def _goal(name: str, value: float, limit: float, unit: str = "s", note: str = "") -> Goal:
    return Goal(name, value, limit, unit, value <= limit, note)


def bounds() -> list[Goal]:
    """Seconds of the inputs that must stay cheap, each against its goal."""
    sandbox.pool().wait_ready(180)
    slowest, name_of_slowest, routes = 0.0, "", []
    for name, response, gold, extra in pathological():
        start = time.perf_counter()
        result = compute_score("src", response, gold, extra)
        seconds = time.perf_counter() - start
        routes.append(f"{result['route']}/{result['reason']}")
        if seconds >= slowest:
            slowest, name_of_slowest = seconds, name
    reasons: list[str] = []
    import openai  # noqa: F401  (imported untimed: a process pays it once; the figure is the failure path)

    judge_s = _seconds(lambda: reasons.extend(_judge_down()))
    return [
        _goal("extract_answer: five adversarial 2 MB / 200,000-box outputs", _seconds(_huge_extract_answer), 5.0),
        _goal("compute_score: three ~2 MB responses", _seconds(_huge_compute_score), 5.0),
        _goal("compute_score: slowest of issue #20's pathological answers", slowest, 5.0,
              note=f"{name_of_slowest}; " + ", ".join(routes)),
        _goal("compute_score: 4 calls with the judge down (timeout 5 s)", judge_s, 3.0,
              note="reasons " + ", ".join(reasons)),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=1250, help="questions of 8 rollouts each (default 10,000 "
                                                                     "answers)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", choices=["throughput", "bounds"], default=None)
    args = parser.parse_args()
    if args.only != "throughput":
        for goal in bounds():
            print(goal.line())
    if args.only == "bounds":
        return
    out = run(args.questions, args.seed)
    print(f"{out['n']} responses in {out['seconds']:.2f} s wall: {out['per_second']:.0f} answers/s; CPU "
          f"{out['own_cpu_s']:.2f} s here + {out['worker_cpu_s']:.2f} s in grader workers: "
          f"{out['per_cpu_second']:.0f} answers per CPU second; {100 * out['worker_share']:.1f}% graded in a worker, "
          f"{100 * out['cache_share']:.1f}% from the verdict cache "
          f"(mean acc {out['acc']:.3f}{'; a worker was replaced' if out['workers_replaced'] else ''})")
    print(_goal("grader CPU time per answer (this process + its workers)", 1e3 / out["per_cpu_second"], 1.0, "ms",
                note=f"{out['per_cpu_second']:.0f} answers/s per core; goal >= 1,000").line())
    for kind, us in out["per_type_us"].items():
        print(f"  {kind:18s} {us:8.1f} us/answer (wall)")
    for key, value in out["routes"].items():
        if not key.endswith("_count"):
            print(f"  {key:32s} {value:.3f}")


if __name__ == "__main__":
    main()
