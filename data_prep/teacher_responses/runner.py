"""The run: plan, resume state, generation, scoring, output shards and ``summary.json``.

State under ``OUT/.teacher_responses/``:

- ``run.json``: what this OUT is made from (teacher, engine, sampling, seed, template kwargs, shard size, judge,
  and every input file's relative path, row count and sha256). A rerun with anything different is refused
  unless ``--overwrite`` (which first deletes what the earlier run wrote).
- ``parts/<shard>/part-<start>-<stop>.parquet``: the finished rows of an unfinished shard (question id, status,
  teacher responses and flags, token counts), one file per engine batch, each written atomically. A rerun
  continues after the last part: a crash loses at most the batch in flight.
- ``done/<shard>.json``: the done-marker of a finished shard (input sha256, row range, output size and sha256,
  options fingerprint, statistics). A shard with a valid marker is never redone nor rewritten; its parts are
  deleted once the marker is written.

A shard is finished by streaming the input rows again beside the part files and writing the output (a temporary
file renamed into place) in fixed row groups, so its bytes do not depend on where earlier runs stopped.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from .engines import Sampling, load_engine
from .prompts import STATUS_OK, Renderer, prepare
from .shards import (
    CORRECT_TYPE,
    IMAGES_COLUMN,
    OUTPUT_ROW_GROUP_ROWS,
    RESPONSES_TYPE,
    TEACHER_CORRECT,
    TEACHER_RESPONSES,
    InputError,
    Unit,
    check_schema,
    find_inputs,
    iter_batches,
    output_schema,
    plan_units,
    sha256_file,
    with_teacher_fields,
)

FORMAT_VERSION = 1
STATE_DIR = ".teacher_responses"
SUMMARY_NAME = "summary.json"
SAMPLE_IDS = 10  # ids listed per reason for rows without teacher responses

PART_SCHEMA = pa.schema([
    ("row", pa.int64()),
    ("question_id", pa.string()),
    ("data_source", pa.string()),
    ("status", pa.string()),
    (TEACHER_RESPONSES, RESPONSES_TYPE),
    (TEACHER_CORRECT, CORRECT_TYPE),
    ("truncated", pa.int64()),
    ("prompt_tokens", pa.int64()),
    ("completion_tokens", pa.int64()),
    ("seconds", pa.float64()),
])


class ResumeError(InputError):
    """OUT holds a run made from other inputs or options."""


class StopEarly(Exception):
    """Raised by the test-only ``--stop-after-*`` options to simulate an interrupted run."""


@dataclasses.dataclass
class Options:
    data: str
    teacher: str
    out: str
    k: int = 4
    engine: str = "hf"
    temperature: float = 0.6
    top_p: float = 0.95
    top_k: int = 20
    max_tokens: int = 8192
    seed: int = 0
    chat_template_kwargs: dict = dataclasses.field(default_factory=dict)
    shard_rows: int | None = None
    batch_size: int | None = None
    overwrite: bool = False
    dtype: str = "auto"
    device: str = "auto"
    threads: int | None = None
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    max_images: int = 4
    trust_remote_code: bool = False
    judge_url: str | None = None
    judge_model: str | None = None
    progress: bool = True
    stop_after_shards: int | None = None
    stop_after_rows: int | None = None

    def batch_rows(self) -> int:
        return self.batch_size or (8 if self.engine == "hf" else 256)


# ------------------------------------------------------------------------------------------------ helpers


def dump_json(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_json_atomic(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.write_text(dump_json(obj), encoding="utf-8")
    _fsync(tmp)
    os.replace(tmp, path)


def write_parquet_atomic(path: Path, table: pa.Table) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    pq.write_table(table, str(tmp), compression="snappy")
    _fsync(tmp)
    os.replace(tmp, path)


def teacher_identity(model: str) -> dict:
    """The teacher as given, plus (for a local folder) a hash of its config and the sizes of its weight files:
    enough to notice another checkpoint in the same place without reading tens of GB."""
    ident: dict[str, Any] = {"model": model}
    path = Path(model)
    if path.is_dir():
        config = path / "config.json"
        if config.is_file():
            ident["config_sha256"] = hashlib.sha256(config.read_bytes()).hexdigest()
        ident["weights"] = {p.name: p.stat().st_size for p in sorted(path.iterdir())
                            if p.suffix in (".safetensors", ".bin", ".pt", ".gguf")}
    return ident


def judge_setting(options: Options) -> dict | None:
    from recipe.zppo.reward.judge import judge_config_from

    config = judge_config_from(_judge_kwargs(options))
    return None if config is None else {"url": config.url, "model": config.model}


def _judge_kwargs(options: Options) -> dict:
    kwargs = {}
    if options.judge_url:
        kwargs["judge_url"] = options.judge_url
    if options.judge_model:
        kwargs["judge_model"] = options.judge_model
    return kwargs


def _new_stats() -> dict:
    return {"rows": 0, "rows_answered": 0, "responses": 0, "correct": 0, "solved": 0, "truncated": 0}


def empty_unit_stats() -> dict:
    return {**_new_stats(), "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0, "by_source": {},
            "skipped": {}, "skipped_samples": {}}


def add_row_stats(stats: dict, row: dict) -> None:
    """Count one part row (PART_SCHEMA fields) into unit statistics."""
    flags = row[TEACHER_CORRECT] or []
    per_source = stats["by_source"].setdefault(row["data_source"] or "", _new_stats())
    for bucket in (stats, per_source):
        bucket["rows"] += 1
        if row["status"] == STATUS_OK:
            bucket["rows_answered"] += 1
            bucket["responses"] += len(flags)
            bucket["correct"] += sum(flags)
            bucket["solved"] += any(flags)
            bucket["truncated"] += row["truncated"]
    if row["status"] != STATUS_OK:
        stats["skipped"][row["status"]] = stats["skipped"].get(row["status"], 0) + 1
        samples = stats["skipped_samples"].setdefault(row["status"], [])
        if len(samples) < SAMPLE_IDS:
            samples.append(row["question_id"])
    stats["prompt_tokens"] += row["prompt_tokens"]
    stats["completion_tokens"] += row["completion_tokens"]
    stats["seconds"] += row["seconds"]


def merge_stats(total: dict, part: dict) -> None:
    for key in ("rows", "rows_answered", "responses", "correct", "solved", "truncated", "prompt_tokens",
                "completion_tokens", "seconds"):
        total[key] += part[key]
    for source, values in part["by_source"].items():
        bucket = total["by_source"].setdefault(source, _new_stats())
        for key, value in values.items():
            bucket[key] += value
    for reason, count in part["skipped"].items():
        total["skipped"][reason] = total["skipped"].get(reason, 0) + count
        samples = total["skipped_samples"].setdefault(reason, [])
        samples.extend(part["skipped_samples"].get(reason, [])[: SAMPLE_IDS - len(samples)])


class PartStream:
    """The rows of a shard's part files, in order, taken ``n`` at a time (one part file in memory at a time)."""

    def __init__(self, files: list[Path]):
        self._files = iter(files)
        self._buffer: pa.Table | None = None

    def take(self, n: int) -> pa.Table:
        pieces, need = [], n
        while need:
            if self._buffer is None or self._buffer.num_rows == 0:
                path = next(self._files, None)
                if path is None:
                    raise RuntimeError(f"the part files hold fewer rows than the shard ({need} missing)")
                self._buffer = pq.read_table(str(path), schema=PART_SCHEMA)
            piece = self._buffer.slice(0, need)
            self._buffer = self._buffer.slice(piece.num_rows)
            pieces.append(piece)
            need -= piece.num_rows
        return pa.concat_tables(pieces) if pieces else PART_SCHEMA.empty_table()


# ------------------------------------------------------------------------------------------------ the run


class Run:
    def __init__(self, options: Options):
        self.options = options
        self.out = Path(options.out).resolve()
        self.state = self.out / STATE_DIR
        self.engine = None
        self.renderer = None
        self.sampling = Sampling(options.k, options.temperature, options.top_p, options.top_k, options.max_tokens)
        self.judge_kwargs = _judge_kwargs(options)
        self.generated_rows = 0
        self.finished_shards = 0
        self.skipped_shards = 0

    # -------------------------------------------------------------- plan and state

    def plan(self) -> None:
        options = self.options
        for name, value, low in (("--k", options.k, 1), ("--max-tokens", options.max_tokens, 1),
                                 ("--batch-size", options.batch_size, 1), ("--shard-rows", options.shard_rows, 1)):
            if value is not None and value < low:
                raise InputError(f"{name} must be at least {low}, got {value}")
        root, files = find_inputs(options.data)
        files = [f for f in files if not f.is_relative_to(self.out)]  # an OUT inside the input folder
        if not files:
            raise InputError(f"--data {options.data}: no input parquet file outside --out {options.out}")
        rows_of, schemas = {}, {}
        for path in files:
            try:
                pf = pq.ParquetFile(str(path))
            except Exception as error:
                raise InputError(f"{path}: not a readable parquet file ({error})") from None
            check_schema(path, pf.schema_arrow)
            rows_of[path], schemas[path] = pf.metadata.num_rows, pf.schema_arrow
        self.schemas = schemas
        self.units = plan_units(root, files, rows_of, options.shard_rows)
        inputs = {f.resolve() for f in files}
        for unit in self.units:
            if (self.out / unit.name).resolve() in inputs:
                raise InputError(f"--out {options.out} would overwrite the input {self.out / unit.name}; "
                                 "choose another output folder")
        hashes = {}
        from tqdm.auto import tqdm

        with tqdm(total=sum(f.stat().st_size for f in files), unit="B", unit_scale=True, desc="hashing inputs",
                  disable=not options.progress, leave=False) as bar:
            for path in files:
                hashes[path] = sha256_file(path, bar)
        self.input_hash = hashes
        self.spec = {
            "format": FORMAT_VERSION,
            "teacher": teacher_identity(options.teacher),
            "engine": options.engine,
            "dtype": options.dtype,
            "sampling": dataclasses.asdict(self.sampling),
            "seed": options.seed,
            "chat_template_kwargs": options.chat_template_kwargs,
            "shard_rows": options.shard_rows,
            "judge": judge_setting(options),
            "inputs": [{"path": f.relative_to(root).as_posix(), "rows": rows_of[f], "sha256": hashes[f]}
                       for f in files],
        }
        self.fingerprint = hashlib.sha256(dump_json(self.spec).encode()).hexdigest()[:16]

    def open_state(self) -> None:
        """Start a fresh OUT, resume a matching one, or refuse (``--overwrite`` clears what an earlier run wrote)."""
        run_file = self.state / "run.json"
        previous = None
        if run_file.is_file():
            try:
                previous = json.loads(run_file.read_text(encoding="utf-8"))
            except ValueError:
                previous = {"spec": "unreadable"}
        if previous is not None and previous.get("spec") != json.loads(dump_json(self.spec)):
            if not self.options.overwrite:
                raise ResumeError(
                    f"--out {self.options.out} holds teacher responses made with other "
                    f"{', '.join(_differences(previous.get('spec'), self.spec)) or 'settings'}; rerun with the "
                    "same options, choose another --out, or add --overwrite to delete them and start over")
            self._clear(previous.get("outputs", []))
            previous = None
        if previous is None:
            mine = [u.name for u in self.units if (self.out / u.name).exists()]
            if mine and not self.options.overwrite:
                raise ResumeError(f"--out {self.options.out} already holds {mine[0]} (not made by this step's run "
                                  "there); choose another --out or add --overwrite")
            for name in mine:
                (self.out / name).unlink()
            if self.state.exists():
                shutil.rmtree(self.state)
            write_json_atomic(run_file, {"spec": self.spec, "fingerprint": self.fingerprint,
                                         "outputs": [u.name for u in self.units]})

    def _clear(self, outputs: list[str]) -> None:
        for name in outputs:
            path = self.out / name
            if path.is_file():
                path.unlink()
        summary = self.out / SUMMARY_NAME
        if summary.is_file():
            summary.unlink()
        shutil.rmtree(self.state, ignore_errors=True)

    def _marker_path(self, unit: Unit) -> Path:
        return self.state / "done" / f"{unit.name}.json"

    def _parts_dir(self, unit: Unit) -> Path:
        return self.state / "parts" / unit.name

    def marker(self, unit: Unit) -> dict | None:
        """The unit's done-marker when it is valid for this run and its output is in place, else None."""
        path = self._marker_path(unit)
        if not path.is_file():
            return None
        try:
            marker = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        output = self.out / unit.name
        valid = (marker.get("fingerprint") == self.fingerprint
                 and marker.get("input_sha256") == self.input_hash[unit.input]
                 and marker.get("row_range") == [unit.start, unit.stop])
        if valid and output.is_file() and output.stat().st_size == marker.get("output_bytes"):
            return marker
        print(f"[teacher] {unit.name}: done-marker present but the output is missing or changed; redoing it",
              file=sys.stderr)
        return None

    def resume_point(self, unit: Unit) -> tuple[int, list[Path]]:
        """First row not yet in a part file; invalid or out-of-order parts (and everything after them) go."""
        folder = self._parts_dir(unit)
        if not folder.is_dir():
            return unit.start, []
        for tmp in folder.glob(".*.tmp-*"):
            tmp.unlink()
        parts = []
        for path in folder.glob("part-*.parquet"):
            try:
                start, stop = (int(x) for x in path.stem.split("-")[1:3])
            except ValueError:
                path.unlink()
                continue
            parts.append((start, stop, path))
        parts.sort()
        expected, kept = unit.start, []
        for i, (start, stop, path) in enumerate(parts):
            ok = start == expected and stop <= unit.stop
            if ok:
                try:
                    ok = pq.ParquetFile(str(path)).metadata.num_rows == stop - start
                except Exception:
                    ok = False
            if not ok:
                for _, _, stale in parts[i:]:
                    stale.unlink()
                break
            kept.append(path)
            expected = stop
        return expected, kept

    # -------------------------------------------------------------- generation

    def _ensure_engine(self) -> None:
        if self.engine is None:
            options = self.options
            self.renderer = Renderer(options.teacher, options.trust_remote_code, options.chat_template_kwargs)
            self.engine = load_engine(options.engine, options.teacher, self.renderer, options)

    def answer(self, rows: list[dict], offset: int) -> list[dict]:
        """Part rows (PART_SCHEMA) for a batch of input rows starting at ``offset``."""
        from recipe.zppo.reward import compute_score

        self._ensure_engine()
        prepared = [prepare(row, offset + i, self.options.seed, self.renderer) for i, row in enumerate(rows)]
        asked = [i for i, p in enumerate(prepared) if p.status == STATUS_OK]
        generations = dict(zip(asked, self.engine.generate([prepared[i].request for i in asked], self.sampling)))
        out = []
        for i, (row, prep) in enumerate(zip(rows, prepared)):
            part = {"row": offset + i, "question_id": prep.question_id, "data_source": _text(row.get("data_source")),
                    "status": prep.status, TEACHER_RESPONSES: [], TEACHER_CORRECT: [], "truncated": 0,
                    "prompt_tokens": 0, "completion_tokens": 0, "seconds": 0.0}
            generation = generations.get(i)
            if generation is not None:
                part.update(status=generation.status, truncated=generation.truncated,
                            prompt_tokens=generation.prompt_tokens, completion_tokens=generation.completion_tokens,
                            seconds=generation.seconds)
                if generation.status == STATUS_OK:
                    extra = {k: v for k, v in (row.get("extra_info") or {}).items()
                             if k not in (TEACHER_RESPONSES, TEACHER_CORRECT)}
                    ground_truth = row["reward_model"]["ground_truth"]
                    part[TEACHER_RESPONSES] = list(generation.texts)
                    part[TEACHER_CORRECT] = [
                        bool(compute_score(data_source=row.get("data_source"), solution_str=text,
                                           ground_truth=ground_truth, extra_info=extra, **self.judge_kwargs)["acc"])
                        for text in generation.texts]
            out.append(part)
        return out

    def process(self, unit: Unit, bar) -> None:
        start, _ = self.resume_point(unit)
        columns = list(self.schemas[unit.input].names)
        needed = [c for c in ("prompt", "data_source", "reward_model", "extra_info", IMAGES_COLUMN) if c in columns]
        for offset, table in iter_batches(unit.input, start, unit.stop, self.options.batch_rows(), needed):
            rows = table.to_pylist()
            parts = self.answer(rows, offset)
            stop = offset + len(rows)
            write_parquet_atomic(self._parts_dir(unit) / f"part-{offset:012d}-{stop:012d}.parquet",
                                 pa.Table.from_pylist(parts, schema=PART_SCHEMA))
            bar.update(len(rows))
            self.generated_rows += len(rows)
            if self.options.stop_after_rows and self.generated_rows >= self.options.stop_after_rows:
                raise StopEarly(f"stopped after {self.generated_rows} rows (--stop-after-rows)")

    def finalize(self, unit: Unit) -> dict:
        """Write the output shard from the input and the part files; then its done-marker; then drop the parts."""
        start, parts = self.resume_point(unit)
        if start != unit.stop:
            raise RuntimeError(f"{unit.name}: parts end at row {start}, the shard at {unit.stop}")
        schema = output_schema(self.schemas[unit.input])
        stream = PartStream(parts)
        stats = empty_unit_stats()
        output = self.out / unit.name
        output.parent.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(output)
        writer = pq.ParquetWriter(str(tmp), schema, compression="snappy")
        try:
            for offset, table in iter_batches(unit.input, unit.start, unit.stop, OUTPUT_ROW_GROUP_ROWS):
                teacher = stream.take(table.num_rows)
                _check_alignment(unit, offset, table, teacher)
                for row in teacher.drop_columns([TEACHER_RESPONSES]).to_pylist():
                    add_row_stats(stats, row)
                writer.write_table(with_teacher_fields(table, teacher.column(TEACHER_RESPONSES).combine_chunks(),
                                                       teacher.column(TEACHER_CORRECT).combine_chunks(), schema),
                                   row_group_size=OUTPUT_ROW_GROUP_ROWS)
        except BaseException:
            writer.close()
            tmp.unlink(missing_ok=True)
            raise
        writer.close()
        _fsync(tmp)
        os.replace(tmp, output)
        marker = {
            "shard": unit.name,
            "input": unit.input_rel,
            "input_sha256": self.input_hash[unit.input],
            "row_range": [unit.start, unit.stop],
            "rows": unit.rows,
            "fingerprint": self.fingerprint,
            "output_bytes": output.stat().st_size,
            "output_sha256": sha256_file(output),
            "stats": stats,
        }
        write_json_atomic(self._marker_path(unit), marker)
        shutil.rmtree(self._parts_dir(unit), ignore_errors=True)
        return marker

    # -------------------------------------------------------------- main loop

    def __call__(self) -> dict:
        started = time.perf_counter()
        self.plan()
        self.open_state()
        from tqdm.auto import tqdm

        markers: dict[str, dict] = {}
        done_rows = 0
        for unit in self.units:
            marker = self.marker(unit)
            if marker is not None:
                markers[unit.name] = marker
                done_rows += unit.rows
            else:
                done_rows += self.resume_point(unit)[0] - unit.start
        total = sum(u.rows for u in self.units)
        with tqdm(total=total, initial=done_rows, unit="q", desc="teacher responses", dynamic_ncols=True,
                  disable=not self.options.progress) as bar:
            for unit in self.units:
                if unit.name in markers:
                    self.skipped_shards += 1
                    continue
                self.process(unit, bar)
                markers[unit.name] = self.finalize(unit)
                self.finished_shards += 1
                if self.options.stop_after_shards and self.finished_shards >= self.options.stop_after_shards \
                        and len(markers) < len(self.units):
                    raise StopEarly(f"stopped after {self.finished_shards} shard(s) (--stop-after-shards)")
        summary = self.summary([markers[u.name] for u in self.units], time.perf_counter() - started)
        write_json_atomic(self.out / SUMMARY_NAME, summary)
        return summary

    def summary(self, markers: list[dict], wall_time: float) -> dict:
        total = empty_unit_stats()
        for marker in markers:
            merge_stats(total, marker["stats"])

        def share(solved, rows):
            return round(solved / rows, 6) if rows else None

        by_source = {source: {**values, "share_with_correct": share(values["solved"], values["rows_answered"])}
                     for source, values in sorted(total["by_source"].items())}
        return {
            "complete": True,
            "teacher": self.options.teacher,
            "engine": self.options.engine,
            "k": self.options.k,
            "sampling": self.spec["sampling"],
            "seed": self.options.seed,
            "shards": [m["shard"] for m in markers],
            "rows": total["rows"],
            "rows_answered": total["rows_answered"],
            "responses": total["responses"],
            "correct_responses": total["correct"],
            "questions_with_correct": total["solved"],
            "share_with_correct": share(total["solved"], total["rows_answered"]),
            "share_with_correct_all_rows": share(total["solved"], total["rows"]),
            "truncated_responses": total["truncated"],
            "by_data_source": by_source,
            "rows_without_responses": dict(sorted(total["skipped"].items())),
            "rows_without_responses_sample_ids": dict(sorted(total["skipped_samples"].items())),
            "generation": {
                "seconds": round(total["seconds"], 3),
                "prompt_tokens": total["prompt_tokens"],
                "completion_tokens": total["completion_tokens"],
                "tokens_per_s": round(total["completion_tokens"] / total["seconds"], 2) if total["seconds"] else None,
            },
            "this_run": {"wall_time_s": round(wall_time, 3), "rows_generated": self.generated_rows,
                         "shards_finished": self.finished_shards, "shards_skipped": self.skipped_shards},
        }


def _text(value) -> str:
    return value if isinstance(value, str) else ("" if value is None else str(value))


def _differences(old: Any, new: dict) -> list[str]:
    if not isinstance(old, dict):
        return []
    names = []
    for key in sorted(set(old) | set(new)):
        if json.loads(dump_json(new.get(key))) != old.get(key):
            names.append(f"{key} (was {json.dumps(old.get(key), sort_keys=True)[:160]}, now "
                         f"{json.dumps(new.get(key), sort_keys=True)[:160]})")
    return names


def _check_alignment(unit: Unit, offset: int, table: pa.Table, teacher: pa.Table) -> None:
    """The part rows must be this shard's rows, in order: a guard against a state folder from elsewhere."""
    rows = teacher.column("row").to_pylist()
    if rows != list(range(offset, offset + table.num_rows)):
        raise RuntimeError(f"{unit.name}: part files are out of step with the input at row {offset}")
    import pyarrow.compute as pc

    qids = pc.struct_field(table.column("extra_info").combine_chunks(), ["question_id"]).to_pylist()
    for row, qid, stored in zip(rows, qids, teacher.column("question_id").to_pylist()):
        if qid and qid != stored:
            raise RuntimeError(f"{unit.name}: row {row} has question id {qid} in the input but {stored} in the "
                               "part files; delete the state folder or rerun with --overwrite")
