"""Command line of ``python -m data_prep.teacher_responses``.

See the package docstring and docs/teacher_responses.md."""

from __future__ import annotations

import argparse
import json
import sys

from .engines import EngineUnavailable
from .runner import Options, Run, StopEarly
from .shards import InputError

EXIT_BAD_INPUT = 2
EXIT_STOPPED = 3


def _json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


def build_parser() -> argparse.ArgumentParser:
    defaults = Options(data="", teacher="", out="")
    p = argparse.ArgumentParser(
        prog="python -m data_prep.teacher_responses",
        description="Generate k teacher responses per training question, score them with the project's reward, "
                    "and write them into extra_info.teacher_responses / teacher_correct (sharded, resumable).")
    p.add_argument("--data", required=True, help="input: a parquet file, a folder of parquet shards, or a glob")
    p.add_argument("--teacher", required=True, help="teacher model: a Hugging Face folder (or hub id for vLLM)")
    p.add_argument("--out", required=True, help="output folder (shards mirror the input's, plus summary.json)")
    p.add_argument("--k", type=int, default=defaults.k, help="responses per question (default %(default)s)")
    p.add_argument("--engine", choices=("hf", "vllm"), default=defaults.engine,
                   help="vllm: GPU, offline vllm.LLM; hf: transformers generate (CPU or any device). "
                        "Default %(default)s")
    g = p.add_argument_group("sampling (part of the run's identity: a rerun with other values is refused)")
    g.add_argument("--temperature", type=float, default=defaults.temperature,
                   help="0 = greedy (k identical responses). Default %(default)s")
    g.add_argument("--top-p", type=float, default=defaults.top_p, help="default %(default)s")
    g.add_argument("--top-k", type=int, default=defaults.top_k, help="0 = off. Default %(default)s")
    g.add_argument("--max-tokens", type=int, default=defaults.max_tokens,
                   help="new tokens per response; longer ones are cut (and then have no final answer). "
                        "Default %(default)s")
    g.add_argument("--seed", type=int, default=defaults.seed,
                   help="a question's responses depend only on (seed, question id). Default %(default)s")
    g.add_argument("--chat-template-kwargs", type=_json_object, default={},
                   help='JSON object passed to the teacher\'s chat template, e.g. \'{"enable_thinking": true}\'')
    g.add_argument("--dtype", default=defaults.dtype,
                   help="model dtype; auto = bfloat16 on GPU, float32 on CPU (hf), vLLM's choice (vllm)")
    g.add_argument("--judge-url", default=None, help="judge endpoint for answers the parsers cannot read "
                   "(default: ZPPO_JUDGE_URL or off; see docs/rewards.md)")
    g.add_argument("--judge-model", default=None, help="judge model name (default: ZPPO_JUDGE_MODEL)")
    o = p.add_argument_group("layout and resuming")
    o.add_argument("--shard-rows", type=int, default=None,
                   help="re-shard: at most this many rows per output shard (default: one output per input file)")
    o.add_argument("--batch-size", type=int, default=None,
                   help="questions per engine call, and per progress flush (default 8 for hf, 256 for vllm)")
    o.add_argument("--overwrite", action="store_true",
                   help="if --out holds a run with other inputs/options, delete what it wrote and start over")
    o.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    e = p.add_argument_group("engine")
    e.add_argument("--device", default=defaults.device, help="hf: cpu, cuda, cuda:1, ... (default: auto)")
    e.add_argument("--threads", type=int, default=None, help="hf: torch CPU threads (default: torch's own)")
    e.add_argument("--tensor-parallel-size", type=int, default=defaults.tensor_parallel_size,
                   help="vllm: GPUs per model (default %(default)s)")
    e.add_argument("--gpu-memory-utilization", type=float, default=defaults.gpu_memory_utilization,
                   help="vllm (default %(default)s)")
    e.add_argument("--max-model-len", type=int, default=None, help="vllm: context length (default: the model's)")
    e.add_argument("--max-images", type=int, default=defaults.max_images,
                   help="vllm: images per prompt it reserves memory for; rows with more are skipped "
                        "(default %(default)s)")
    e.add_argument("--trust-remote-code", action="store_true")
    # Test-only: simulate an interrupted run (exit code 3) after N finished shards / N generated rows.
    p.add_argument("--stop-after-shards", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--stop-after-rows", type=int, default=None, help=argparse.SUPPRESS)
    return p


def options_from(argv: list[str] | None = None) -> Options:
    args = build_parser().parse_args(argv)
    return Options(**vars(args))


def print_summary(summary: dict, out: str) -> None:
    rows = [("data_source", "rows", "answered", "responses", "correct", ">=1 correct")]
    for source, v in summary["by_data_source"].items():
        share = "-" if v["share_with_correct"] is None else f"{100 * v['share_with_correct']:.1f}%"
        rows.append((source, v["rows"], v["rows_answered"], v["responses"], v["correct"], share))
    share = summary["share_with_correct"]
    rows.append(("all", summary["rows"], summary["rows_answered"], summary["responses"],
                 summary["correct_responses"], "-" if share is None else f"{100 * share:.1f}%"))
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    for reason, count in summary["rows_without_responses"].items():
        ids = ", ".join(summary["rows_without_responses_sample_ids"].get(reason, []))
        print(f"without responses ({reason}): {count}  e.g. {ids}")
    gen = summary["generation"]
    print(f"generation: {gen['completion_tokens']} tokens in {gen['seconds']:.1f} s "
          f"({gen['tokens_per_s']} tokens/s); this run: {summary['this_run']['wall_time_s']:.1f} s wall, "
          f"{summary['this_run']['rows_generated']} rows generated, "
          f"{summary['this_run']['shards_skipped']} finished shard(s) skipped")
    print(f"written: {out} ({len(summary['shards'])} shard(s), summary.json)")


def main(argv: list[str] | None = None) -> int:
    options = options_from(argv)
    try:
        summary = Run(options)()
    except (InputError, EngineUnavailable) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except StopEarly as stop:
        print(f"[teacher] {stop}; rerun the same command to continue", file=sys.stderr)
        return EXIT_STOPPED
    print_summary(summary, options.out)
    return 0
