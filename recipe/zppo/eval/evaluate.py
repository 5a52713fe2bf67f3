"""Evaluate a model on the benchmark suite through the trainer's own validation path.

    python -m recipe.zppo.eval --model PATH --suite llm,vlm,video --data DIR --out OUT [--n 1] [--temperature 0]
                               [--top-p 1.0] [--name NAME] [hydra overrides ...]

- ``--model``: a Hugging Face model folder, or a verl training checkpoint (a run folder, a ``global_step_N`` folder
  or its ``actor`` folder), converted first with verl's own model merger
  (``python -m verl.model_merger merge --backend fsdp``) into ``OUT/merged_model``.
- ``--suite``: families (``llm``, ``vlm``, ``video``) and/or benchmark names; ``--data``: the folder
  ``python -m data_prep.benchmarks`` wrote (``<name>.parquet``). A missing file or an unknown name is one line;
  the other benchmarks still run and the results mark the gap.
- The run is ``python -m recipe.zppo.main_zppo trainer.val_only=true`` on the converted files: the same dataset
  class, rollout engine, reward function (``recipe.zppo.reward.compute_score``, wrapped only to carry the row's
  benchmark and question id into verl's per-row dump) and answer format as validation during training, so the
  numbers are comparable with training-time ``val-core/<benchmark>/acc``. Greedy by default; ``--n K`` samples K
  answers per question (temperature ``--temperature``, default 1.0 when K > 1) for avg@K and pass@k.
- Extra arguments are Hydra overrides passed on unchanged (e.g. ``preset=cpu``, ``data.max_prompt_length=8192``,
  ``actor_rollout_ref.rollout.tensor_model_parallel_size=2``, judge settings under
  ``+reward.custom_reward_function.reward_kwargs.*``).

Outputs in OUT: ``results.json`` and ``results.csv`` (per benchmark: accuracy = avg@n in percent, pass@k, share of
unparseable answers, questions scored vs rows in the file; per family: the average over its benchmarks; the model,
config and date), ``generations/<step>.jsonl`` (verl's per-answer dump: prompt, response, gold, score, ``acc``,
``pred``, ``data_source``, ``question_id``), ``run/metrics/*.jsonl`` (verl's logged validation metrics) and
``eval.log``. Exit status: 0 when every requested benchmark was evaluated, 1 when some were missing (results
written for the others), the trainer's status when it failed.

This module is also the reward function of the run (``reward.custom_reward_function.path=pkg://recipe.zppo.eval.evaluate``,
``name=compute_score_with_ids``): it imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

REWARD_FN_NAME = "compute_score_with_ids"
RESULTS_FILE = "results.json"
VAL_BATCH_SIZE = 256  # prompts per validation batch (data.val_batch_size; verl prints that the key is deprecated)
CSV_FILE = "results.csv"


# ------------------------------------------------------------------------------------------------ reward wrapper


def compute_score_with_ids(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
    """The project's reward (``recipe.zppo.reward.compute_score``, unchanged score) plus two string keys verl copies
    into its per-answer dump: ``data_source`` (the benchmark) and ``question_id``. verl's validation metrics skip
    string keys, so the logged numbers are those of the plain reward."""
    from recipe.zppo.reward import compute_score

    result = dict(compute_score(data_source, solution_str, ground_truth, extra_info, **kwargs))
    info = extra_info if isinstance(extra_info, dict) else {}
    result["data_source"] = str(data_source or "")
    result["question_id"] = str(info.get("question_id") or "")
    return result


# ------------------------------------------------------------------------------------------------ scoring


def pass_at_k(n: int, correct: int, k: int) -> float:
    """Unbiased pass@k of one question with ``correct`` right answers out of ``n`` samples (Chen et al. 2021)."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - correct < k:
        return 1.0
    return 1.0 - math.comb(n - correct, k) / math.comb(n, k)


def ks_for(n: int) -> list[int]:
    """The k of pass@k reported for n samples: 1, powers of two below n, and n."""
    ks, k = [1], 2
    while k < n:
        ks.append(k)
        k *= 2
    if n > 1:
        ks.append(n)
    return ks


SCORING_KEYS = ("data_source", "question_id", "uid", "acc", "score", "route")


def read_generations(path: Path) -> Iterator[dict]:
    """The scoring fields of verl's per-answer dump, one answer at a time (responses are not kept in memory)."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            if line.strip():
                row = json.loads(line)
                yield {key: row.get(key) for key in SCORING_KEYS}


def question_key(row: dict) -> str:
    """Which question a dumped answer belongs to: the question id (``uid`` prefix when absent)."""
    qid = row.get("question_id")
    if qid:
        return str(qid)
    return str(row.get("uid", "")).rsplit("_", 2)[0]


def score_benchmarks(rows: Iterable[dict]) -> dict[str, dict]:
    """Per benchmark (``data_source`` of each dumped answer): questions, samples, accuracy (avg@n, percent),
    pass@k (percent), share of unparseable answers (percent)."""
    by_bench: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_bench[str(row.get("data_source") or "unknown")][question_key(row)].append(row)
    out = {}
    for bench, questions in by_bench.items():
        sizes = {len(answers) for answers in questions.values()}
        n = min(sizes)
        per_question_acc = []
        correct_counts = []
        unparseable = 0
        samples = 0
        for answers in questions.values():
            accs = [float(a.get("acc", a.get("score", 0.0)) or 0.0) >= 0.5 for a in answers]
            per_question_acc.append(sum(accs) / len(accs))
            correct_counts.append((len(accs), sum(accs)))
            unparseable += sum(a.get("route") == "unparseable" for a in answers)
            samples += len(answers)
        entry = {
            "questions": len(questions),
            "samples": samples,
            "n": n,
            "acc": 100.0 * sum(per_question_acc) / len(per_question_acc),
            "unparseable": 100.0 * unparseable / samples,
        }
        for k in ks_for(n):
            entry[f"pass@{k}"] = 100.0 * sum(pass_at_k(c_n, c, k) for c_n, c in correct_counts) / len(correct_counts)
        if len(sizes) > 1:
            entry["uneven_samples"] = sorted(sizes)
        out[bench] = entry
    return out


def family_averages(benchmarks: dict[str, dict], metric: str = "acc") -> dict[str, dict]:
    """Average of ``metric`` over the evaluated benchmarks of each family; the missing ones are listed."""
    families: dict[str, dict] = {}
    for name, entry in benchmarks.items():
        family = families.setdefault(entry.get("family", "other"), {"benchmarks": [], "missing": []})
        if entry.get("status") == "ok":
            family["benchmarks"].append(name)
        else:
            family["missing"].append(name)
    for family in families.values():
        values = [benchmarks[name][metric] for name in family["benchmarks"]]
        family["avg"] = sum(values) / len(values) if values else None
        family["complete"] = not family["missing"]
    return families


def verl_core_metrics(metrics_file: Path | None) -> dict[str, float]:
    """verl's ``val-core/<benchmark>/acc/mean@N`` of the run, in percent, by benchmark."""
    if metrics_file is None or not metrics_file.exists():
        return {}
    out = {}
    for line in metrics_file.read_text().splitlines():
        if not line.strip():
            continue
        for key, value in json.loads(line).get("data", {}).items():
            parts = key.split("/")
            if len(parts) == 4 and parts[0] == "val-core" and parts[2] == "acc" and parts[3].startswith("mean@"):
                out[parts[1]] = 100.0 * float(value)
    return out


# ------------------------------------------------------------------------------------------------ model


def _is_hf_folder(path: Path) -> bool:
    return (path / "config.json").is_file()


def actor_dir_of(path: Path) -> Path | None:
    """The FSDP actor folder of a verl checkpoint given as a run folder, a global_step_N folder or the actor folder."""
    latest = path / "latest_checkpointed_iteration.txt"
    if latest.is_file():
        path = path / f"global_step_{latest.read_text().strip()}"
    if (path / "actor").is_dir():
        path = path / "actor"
    if any(path.glob("model_world_size_*_rank_*.pt")):
        return path
    return None


def is_vision_model(model: Path) -> bool:
    """Whether a Hugging Face folder holds a vision-language model (its config has a vision part)."""
    try:
        config = json.loads((model / "config.json").read_text())
    except (OSError, json.JSONDecodeError):
        return True  # unknown: let the trainer decide
    return "vision_config" in config or "visual" in config


def prepare_model(model: Path, out: Path, log) -> Path:
    """A Hugging Face folder to evaluate: ``model`` itself, or a verl checkpoint merged into ``out/merged_model``."""
    model = model.expanduser().resolve()
    if _is_hf_folder(model):
        return model
    actor = actor_dir_of(model)
    if actor is None:
        raise SystemExit(f"eval: --model {model}: neither a Hugging Face model folder (config.json) nor a verl "
                         "checkpoint (global_step_N/actor with model_world_size_*_rank_*.pt)")
    target = out / "merged_model"
    marker = target / "zppo_merged_from.txt"
    if marker.is_file() and marker.read_text().strip() == str(actor) and _is_hf_folder(target):
        log(f"eval: reusing {target} (merged from {actor})")
        return target
    if target.exists():
        shutil.rmtree(target)
    command = [sys.executable, "-m", "verl.model_merger", "merge", "--backend", "fsdp", "--local_dir", str(actor),
               "--target_dir", str(target)]
    log(f"eval: merging the checkpoint with verl's model merger: {' '.join(command)}")
    merged = subprocess.run(command, capture_output=True, text=True)
    if merged.returncode != 0 or not _is_hf_folder(target):
        raise SystemExit(f"eval: model merger failed (exit {merged.returncode}):\n{merged.stderr[-3000:]}")
    marker.write_text(str(actor))
    return target


# ------------------------------------------------------------------------------------------------ benchmarks


def select_benchmarks(tokens: list[str], data: Path, log) -> tuple[list[str], dict[str, dict], list[str]]:
    """(benchmarks to run, an entry for every requested benchmark, unknown names) for suite tokens; a benchmark
    without its file gets status "missing"."""
    from data_prep.benchmarks import BENCHMARKS, FAMILIES, resolve

    manifest_path = data / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    names, unknown = resolve(tokens)
    entries: dict[str, dict] = {}
    unknown_names = []
    for token in unknown:  # a converted benchmark outside the registry is allowed when its file is there
        if (data / f"{token}.parquet").is_file():
            names.append(token)
        else:
            log(f"eval: {token}: unknown benchmark or family (families: {', '.join(FAMILIES)}; benchmarks: "
                "python -m data_prep.benchmarks --list); skipped")
            unknown_names.append(token)
    run = []
    for name in names:
        registered = BENCHMARKS.get(name)
        entry = {
            "family": (registered.family if registered else manifest.get(name, {}).get("family", "other")),
            "title": (registered.title if registered else manifest.get(name, {}).get("title", name)),
        }
        path = data / f"{name}.parquet"
        if not path.is_file():
            log(f"eval: {name}: missing {path} (convert it: python -m data_prep.benchmarks --suite {name} "
                f"--src ROOT --out {data}); skipped")
            entry["status"] = "missing"
        else:
            import pyarrow.parquet as pq

            entry["rows_in_file"] = pq.ParquetFile(str(path)).metadata.num_rows
            entry["file"] = str(path)
            run.append(name)
        entries[name] = entry
    return run, entries, unknown_names


# ------------------------------------------------------------------------------------------------ the run


def _hydra_list(paths: list[str]) -> str:
    return "[" + ",".join("'" + p.replace("\\", "\\\\").replace("'", "\\'") + "'" for p in paths) + "]"


def build_overrides(model: Path, files: list[str], out: Path, n: int, temperature: float, top_p: float,
                    user: list[str]) -> list[str]:
    """The main_zppo overrides of an evaluation (the user's come last and win)."""
    do_sample = n > 1 or temperature > 0
    return [
        f"actor_rollout_ref.model.path={model}",
        f"data.val_files={_hydra_list(files)}",
        # The trainer builds its training set too: one small batch of the first benchmark is enough.
        f"data.train_files={_hydra_list(files[:1])}",
        "data.train_max_samples=${data.train_batch_size}",
        # Batches of prompts, not the whole suite at once: verl keeps a batch's prompts and image inputs in memory.
        f"data.val_batch_size={VAL_BATCH_SIZE}",
        "trainer.val_only=true",
        "trainer.val_before_train=true",
        "trainer.total_training_steps=1",
        "trainer.resume_mode=disable",
        f"trainer.validation_data_dir={out / 'generations'}",
        f"trainer.default_local_dir={out / 'run'}",
        "trainer.logger=[console,file]",
        "trainer.experiment_name=eval",
        f"actor_rollout_ref.rollout.val_kwargs.n={n}",
        f"actor_rollout_ref.rollout.val_kwargs.do_sample={str(do_sample).lower()}",
        f"actor_rollout_ref.rollout.val_kwargs.temperature={temperature if do_sample else 0}",
        f"actor_rollout_ref.rollout.val_kwargs.top_p={top_p}",
        "reward.custom_reward_function.path=pkg://recipe.zppo.eval.evaluate",
        f"reward.custom_reward_function.name={REWARD_FN_NAME}",
        *user,
    ]


def run_trainer(overrides: list[str], log_path: Path) -> int:
    """``python -m recipe.zppo.main_zppo OVERRIDES``, its output shown and kept in ``log_path``."""
    command = [sys.executable, "-m", "recipe.zppo.main_zppo", *overrides]
    with open(log_path, "w") as log_file:
        log_file.write(" ".join(command) + "\n")
        log_file.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            sys.stdout.write(line)
        return process.wait()


def _newest(paths: Iterable[Path], since: float) -> Path | None:
    fresh = [p for p in paths if p.stat().st_mtime >= since - 1]
    return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None


def write_csv(results: dict, path: Path) -> None:
    ks = sorted({key for entry in results["benchmarks"].values() for key in entry if key.startswith("pass@")},
                key=lambda k: int(k.split("@")[1]))
    columns = ["model", "date", "family", "benchmark", "title", "status", "questions", "rows_in_file", "n", "acc",
               *ks, "unparseable"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for name, entry in results["benchmarks"].items():
            writer.writerow({"model": results["model"], "date": results["date"], "benchmark": name, **entry})
        for family, entry in results["families"].items():
            writer.writerow({"model": results["model"], "date": results["date"], "family": family,
                             "benchmark": f"{family} average", "title": f"{family} average",
                             "status": "complete" if entry["complete"] else "partial", "acc": entry["avg"]})


def collect(out: Path, entries: dict[str, dict], started: float, log) -> dict[str, dict]:
    """Fill the entries of the benchmarks that ran from the per-answer dump; cross-check with verl's metrics."""
    dumps = _newest((out / "generations").glob("*.jsonl"), started)
    metrics_file = _newest((out / "run" / "metrics").glob("*.jsonl"), started)
    scores = score_benchmarks(read_generations(dumps)) if dumps else {}
    logged = verl_core_metrics(metrics_file)
    for name, entry in entries.items():
        if "file" not in entry:
            continue
        if name not in scores:
            log(f"eval: {name}: no answers in the trainer's dump (all prompts filtered out as over-long?)")
            entry["status"] = "no_answers"
            continue
        entry.update(scores[name], status="ok")
        if entry["questions"] < entry["rows_in_file"]:
            log(f"eval: {name}: {entry['questions']} of {entry['rows_in_file']} questions scored (the others were "
                "filtered out as longer than data.max_prompt_length, or failed)")
        if name in logged:
            entry["verl_acc"] = logged[name]
            if abs(logged[name] - entry["acc"]) > 1e-6:
                log(f"eval: {name}: verl logged acc {logged[name]:.4f} vs {entry['acc']:.4f} from the dump "
                    "(verl counts failed rollouts as wrong)")
    return {"generations": str(dumps) if dumps else None, "metrics_file": str(metrics_file) if metrics_file else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.zppo.eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="Hugging Face model folder or verl checkpoint")
    parser.add_argument("--suite", default="llm,vlm,video", help="families and/or benchmark names, comma-separated")
    parser.add_argument("--data", required=True, type=Path, help="folder of converted benchmarks (<name>.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="output folder")
    parser.add_argument("--n", type=int, default=1, help="answers per question (default 1: greedy)")
    parser.add_argument("--temperature", type=float, default=None,
                        help="sampling temperature (default: 0 for n=1, 1.0 for n>1)")
    parser.add_argument("--top-p", type=float, default=1.0)
    parser.add_argument("--name", default=None, help="method name shown in reports (default: the output folder name)")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (Hydra overrides are written key=value)")
    if args.n < 1:
        parser.error("--n must be >= 1")
    temperature = args.temperature if args.temperature is not None else (1.0 if args.n > 1 else 0.0)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = args.data.expanduser().resolve()
    tokens = [t for t in args.suite.split(",") if t.strip()]
    run, entries, unknown = select_benchmarks(tokens, data, log)
    results = {
        "name": args.name or out.name,
        "model": str(args.model),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "suite": tokens,
        "metric": "acc",
        "config": {"n": args.n, "temperature": temperature, "top_p": args.top_p,
                   "do_sample": args.n > 1 or temperature > 0, "overrides": overrides},
        "benchmarks": entries,
        "unknown": unknown,
    }
    status = 0 if len(run) == len(entries) and not unknown else 1
    if run:
        model = prepare_model(args.model, out, log)
        results["model_path"] = str(model)
        if not is_vision_model(model):  # image and video rows need a processor: skip them, run the rest
            for name in [n for n in run if entries[n]["family"] in ("vlm", "video")]:
                log(f"eval: {name}: skipped: {model} is a text-only model (its config.json has no vision_config)")
                entries[name]["status"] = "text_only_model"
                run.remove(name)
                status = 1
    if run:
        # A fresh dump: the trainer writes generations/<step>.jsonl and one metrics file per launch.
        shutil.rmtree(out / "generations", ignore_errors=True)
        files = [entries[name]["file"] for name in run]
        all_overrides = build_overrides(model, files, out, args.n, temperature, args.top_p, overrides)
        results["config"]["command"] = [sys.executable, "-m", "recipe.zppo.main_zppo", *all_overrides]
        started = time.time()
        code = run_trainer(all_overrides, out / "eval.log")
        if code != 0:
            log(f"eval: the trainer failed (exit {code}); see {out / 'eval.log'}")
            for name in run:
                entries[name]["status"] = "failed"
            status = code
        else:
            results.update(collect(out, entries, started, log))
            if any(entries[name].get("status") != "ok" for name in run):
                status = status or 1
    else:
        log("eval: no benchmark to run")
    results["families"] = family_averages(entries)
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    write_csv(results, out / CSV_FILE)
    for family, entry in results["families"].items():
        avg = "n/a" if entry["avg"] is None else f"{entry['avg']:.2f}"
        gap = f" (missing: {', '.join(entry['missing'])})" if entry["missing"] else ""
        log(f"eval: {family}: average {avg} over {len(entry['benchmarks'])} benchmarks{gap}")
    log(f"eval: results in {out / RESULTS_FILE} and {out / CSV_FILE}")
    return status


if __name__ == "__main__":
    sys.exit(main())
