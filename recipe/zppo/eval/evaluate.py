"""Evaluate a model on the benchmark suite through the trainer's own validation path (App. B.2).

    python -m recipe.zppo.eval --model PATH --suite llm,vlm,video --data DIR --out OUT [--n 1] [--decoding auto]
                               [--temperature T] [--top-p P] [--launch-size 1] [--redo] [--name NAME]
                               [hydra overrides ...]

- ``--model``: a Hugging Face model folder, or a verl training checkpoint (a run folder, a ``global_step_N`` folder
  or its ``actor`` folder), converted first with verl's own model merger
  (``python -m verl.model_merger merge --backend fsdp``) into ``OUT/merged_model``.
- ``--suite``: families (``llm``, ``vlm``, ``video``) and/or benchmark names; ``--data``: the folder
  ``python -m data_prep.benchmarks`` wrote (``<name>.parquet``). A missing file or an unknown name is one line;
  the other benchmarks still run and the results mark the gap.
- Each launch is ``python -m recipe.zppo.main_zppo trainer.val_only=true`` on the converted files: the same dataset
  class, rollout engine and answer format as validation during training. The reward is ``compute_score_with_ids``
  below: the row's benchmark scoring (``scoring.py``: Exact+Judge, Rule+Judge, Det., BenchJudge as Tabs 5-7 say;
  rows without ``extra_info["scoring"]`` get the training reward unchanged) plus the row's benchmark and question
  id for verl's per-answer dump.
- Decoding (``decoding.py``): App. B.2's single configuration (temperature 0.6, top-p 0.95, top-k 20, min-p 0,
  presence penalty 1.5, repetition penalty 1.0, 12,288 new tokens, max model length 262,144) for every benchmark;
  ``--decoding cpu`` (automatic with ``preset=cpu``) keeps its sampling values and the CPU preset's lengths.
  ``--n K`` samples K answers per question for avg@K and pass@k.
- Progress and resume: benchmarks run ``--launch-size`` at a time (default one per trainer launch); a line says how
  many benchmarks are done, the rows scored and the judge calls of the running launch (every 30 s,
  ``ZPPO_EVAL_PROGRESS_S``), and one line per finished benchmark. A finished benchmark is recorded in
  ``OUT/benchmarks/<name>/done.json``; running the same command again (same model, files, decoding and overrides)
  evaluates only the benchmarks not finished, so a crash costs the running launch only.
- Extra arguments are Hydra overrides passed on unchanged (e.g. ``preset=cpu``, ``data.max_prompt_length=8192``,
  ``actor_rollout_ref.rollout.tensor_model_parallel_size=2``, the judge under
  ``+reward.custom_reward_function.reward_kwargs.judge_url=... judge_model=...``).

Outputs in OUT: ``results.json`` and ``results.csv`` (per benchmark: accuracy = avg@n in percent, pass@k, shares of
unparseable and truncated answers, judge calls, questions scored vs rows in the file; per family: the average over
its benchmarks; the model, config and date; rewritten after every launch), ``benchmarks/<name>/generations.jsonl``
(verl's per-answer dump of that benchmark: prompt, response, gold, score, ``acc``, ``pred``, ``route``, ``reason``,
``judge_calls``, ``truncated``, ``data_source``, ``question_id``) and ``done.json``, ``run/metrics/*.jsonl`` (verl's
logged validation metrics) and ``eval.log``. Exit status: 0 when every requested benchmark was evaluated, 1 when
some were missing (results written for the others), the trainer's status when a launch failed.

This module is also the reward function of the run (``reward.custom_reward_function.path=pkg://recipe.zppo.eval.evaluate``,
``name=compute_score_with_ids``): it imports nothing heavy at module level.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

REWARD_FN_NAME = "compute_score_with_ids"
RESULTS_FILE = "results.json"
VAL_BATCH_SIZE = 256  # prompts per validation batch (data.val_batch_size; verl prints that the key is deprecated)
CSV_FILE = "results.csv"


# ------------------------------------------------------------------------------------------------ reward wrapper

PROGRESS_KWARG = "progress_dir"
PROGRESS_EVERY_S = 2.0  # a reward process rewrites its progress file at most this often
_progress = {"rows": 0, "judge_calls": 0, "written": 0.0}
_progress_lock = threading.Lock()


def _record_progress(progress_dir, result: dict) -> None:
    """Count one scored row (and its judge calls) in this process's progress file under ``progress_dir`` (the eval
    CLI sums the files of a launch for its progress line)."""
    with _progress_lock:
        _progress["rows"] += 1
        _progress["judge_calls"] += int(float(result.get("judge_calls", 0) or 0))
        now = time.monotonic()
        if now - _progress["written"] < PROGRESS_EVERY_S and _progress["rows"] > 1:
            return
        _progress["written"] = now
        counts = {"rows": _progress["rows"], "judge_calls": _progress["judge_calls"]}
    try:
        folder = Path(str(progress_dir))
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / f"{socket.gethostname()}-{os.getpid()}.json"
        temporary = target.with_suffix(".tmp")
        temporary.write_text(json.dumps(counts))
        os.replace(temporary, target)
    except OSError:
        pass  # progress is a convenience: never fail a score over it


def compute_score_with_ids(data_source=None, solution_str=None, ground_truth=None, extra_info=None, **kwargs) -> dict:
    """The evaluation's reward: the row's benchmark scoring (``scoring.score_answer``: Tabs 5-7; rows without
    ``extra_info["scoring"]`` get the project's reward, ``recipe.zppo.reward.compute_score``, unchanged) plus two
    string keys verl copies into its per-answer dump: ``data_source`` (the benchmark) and ``question_id``. verl's
    validation metrics skip string keys. ``progress_dir`` (a reward kwarg the eval CLI sets) counts rows and judge
    calls for the progress line."""
    from recipe.zppo.eval.scoring import score_answer
    from recipe.zppo.reward import ROUTES

    progress_dir = kwargs.pop(PROGRESS_KWARG, None)
    result = dict(score_answer(data_source, solution_str, ground_truth, extra_info, **kwargs))
    if kwargs.get("route_metrics"):  # every row the same keys (verl builds its columns from the first row's)
        for name in ROUTES:
            result[f"route_{name}"] = 1.0 if result.get("route") == name else 0.0
    info = extra_info if isinstance(extra_info, dict) else {}
    result["data_source"] = str(data_source or "")
    result["question_id"] = str(info.get("question_id") or "")
    if progress_dir:
        _record_progress(progress_dir, result)
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


SCORING_KEYS = ("data_source", "question_id", "uid", "acc", "score", "route", "judge_calls", "truncated")


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
    """Per benchmark (``data_source`` of each dumped answer): questions, samples, accuracy (avg@n, percent: the mean
    of the answers' scores, so graded metrics such as ANLS or MM-Vet's judge score average as the benchmark defines),
    pass@k (percent; an answer counts as correct when its score is >= 0.5), share of unparseable and of truncated
    answers (percent), judge calls."""
    by_bench: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        by_bench[str(row.get("data_source") or "unknown")][question_key(row)].append(row)
    out = {}
    for bench, questions in by_bench.items():
        sizes = {len(answers) for answers in questions.values()}
        n = min(sizes)
        per_question_acc = []
        correct_counts = []
        unparseable = truncated = judge_calls = 0
        samples = 0
        for answers in questions.values():
            scores = [float(a.get("acc", a.get("score", 0.0)) or 0.0) for a in answers]
            per_question_acc.append(sum(scores) / len(scores))
            correct_counts.append((len(scores), sum(score >= 0.5 for score in scores)))
            unparseable += sum(a.get("route") == "unparseable" for a in answers)
            truncated += sum(float(a.get("truncated") or 0.0) >= 0.5 for a in answers)
            judge_calls += int(sum(float(a.get("judge_calls") or 0.0) for a in answers))
            samples += len(answers)
        entry = {
            "questions": len(questions),
            "samples": samples,
            "n": n,
            "acc": 100.0 * sum(per_question_acc) / len(per_question_acc),
            "unparseable": 100.0 * unparseable / samples,
            "truncated": 100.0 * truncated / samples,
            "judge_calls": judge_calls,
        }
        for k in ks_for(n):
            entry[f"pass@{k}"] = 100.0 * sum(pass_at_k(c_n, c, k) for c_n, c in correct_counts) / len(correct_counts)
        if len(sizes) > 1:
            entry["uneven_samples"] = sorted(sizes)
        out[bench] = entry
    return out


def family_averages(benchmarks: dict[str, dict], metric: str = "acc") -> dict[str, dict]:
    """Average of ``metric`` over the evaluated benchmarks of each family; the missing ones are listed. Benchmarks the
    registry marks ``suite="extra"`` (outside the paper's 31) form their own group, "extra", never averaged with the
    paper's families."""
    families: dict[str, dict] = {}
    for name, entry in benchmarks.items():
        key = "extra" if entry.get("suite") == "extra" else entry.get("family", "other")
        family = families.setdefault(key, {"benchmarks": [], "missing": []})
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
            "suite": getattr(registered, "suite", None) or manifest.get(name, {}).get("suite") or "paper",
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


def _hydra_value(text: str) -> str:
    return "'" + str(text).replace("\\", "\\\\").replace("'", "\\'") + "'"


def build_overrides(model: Path, files: list[str], out: Path, n: int, decoding_values: dict, user: list[str],
                    progress_dir: Path | None = None, generations_dir: Path | None = None) -> list[str]:
    """The main_zppo overrides of an evaluation launch (the user's come last and win): validation only, the paper's
    decoding (``decoding.py``), the eval reward, the per-answer dump."""
    from recipe.zppo.eval.decoding import overrides as decoding_overrides

    extra = []
    if progress_dir is not None:
        extra.append(f"+reward.custom_reward_function.reward_kwargs.{PROGRESS_KWARG}={_hydra_value(str(progress_dir))}")
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
        f"trainer.validation_data_dir={generations_dir or out / 'generations'}",
        f"trainer.default_local_dir={out / 'run'}",
        "trainer.logger=[console,file]",
        "trainer.experiment_name=eval",
        *decoding_overrides(decoding_values, n, out),
        "reward.custom_reward_function.path=pkg://recipe.zppo.eval.evaluate",
        f"reward.custom_reward_function.name={REWARD_FN_NAME}",
        *extra,
        *user,
    ]


def run_trainer(overrides: list[str], log_path: Path, echo: bool = True) -> int:
    """``python -m recipe.zppo.main_zppo OVERRIDES``, its output kept in ``log_path`` (appended) and shown when
    ``echo``."""
    command = [sys.executable, "-m", "recipe.zppo.main_zppo", *overrides]
    with open(log_path, "a") as log_file:
        log_file.write(" ".join(command) + "\n")
        log_file.flush()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        assert process.stdout is not None
        for line in process.stdout:
            log_file.write(line)
            if echo:
                sys.stdout.write(line)
        return process.wait()


def _newest(paths: Iterable[Path], since: float) -> Path | None:
    fresh = [p for p in paths if p.stat().st_mtime >= since - 1]
    return max(fresh, key=lambda p: p.stat().st_mtime) if fresh else None


# ------------------------------------------------------------------------------------------------ progress and resume

DONE_FILE = "done.json"
BENCH_DIR = "benchmarks"


def read_progress(progress_dir: Path) -> dict[str, int]:
    """Rows scored and judge calls so far in one launch: the sum of its reward processes' progress files."""
    total = {"rows": 0, "judge_calls": 0}
    for path in progress_dir.glob("*.json"):
        try:
            counts = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for key in total:
            total[key] += int(counts.get(key, 0))
    return total


def progress_bar(done: int, total: int, width: int = 20) -> str:
    filled = int(round(width * done / total)) if total else width
    return "[" + "#" * filled + "-" * (width - filled) + f"] {done}/{total}"


class ProgressMonitor:
    """While a launch runs: one line every ``every_s`` seconds when the counts moved (benchmarks done of all, rows
    scored of the launch's rows, judge calls)."""

    def __init__(self, progress_dir: Path, done: int, total: int, rows: int, names: list[str], log,
                 every_s: float = 30.0):
        self.progress_dir, self.done, self.total, self.rows, self.names = progress_dir, done, total, rows, names
        self.log, self.every_s = log, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._last: dict | None = None

    def line(self) -> str | None:
        counts = read_progress(self.progress_dir)
        if counts == self._last:
            return None
        self._last = counts
        return (f"eval: {progress_bar(self.done, self.total)} benchmarks done; running {', '.join(self.names)}: "
                f"{counts['rows']:,} of {self.rows:,} rows scored, {counts['judge_calls']:,} judge calls")

    def _loop(self) -> None:
        while not self._stop.wait(self.every_s):
            line = self.line()
            if line:
                self.log(line)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def fingerprint(model: Path, entry: dict, config: dict) -> dict:
    """What a finished benchmark was evaluated with; a re-run reuses it only when all of this is the same."""
    path = Path(entry["file"])
    stat = path.stat()
    return {"model": str(model), "file": str(path), "file_size": stat.st_size, "file_mtime": int(stat.st_mtime),
            "n": config["n"], "decoding": config["decoding"], "overrides": config["overrides"]}


def load_done(out: Path, name: str, print_: dict) -> dict | None:
    """The recorded result of a benchmark finished by an earlier run with the same fingerprint, else None."""
    path = out / BENCH_DIR / name / DONE_FILE
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    return record if record.get("fingerprint") == print_ else None


def split_dump(dump: Path, out: Path, names: list[str]) -> dict[str, Path]:
    """Copy each answer of a launch's dump into ``OUT/benchmarks/<data_source>/generations.jsonl`` (fresh files)."""
    targets = {name: out / BENCH_DIR / name / "generations.jsonl" for name in names}
    handles = {}
    try:
        for name, target in targets.items():
            target.parent.mkdir(parents=True, exist_ok=True)
            handles[name] = open(target, "w", encoding="utf-8")
        with open(dump, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                source = str(json.loads(line).get("data_source") or "")
                if source in handles:
                    handles[source].write(line if line.endswith("\n") else line + "\n")
    finally:
        for handle in handles.values():
            handle.close()
    return targets


def write_csv(results: dict, path: Path) -> None:
    ks = sorted({key for entry in results["benchmarks"].values() for key in entry if key.startswith("pass@")},
                key=lambda k: int(k.split("@")[1]))
    columns = ["model", "date", "family", "suite", "benchmark", "title", "status", "questions", "rows_in_file", "n",
               "acc", *ks, "unparseable", "truncated", "judge_calls"]
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for name, entry in results["benchmarks"].items():
            writer.writerow({"model": results["model"], "date": results["date"], "benchmark": name, **entry})
        for family, entry in results["families"].items():
            writer.writerow({"model": results["model"], "date": results["date"], "family": family,
                             "benchmark": f"{family} average", "title": f"{family} average",
                             "status": "complete" if entry["complete"] else "partial", "acc": entry["avg"]})


def collect(out: Path, names: list[str], entries: dict[str, dict], started: float, generations_dir: Path, log,
            model: Path, config: dict) -> None:
    """After a launch: split its dump per benchmark, fill each benchmark's entry from its own answers, cross-check
    with verl's logged metrics, and record every finished benchmark (``OUT/benchmarks/<name>/done.json``)."""
    dump = _newest(generations_dir.glob("*.jsonl"), started)
    metrics_file = _newest((out / "run" / "metrics").glob("*.jsonl"), started)
    files = split_dump(dump, out, names) if dump else {}
    logged = verl_core_metrics(metrics_file)
    for name in names:
        entry = entries[name]
        scores = score_benchmarks(read_generations(files[name])).get(name) if name in files else None
        if not scores:
            log(f"eval: {name}: no answers in the trainer's dump (all prompts filtered out as over-long?)")
            entry["status"] = "no_answers"
            continue
        entry.update(scores, status="ok", generations=str(files[name]))
        if entry["questions"] < entry["rows_in_file"]:
            log(f"eval: {name}: {entry['questions']} of {entry['rows_in_file']} questions scored (the others were "
                "filtered out as longer than data.max_prompt_length, or failed)")
        if name in logged:
            entry["verl_acc"] = logged[name]
            if abs(logged[name] - entry["acc"]) > 1e-6:
                log(f"eval: {name}: verl logged acc {logged[name]:.4f} vs {entry['acc']:.4f} from the dump "
                    "(verl counts failed rollouts as wrong)")
        record = {"fingerprint": fingerprint(model, entry, config), "entry": entry,
                  "date": time.strftime("%Y-%m-%dT%H:%M:%S")}
        (out / BENCH_DIR / name / DONE_FILE).write_text(json.dumps(record, indent=2))


def finish_results(results: dict, out: Path) -> None:
    """Family averages, results.json and results.csv from the entries as they are now (written after every launch,
    so an interrupted evaluation leaves the finished benchmarks' numbers)."""
    entries = results["benchmarks"]
    results["families"] = family_averages(entries)
    results["generations"] = {name: e["generations"] for name, e in entries.items() if e.get("generations")}
    (out / RESULTS_FILE).write_text(json.dumps(results, indent=2))
    write_csv(results, out / CSV_FILE)


def _benchmark_line(done: int, total: int, name: str, entry: dict) -> str:
    if entry.get("status") != "ok":
        return f"eval: {progress_bar(done, total)} {name}: {entry.get('status')}"
    return (f"eval: {progress_bar(done, total)} {name}: acc {entry['acc']:.2f} over {entry['questions']} questions "
            f"({entry['samples']} answers scored, {entry.get('judge_calls', 0)} judge calls, "
            f"{entry.get('truncated', 0.0):.1f}% truncated)")


def main(argv: list[str] | None = None) -> int:
    from recipe.zppo.eval.decoding import PROFILES, profile_values

    parser = argparse.ArgumentParser(prog="python -m recipe.zppo.eval", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, type=Path, help="Hugging Face model folder or verl checkpoint")
    parser.add_argument("--suite", default="llm,vlm,video", help="families and/or benchmark names, comma-separated")
    parser.add_argument("--data", required=True, type=Path, help="folder of converted benchmarks (<name>.parquet)")
    parser.add_argument("--out", required=True, type=Path, help="output folder (a re-run resumes in it)")
    parser.add_argument("--n", type=int, default=1, help="answers per question (default 1)")
    parser.add_argument("--decoding", default="auto", choices=("auto", *PROFILES),
                        help="paper: App. B.2's decoding; cpu: its sampling values, lengths from the preset; greedy; "
                             "auto (default): cpu with preset=cpu, else paper")
    parser.add_argument("--temperature", type=float, default=None, help="override the profile's temperature")
    parser.add_argument("--top-p", type=float, default=None, help="override the profile's top-p")
    parser.add_argument("--launch-size", type=int, default=1,
                        help="benchmarks per trainer launch (default 1: a crash loses one benchmark; 0: all in one)")
    parser.add_argument("--redo", action="store_true", help="evaluate again the benchmarks finished in OUT")
    parser.add_argument("--name", default=None, help="method name shown in reports (default: the output folder name)")
    args, overrides = parser.parse_known_args(argv)
    bad = [o for o in overrides if o.startswith("-")]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)} (Hydra overrides are written key=value)")
    if args.n < 1:
        parser.error("--n must be >= 1")
    if args.launch_size < 0:
        parser.error("--launch-size must be >= 0")
    profile = args.decoding
    if profile == "auto":
        profile = "cpu" if any(o.replace(" ", "") in ("preset=cpu", "+preset=cpu") for o in overrides) else "paper"
    values = profile_values(profile, args.temperature, args.top_p)

    def log(line: str) -> None:
        print(line, file=sys.stderr, flush=True)

    out = args.out.expanduser().resolve()
    out.mkdir(parents=True, exist_ok=True)
    data = args.data.expanduser().resolve()
    tokens = [t for t in args.suite.split(",") if t.strip()]
    run, entries, unknown = select_benchmarks(tokens, data, log)
    config = {"n": args.n, "decoding_profile": profile, "decoding": values, "overrides": overrides,
              "temperature": values["temperature"], "top_p": values["top_p"], "do_sample": values["temperature"] > 0}
    results = {
        "name": args.name or out.name,
        "model": str(args.model),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S"),
        "suite": tokens,
        "metric": "acc",
        "config": config,
        "benchmarks": entries,
        "unknown": unknown,
    }
    log(f"eval: decoding {profile}: " + ", ".join(f"{k}={v}" for k, v in values.items()))
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
    pending = []
    for name in run:
        record = None if args.redo else load_done(out, name, fingerprint(model, entries[name], config))
        if record is None:
            pending.append(name)
            continue
        entries[name].update(record["entry"])
        log(f"eval: {name}: finished in an earlier run ({out / BENCH_DIR / name}, {record.get('date')}); "
            "not evaluated again (--redo does)")
    done = len(run) - len(pending)
    size = args.launch_size or max(1, len(pending))
    groups = [pending[i:i + size] for i in range(0, len(pending), size)]
    if run:
        log(f"eval: {progress_bar(done, len(run))} benchmarks done; {len(pending)} to evaluate in {len(groups)} "
            f"launch(es)")
    for group in groups:
        launch = out / ".launch"
        shutil.rmtree(launch, ignore_errors=True)
        files = [entries[name]["file"] for name in group]
        all_overrides = build_overrides(model, files, out, args.n, values, overrides, launch / "progress",
                                        launch / "generations")
        config.setdefault("commands", []).append([sys.executable, "-m", "recipe.zppo.main_zppo", *all_overrides])
        rows = args.n * sum(int(entries[name]["rows_in_file"]) for name in group)
        started = time.time()
        with ProgressMonitor(launch / "progress", done, len(run), rows, group, log,
                             float(os.environ.get("ZPPO_EVAL_PROGRESS_S", "30"))):
            code = run_trainer(all_overrides, out / "eval.log")
        if code != 0:
            log(f"eval: the trainer failed (exit {code}) on {', '.join(group)}; see {out / 'eval.log'}")
            for name in group:
                entries[name]["status"] = "failed"
            status = code
        else:
            collect(out, group, entries, started, launch / "generations", log, model, config)
        for name in group:
            done += entries[name].get("status") == "ok"
            log(_benchmark_line(done, len(run), name, entries[name]))
            if entries[name].get("status") != "ok":
                status = status or 1
        finish_results(results, out)
    if not run:
        log("eval: no benchmark to run")
    finish_results(results, out)
    for family, entry in results["families"].items():
        avg = "n/a" if entry["avg"] is None else f"{entry['avg']:.2f}"
        gap = f" (missing: {', '.join(entry['missing'])})" if entry["missing"] else ""
        log(f"eval: {family}: average {avg} over {len(entry['benchmarks'])} benchmarks{gap}")
    log(f"eval: results in {out / RESULTS_FILE} and {out / CSV_FILE}")
    return status


if __name__ == "__main__":
    sys.exit(main())
