"""Micro-benchmarks of ZPPO's host-side work at paper scale (issue 8, item 3), on one CPU core.

Three parts, each timed on synthetic material built before the clock starts:

* ``reformulation``: the host work between phase 1 and phase 2 of a step for 96 hard questions (Algorithm 1's
  pre-cap at Table 8's batch: rho_aug 0.25 x 384 new prompts; ``--set questions=1024`` for a larger step), each
  with 8 wrong student rollouts of 2,048 tokens (token ids, as the rollout produced them; a share cut off in their
  think block, without a final answer). Two timed parts, then their sum (the goal):
  (1) ``decode``: every wrong rollout's ids decoded once and its final answer parsed, what the trainer does to send
  it to compression (Fig. 16) and to list NCQ's wrong answers; (2) ``reformulate``: ``reformulation.reformulate``
  on ``CandidateSet``s holding the compressed candidates, i.e. one teacher candidate and one per wrong rollout with
  a final answer, synthetic texts of 512 tokens each (compression's cap), which builds a BCQ (Fig. 17) and an NCQ
  (Fig. 18, every compressed wrong rollout shown) per question and estimates their lengths with the tokenizer.
  Not timed: the teacher's and compression's generation (the teacher server's time, overlapping phase 1) and the
  final processor length check (``measure_prompt``, rollout time).
* ``buffer``: a ``PromptReplayBuffer`` filled to capacity (77,000 questions; keys are question-id strings of
  a data set twice that size, in shuffled order, as the trainer passes them), then per-call time of admit (each
  one evicts the earliest admitted), a refused admit, sample (one batch's replay slots), update (stay or
  graduate); save + restore (``save``: the JSON file, fsync included; ``load``: read and ``load_state_dict``
  into a new buffer), with its parts for reference; memory measured with tracemalloc.
* ``advantage``: 100,000 responses of 1,024 tokens in groups of 8 (verl's uid strings), binary outcome reward on
  the last response token; ZPPO's estimator (``batch_nonzero``, what the trainer registers) against verl's own
  ``compute_grpo_outcome_advantage`` on the same tensors (and verl's vectorised GRPO for reference).

Run (single core; the lead reruns on a quiet machine)::

    .venv/bin/python benchmarks/bench_host.py                        # paper scale, tiny BPE tokenizer
    .venv/bin/python benchmarks/bench_host.py --tokenizer DIR        # any Hugging Face tokenizer folder (Qwen3)
    .venv/bin/python benchmarks/bench_host.py --smoke                # reduced sizes (CI)
    .venv/bin/python benchmarks/bench_host.py --only reformulation --profile   # cProfile of one reformulate

It prints a table, ``PASS``/``MISS`` lines for the issue's goals, and writes ``--out`` (JSON; default
``outputs/benchmarks/bench_host.json``). Goals are checked here, never asserted by tests.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import (
    Durations,
    Report,
    default_output,
    goal_seconds,
    pin_to_one_core,
    summarise,
    time_calls,
)

PARTS = ("reformulation", "buffer", "advantage")

# Goals of issue 8 (seconds / bytes).
GOAL_REFORMULATION_S = 1.0
GOAL_BUFFER_OP_S = 1e-3
GOAL_BUFFER_BYTES = 50e6
GOAL_BUFFER_RESTORE_S = 1.0  # issue #16: once per checkpoint (save, then load into a new buffer)
GOAL_ADVANTAGE_S = 0.5
GOAL_ADVANTAGE_RATIO = 1.0

# questions: hard questions per step; candidates: wrong student rollouts per question (n = 8, all wrong);
# rollout_tokens: their length; compressed_tokens: one compressed candidate (Fig. 16's cap); max_prompt_length: the
# GPU examples' prompt budget (examples/_common.sh).
PAPER = {
    "questions": 96, "candidates": 8, "rollout_tokens": 2048, "compressed_tokens": 512,
    "question_tokens": 256, "max_prompt_length": 10240, "truncated_percent": 25,
    "buffer_capacity": 77_000, "buffer_ops": 20_000, "replay_slots": 64,
    "responses": 100_000, "response_tokens": 1024, "group_size": 8, "advantage_repeat": 5,
}
SMOKE = {
    "questions": 16, "candidates": 8, "rollout_tokens": 256, "compressed_tokens": 64,
    "question_tokens": 64, "max_prompt_length": 1024, "truncated_percent": 25,
    "buffer_capacity": 2_000, "buffer_ops": 500, "replay_slots": 16,
    "responses": 2_000, "response_tokens": 64, "group_size": 8, "advantage_repeat": 2,
}

_WORDS = (
    "we compute the value of each term then add them together so the total is not yet clear because the "
    "second factor changes sign when x grows and the area of the triangle equals half the base times height "
    "therefore check again carefully since 17 plus 25 gives 42 while 3 times 14 also gives 42 and the chart "
    "shows a maximum near the third bar"
).split()


# ---------------------------------------------------------------------------------------------------------------
# Tokenizer
# ---------------------------------------------------------------------------------------------------------------
def load_tokenizer(path: str | None):
    """A Hugging Face tokenizer from ``path``, or the project's tiny byte-level BPE built into a temp folder."""
    from transformers import AutoTokenizer

    if path:
        return AutoTokenizer.from_pretrained(path), path
    from data_prep.tiny.tokenizer import save_hf_tokenizer

    folder = Path(tempfile.mkdtemp(prefix="zppo_bench_tok_"))
    return save_hf_tokenizer(folder), f"tiny BPE (data_prep.tiny, {folder})"


# ---------------------------------------------------------------------------------------------------------------
# Reformulation
# ---------------------------------------------------------------------------------------------------------------
def build_reformulation_material(tokenizer, size: dict, seed: int = 0):
    """Hard questions with their wrong rollouts (token ids) and the compressed candidates made from them.

    Bodies are distinct slices of one encoded word stream. A wrong rollout of ``rollout_tokens`` tokens is
    ``<think>`` + body + ``</think>`` + a boxed wrong answer; a share (``truncated_percent``) are cut off inside the
    think block, as hard questions' rollouts often are: no final answer, so no compression and no candidate.
    A compressed candidate is a plain text of ``compressed_tokens`` tokens ending in the original's boxed answer
    (what compression keeps); each question has one for its teacher and one per finished wrong rollout.
    """
    import numpy as np

    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    rng = np.random.default_rng(seed)
    longest = max(size["rollout_tokens"], size["compressed_tokens"])
    stream_words = rng.choice(_WORDS, size=max(20_000, 3 * longest)).tolist()
    stream = tokenizer.encode(" ".join(stream_words), add_special_tokens=False)
    head = tokenizer.encode("<think>\n", add_special_tokens=False)
    question_ids = tokenizer.encode(" ".join(rng.choice(_WORDS, size=4 * size["question_tokens"]).tolist()),
                                    add_special_tokens=False)[: size["question_tokens"]]
    question_text = tokenizer.decode(question_ids)

    def body(length: int) -> list[int]:
        start = int(rng.integers(0, len(stream) - length))
        return stream[start : start + length]

    def rollout_ids(answer: int | None) -> list[int]:
        tail = [] if answer is None else tokenizer.encode(f"\n</think>\n\nThe answer is \\boxed{{{answer}}}.",
                                                          add_special_tokens=False)
        return head + body(size["rollout_tokens"] - len(head) - len(tail)) + tail

    def compressed(answer: int) -> str:
        tail = tokenizer.encode(f"\n\nSo the final answer is \\boxed{{{answer}}}.", add_special_tokens=False)
        return tokenizer.decode(body(size["compressed_tokens"] - len(tail)) + tail)

    truncated = size["truncated_percent"] / 100.0
    questions = []
    for q in range(size["questions"]):
        answers = [None if rng.random() < truncated else 1000 + q * 10 + k for k in range(size["candidates"])]
        prompt = [{"role": "user", "content": f"Question {q}: {question_text}?\n\n{ANSWER_CLOSER}"}]
        questions.append({
            "question_id": f"bench-{q:06d}", "prompt": prompt, "prompt_length": size["question_tokens"] + 40,
            "ground_truth": str(q),
            "rollout_ids": [rollout_ids(answer) for answer in answers],
            "teacher": (compressed(q), str(q)),
            "student": [(k, compressed(answer), str(answer)) for k, answer in enumerate(answers) if answer is not None],
        })
    return questions


def run_reformulation(tokenizer, size: dict, report: Report, repeat: int, profile: bool) -> None:
    """Rows: decode of the wrong rollouts, reformulate from compressed candidates, and their sum (the goal)."""
    from recipe.zppo.algo.answer_format import extract_final_answer
    from recipe.zppo.algo.reformulation import (
        STUDENT,
        TEACHER,
        Candidate,
        CandidateSet,
        ReformulationConfig,
        Tokenization,
        reformulate,
    )

    material = build_reformulation_material(tokenizer, size)
    config = ReformulationConfig()
    tokens = Tokenization.for_tokenizer(tokenizer)
    limit = size["max_prompt_length"]
    state = {}

    def decode_wrong():
        # What the trainer does per hard group: decode each wrong rollout once, parse its answer (compression input).
        state["decoded"] = [[(text, extract_final_answer(text)) for text in map(tokens.decode, item["rollout_ids"])]
                            for item in material]

    def build():
        sets = [
            CandidateSet(
                question_id=item["question_id"], prompt=item["prompt"], prompt_length=item["prompt_length"],
                ground_truth=item["ground_truth"],
                teacher=[Candidate(item["teacher"][0], TEACHER, item["teacher"][1])],
                student=[Candidate(text, STUDENT, answer, k) for k, text, answer in item["student"]],
                wrong_answers=[answer for _, answer in decoded if answer is not None],
            )
            for item, decoded in zip(material, state["decoded"])
        ]
        state["result"] = reformulate(sets, step=1, tokens=tokens, max_prompt_length=limit, config=config)

    common = {"questions": size["questions"], "candidates": size["candidates"],
              "rollout_tokens": size["rollout_tokens"], "compressed_tokens": size["compressed_tokens"],
              "max_prompt_length": limit}
    decode_times = time_calls(decode_wrong, repeat=repeat, warmup=1)
    build_times = time_calls(build, repeat=repeat, warmup=1)
    decoded = sum(len(item["rollout_ids"]) for item in material)
    finished = sum(answer is not None for rows in state["decoded"] for _, answer in rows)
    decode_stats = report.row("reformulation", "decode every wrong rollout + parse its answer (to compression)",
                              **summarise(decode_times), **common, rollouts=decoded, with_answer=finished,
                              tokens_per_sec=decoded * size["rollout_tokens"] / summarise(decode_times)["median_s"])
    metrics = state["result"].metrics()
    shown = sum(p.num_candidates for p in state["result"].prompts)
    build_stats = report.row("reformulation", "reformulate: BCQ + NCQ from compressed candidates",
                             **summarise(build_times), **common,
                             bcq_built=int(metrics["zppo/bcq_built"]), ncq_built=int(metrics["zppo/ncq_built"]),
                             candidates_shown=shown,
                             ncq_candidates_mean=metrics["zppo/ncq_candidates_mean"],
                             skipped_for_length=int(metrics["zppo/skipped_for_length"]),
                             bcq_prompt_tokens_mean=metrics["zppo/bcq_prompt_length_mean"],
                             ncq_prompt_tokens_mean=metrics["zppo/ncq_prompt_length_mean"])
    total = {key: decode_stats[key] + build_stats[key] for key in ("median_s", "cpu_median_s")}
    report.row("reformulation", "host work per step: decode + reformulate (sum of medians)", **total, **common)
    report.goal("reformulation host work per step (decode + reformulate), one core", goal_seconds(total),
                GOAL_REFORMULATION_S, "s",
                note=f"{size['questions']} questions x {size['candidates']} wrong rollouts of "
                     f"{size['rollout_tokens']} tokens; candidates of {size['compressed_tokens']} tokens")
    if profile:
        _profile(build)


def _profile(fn, top: int = 25) -> None:
    import cProfile
    import pstats

    profiler = cProfile.Profile()
    profiler.enable()
    fn()
    profiler.disable()
    print("--- cProfile (cumulative) ---")
    pstats.Stats(profiler).sort_stats("cumulative").print_stats(top)
    print("--- cProfile (own time) ---")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


# ---------------------------------------------------------------------------------------------------------------
# Buffer
# ---------------------------------------------------------------------------------------------------------------
def _per_call(fn, args_list) -> Durations:
    times = Durations()
    clock, cpu_clock = time.perf_counter, time.process_time
    for args in args_list:
        cpu_start, start = cpu_clock(), clock()
        fn(*args)
        times.append(clock() - start)
        times.cpu.append(cpu_clock() - cpu_start)
    return times


def run_buffer(size: dict, report: Report) -> None:
    import numpy as np

    from recipe.zppo.algo.replay_buffer import BUFFER_FILE, PromptReplayBuffer

    capacity, ops, slots = size["buffer_capacity"], size["buffer_ops"], size["replay_slots"]
    # Keys: question ids of a data set twice the capacity, in shuffled order (the trainer's fresh stream). The
    # data set owns them: they are made before memory is measured.
    order = np.random.default_rng(0).permutation(2 * capacity + ops).tolist()
    ids = [f"zppo77k-{row:08d}" for row in order]

    # Memory: everything the buffer allocates for `capacity` entries.
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    buffer = PromptReplayBuffer(capacity=capacity)
    for i in range(capacity):
        buffer.admit(ids[i], 0.125, step=i // 256)
    memory = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    # Replay a share of the buffer so that every statistic field is populated.
    for step in range(4):
        buffer.sample(capacity // 8, step=1000 + step)

    next_row = capacity
    timed = []  # (name, durations)

    def admit_new():
        nonlocal next_row
        next_row += 1
        return buffer.admit(ids[next_row], 0.0, step=2000)

    timed.append(("admit (full: evicts earliest admitted)", _per_call(admit_new, [()] * ops)))
    assert len(buffer) == capacity
    present = buffer.question_ids()[-1]
    timed.append(("admit (already in: refused)", _per_call(buffer.admit, [(present, 0.0, 2001)] * ops)))
    sampled: list[list] = []
    # A new step each call: a draw depends on (seed, step, contents), so one step would draw the same keys again.
    timed.append((f"sample {slots} to replay (uniform)",
                  _per_call(lambda: sampled.append(buffer.sample(slots, step=2002 + len(sampled))),
                            [()] * max(1, ops // slots))))
    replayed = list(dict.fromkeys(key for batch in sampled for key in batch))
    stay, graduate = replayed[: len(replayed) // 2], replayed[len(replayed) // 2 :]
    timed.append(("update (stays: accuracy < 0.5)",
                  _per_call(buffer.update_replayed, [(key, 0.25, 2003) for key in stay])))
    timed.append(("update (graduates: accuracy >= 0.5)",
                  _per_call(buffer.update_replayed, [(key, 0.75, 2003) for key in graduate])))
    # Refill to capacity so that save / restore see a full buffer.
    while len(buffer) < capacity:
        admit_new()
    for name, times in timed:
        stats = summarise(times)
        report.row("buffer", name, **stats, capacity=capacity, entries=len(buffer))
        report.goal(f"buffer {name}, p99 per call", goal_seconds(stats, "p99_s") * 1e3, GOAL_BUFFER_OP_S * 1e3, "ms")

    # Once per checkpoint: save (state_dict + JSON write, fsync, rename) and the resume (read, parse, check,
    # install into a new buffer), as one round; its parts are timed apart for reference. Each round gets a new
    # buffer and drops it afterwards (a resume restores one buffer), after a gc.collect(): otherwise the rounds'
    # buffers pile up and each cyclic collection during a load walks all of them.
    repeat = 5

    def rounds(fn) -> Durations:
        times = Durations()
        for _ in range(repeat):
            target = PromptReplayBuffer(capacity=capacity)
            gc.collect()
            cpu_start, start = time.process_time(), time.perf_counter()
            fn(target)
            times.append(time.perf_counter() - start)
            times.cpu.append(time.process_time() - cpu_start)
            assert target.question_ids() in ([], buffer.question_ids())
        return times

    with tempfile.TemporaryDirectory(prefix="zppo_bench_buffer_") as folder:
        path = os.path.join(folder, BUFFER_FILE)
        round_trip = rounds(lambda target: (buffer.save(path), target.load(path)))
        state_times = rounds(lambda target: buffer.state_dict())
        save_times = rounds(lambda target: buffer.save(path))
        load_times = rounds(lambda target: target.load(path))
        state = buffer.state_dict()
        restore_times = rounds(lambda target: target.load_state_dict(state))
        file_bytes = os.path.getsize(path)
    stats = summarise(round_trip)
    report.row("buffer", "save + restore (save(): JSON file write; load(): read + load_state_dict into a new buffer)",
               **stats, capacity=capacity, bytes=file_bytes)
    report.goal("buffer save + restore at capacity", goal_seconds(stats), GOAL_BUFFER_RESTORE_S, "s",
                note=f"once per checkpoint, beside a multi-GB model checkpoint; wall {stats['median_s']:.3f} s")
    report.row("buffer", "state_dict (a JSON-able copy; for reference)", **summarise(state_times), capacity=capacity)
    report.row("buffer", "save (state_dict + JSON write + fsync + rename; for reference)", **summarise(save_times),
               capacity=capacity, bytes=file_bytes)
    report.row("buffer", "load into a new buffer (read + parse + check + install; for reference)",
               **summarise(load_times), capacity=capacity)
    report.row("buffer", "load_state_dict of a parsed state (check + install; for reference)",
               **summarise(restore_times), capacity=capacity)
    report.row("buffer", "memory at capacity (tracemalloc)", capacity=capacity,
               bytes=memory, bytes_per_entry=memory / capacity)
    report.goal("buffer memory at capacity", memory / 1e6, GOAL_BUFFER_BYTES / 1e6, "MB",
                note=f"{capacity} entries, {memory / capacity:.0f} B each")


# ---------------------------------------------------------------------------------------------------------------
# Advantage
# ---------------------------------------------------------------------------------------------------------------
def build_advantage_inputs(size: dict, seed: int = 0):
    """Token-level outcome rewards, response masks of random lengths and verl-style uid strings."""
    import numpy as np
    import torch

    generator = torch.Generator().manual_seed(seed)
    batch, length, group = size["responses"], size["response_tokens"], size["group_size"]
    lengths = torch.randint(1, length + 1, (batch,), generator=generator)
    positions = torch.arange(length)
    response_mask = (positions.unsqueeze(0) < lengths.unsqueeze(1)).to(torch.int64)
    # Hard and easy groups alike: a per-group success rate, then Bernoulli rewards.
    rate = torch.rand(batch // group + 1, generator=generator).repeat_interleave(group)[:batch]
    rate = torch.where(torch.rand(rate.shape, generator=generator) < 0.4, torch.zeros_like(rate), rate)
    scores = (torch.rand(batch, generator=generator) < rate).to(torch.float32)
    token_level_rewards = torch.zeros(batch, length, dtype=torch.float32)
    token_level_rewards[torch.arange(batch), lengths - 1] = scores
    uids = [str(uuid.UUID(int=int(i), version=4)) for i in range(batch // group + 1)]
    index = np.array([uids[i // group] for i in range(batch)], dtype=object)
    return token_level_rewards, response_mask, index


def run_advantage(size: dict, report: Report) -> None:
    from omegaconf import OmegaConf
    from verl.trainer.ppo import core_algos

    from recipe.zppo.algo.advantage import compute_zppo_outcome_advantage

    rewards, mask, index = build_advantage_inputs(size)
    config = OmegaConf.create({"zppo": {"norm": "batch_nonzero"}})
    repeat = size["advantage_repeat"]

    def zppo():
        return compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=config,
                                              index=index)

    def grpo():
        return core_algos.compute_grpo_outcome_advantage(token_level_rewards=rewards.clone(), response_mask=mask,
                                                         index=index)

    def grpo_vectorized():
        return core_algos.compute_grpo_vectorized_outcome_advantage(token_level_rewards=rewards.clone(),
                                                                    response_mask=mask, index=index)

    clone_times = time_calls(lambda: rewards.clone(), repeat=repeat)  # verl's estimators write into their input
    results = {}
    for name, fn, runs in (("zppo (batch_nonzero)", zppo, repeat), ("verl grpo", grpo, max(1, repeat // 2)),
                           ("verl grpo_vectorized", grpo_vectorized, repeat)):
        times = time_calls(fn, repeat=runs, warmup=1)
        if name != "zppo (batch_nonzero)":  # their input copy is not their work
            clone = summarise(clone_times)
            times = Durations([t - clone["median_s"] for t in times], [t - clone["cpu_median_s"] for t in times.cpu])
        results[name] = summarise(times)
    # The same inputs give the same advantages under `group` (verl's GRPO): a correctness guard for the timing.
    group_config = OmegaConf.create({"zppo": {"norm": "group"}})
    ours = compute_zppo_outcome_advantage(token_level_rewards=rewards, response_mask=mask, config=group_config,
                                          index=index)[0]
    theirs = grpo_vectorized()[0]
    max_diff = float((ours - theirs).abs().max())
    for name, stats in results.items():
        report.row("advantage", name, **stats, responses=size["responses"], response_tokens=size["response_tokens"],
                   group_size=size["group_size"])
    zppo_s = goal_seconds(results["zppo (batch_nonzero)"])
    grpo_s = goal_seconds(results["verl grpo"])
    report.row("advantage", "zppo / verl grpo", ratio=zppo_s / grpo_s,
               ratio_vs_vectorized=zppo_s / goal_seconds(results["verl grpo_vectorized"]),
               group_mode_max_abs_diff_vs_verl=max_diff)
    report.goal("advantage time, zppo", zppo_s, GOAL_ADVANTAGE_S, "s",
                note=f"{size['responses']} x {size['response_tokens']} tokens")
    report.goal("advantage ratio zppo / verl grpo", zppo_s / grpo_s, GOAL_ADVANTAGE_RATIO, "x")


# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="reduced sizes (seconds; for CI)")
    parser.add_argument("--only", default=",".join(PARTS), help=f"comma-separated subset of {PARTS}")
    parser.add_argument("--tokenizer", default=None, help="Hugging Face tokenizer folder (default: tiny BPE)")
    parser.add_argument("--cpu", type=int, default=0, help="core to pin to (-1: no pinning)")
    parser.add_argument("--repeat", type=int, default=None, help="timed repetitions of the reformulation parts")
    parser.add_argument("--profile", action="store_true", help="print a cProfile of one reformulate call")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=INT",
                        help=f"override a size, e.g. --set questions=256 (keys: {', '.join(PAPER)})")
    parser.add_argument("--out", default=str(default_output("bench_host")), help="JSON report path")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    parts = [p.strip() for p in args.only.split(",") if p.strip()]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise SystemExit(f"--only: unknown part(s) {unknown}; choose from {PARTS}")
    size = dict(SMOKE if args.smoke else PAPER)
    for item in args.set:
        key, _, value = item.partition("=")
        if key not in size:
            raise SystemExit(f"--set {item}: unknown size key {key!r}; keys: {sorted(size)}")
        size[key] = int(value)
    pinning = pin_to_one_core(args.cpu)
    report = Report("bench_host", {"smoke": args.smoke, "sizes": size, "parts": parts, **pinning})
    repeat = args.repeat or (2 if args.smoke else 5)

    if "reformulation" in parts:
        tokenizer, name = load_tokenizer(args.tokenizer)
        report.settings["tokenizer"] = name
        print(f"[bench_host] reformulation: {size['questions']} x {size['candidates']} rollouts of "
              f"{size['rollout_tokens']} tokens, candidates of {size['compressed_tokens']}, tokenizer {name}",
              flush=True)
        run_reformulation(tokenizer, size, report, repeat, args.profile)
    if "buffer" in parts:
        print(f"[bench_host] buffer: capacity {size['buffer_capacity']}", flush=True)
        run_buffer(size, report)
    if "advantage" in parts:
        print(f"[bench_host] advantage: {size['responses']} x {size['response_tokens']} tokens", flush=True)
        run_advantage(size, report)

    report.notes.append("goals are checked on the process's CPU time (single-threaded work: its wall time on an "
                        "idle core); wall-clock columns include other processes' turns on a shared machine")
    return report.finish([("section", "section"), ("name", "what"), ("median_s", "median"), ("cpu_median_s", "cpu"),
                        ("min_s", "min"), ("cpu_min_s", "cpu min"), ("p99_s", "p99"), ("cpu_p99_s", "cpu p99"),
                        ("max_s", "max"), ("calls", "calls"), ("ratio", "ratio"),
                        ("bytes", "bytes")], args.out)


if __name__ == "__main__":
    sys.exit(main())
