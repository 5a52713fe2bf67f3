"""The two-pass build: cheap decisions on every row first, image work on the selected rows only.

Pass 1 (every input row, no image decoded): the sub-dataset's tier, the row filters on the metadata columns,
then -- only for rows still in -- the image column of that chunk: image bytes hashed (SHA-1 of the raw bytes)
and image size read from the header. Then cross-source de-duplication and the seeded caps.
Pass 2 (selected rows only): images checked, resized into the pixel range if needed and re-encoded, rows
written to shards. A selected row whose image fails to decode here is dropped (``image_decode_failed``) and
replaced by the next candidate of its sub-dataset, so caps stay exact.

Rules, in order (``RULES``): row filters, then de-duplication, then caps. Each dropped row is counted under the
first rule it fails, with a sample of its ids in ``summary.json``.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import multiprocessing
import os
import shutil
import sys
import time
from array import array
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from data_prep.row_schema import extra_info_type, row_schema
from data_prep.vision import MAX_ASPECT_RATIO, MAX_PIXELS, MIN_PIXELS, aspect_ratio, resized_hw

from . import images as imagelib
from .inputs import InputError, InputFile, check_columns, discover, image_refs, load_image_bytes
from .sources import SOURCE_SPECS, Parsed, ParseOptions, SourceSpec
from .text import dedupe_text, question_with_placeholders, user_content
from .tiers import TierEntry, TierTable, load_tier_table

BUILDER_VERSION = 1

RULES: tuple[tuple[str, str], ...] = (
    ("excluded_source", "the sub-dataset's tier is 'excluded' (tier table; --unknown-source-tier for unknown ones)"),
    ("pass_rate_missing", "MMFineReason row without a pass rate in [0, 1] (pass_rate or qwen3vl_4b_pass_rate)"),
    ("pass_rate_above_max", "MMFineReason pass rate above --max-pass-rate"),
    ("unsupported_reward_type", "Vero reward_type the project's verifiers cannot score (grounding, clicking, ...)"),
    ("answer_missing", "gold answer null or empty"),
    ("answer_not_string", "gold answer is not a string"),
    ("answer_too_long", "gold answer longer than --max-answer-chars characters"),
    ("question_empty", "no question text left (after removing placeholders and format instructions)"),
    ("image_missing", "no image, or neither image bytes nor a readable image file"),
    ("image_undecodable", "image format not recognised from its header"),
    ("image_too_small", "an image side shorter than --min-image-side pixels"),
    ("image_aspect_ratio", f"long side more than {MAX_ASPECT_RATIO}x the short side (the processor refuses it)"),
    ("prompt_too_long", "prompt (templated text + image tokens + closer) over --max-prompt-tokens with --processor"),
    ("duplicate_within_source", "same normalised question and image bytes as an earlier row of the same source"),
    ("duplicate_of_vero", "same normalised question and image bytes as a Vero row (Vero wins)"),
    ("over_cap", "not drawn by the seeded sample of its (canonical) sub-dataset's tier cap"),
    ("image_decode_failed", "selected, but its image did not decode in pass 2 (replaced by the next candidate)"),
)
RULE_NAMES = tuple(name for name, _ in RULES)

ROW_GROUP_ROWS = 64  # rows per parquet row group in the output (bounded memory while writing)

OUTPUT_SCHEMA = row_schema(
    extra_info_type(
        ("tolerance", pa.float64()),
        ("pass_rate", pa.float64()),
        ("source", pa.string()),
        ("sub_dataset", pa.string()),
        ("group", pa.string()),
        ("tier", pa.string()),
        ("original_id", pa.string()),
        ("prompt_tokens", pa.int64()),
    ),
    images=True,
)

class BuildError(RuntimeError):
    """The build cannot proceed (bad input as a whole, output folder in the way); the message says why."""


@dataclass
class BuildOptions:
    out: Path
    vero: str | None = None
    mmfinereason: str | None = None
    tier_table: Path | None = None
    unknown_source_tier: str = "excluded"
    tier1_cap: int = 2800
    tier2_cap: int = 1400
    max_pass_rate: float = 0.5
    max_answer_chars: int = 512
    min_image_side: int = 100
    min_pixels: int = MIN_PIXELS
    max_pixels: int = MAX_PIXELS
    seed: int = 0
    val_rows: int = 0
    shard_rows: int = 10_000
    max_shard_mb: float = 512.0
    splits: Sequence[str] = ("train",)
    jpeg_quality: int = 95
    png_compress_level: int = 1
    dropped_id_sample: int = 20
    overwrite: bool = False
    workers: int = 1  # processes for the image work of pass 2 (1: in this process)
    progress: bool | None = None  # None: bars only on a terminal
    cache_dir: str | None = None
    strict: bool = False  # fail (before writing anything) when a sub-dataset is not in the tier table
    processor: str | None = None  # the student's processor folder: prompts are counted and held to the budget
    max_prompt_tokens: int = 4096  # the paper's plain-rollout prompt budget (App. D.1)


# ------------------------------------------------------------------------------------------------ bookkeeping


@dataclass
class SubStats:
    source: str
    sub_dataset: str
    entry: TierEntry
    rows_in: int = 0
    after_filters: int = 0
    after_dedupe: int = 0
    out_train: int = 0
    out_val: int = 0


class Drops:
    """Rows dropped per rule, per source, with a sample of their ids (the first ones met: deterministic)."""

    def __init__(self, sample: int):
        self.sample = sample
        self.count: Counter = Counter()
        self.by_source: dict[str, Counter] = defaultdict(Counter)
        self.ids: dict[str, list[str]] = defaultdict(list)

    def add(self, rule: str, source: str, row_id: str, n: int = 1) -> None:
        self.count[rule] += n
        self.by_source[rule][source] += n
        if len(self.ids[rule]) < self.sample:
            self.ids[rule].append(row_id)

    def to_json(self) -> dict:
        return {name: {"description": desc, "count": self.count[name], "by_source": dict(self.by_source[name]),
                       "sample_ids": self.ids[name]} for name, desc in RULES}


class Candidates:
    """Rows that passed the row filters, in input order (all of Vero first), in compact arrays."""

    def __init__(self):
        self.source = array("b")  # index into the source list
        self.file = array("i")
        self.row = array("q")
        self.sub = array("i")  # index into the SubStats list
        self.key = array("Q")  # 64 bits of SHA-1(normalised question, image hashes)
        self.tokens = array("i")  # prompt tokens with --processor (-1 without)
        self.raw_id: list[str] = []

    def add(self, source: int, file: int, row: int, sub: int, key: int, raw_id: str, tokens: int = -1) -> None:
        self.tokens.append(tokens)
        self.source.append(source)
        self.file.append(file)
        self.row.append(row)
        self.sub.append(sub)
        self.key.append(key)
        self.raw_id.append(raw_id)

    def __len__(self) -> int:
        return len(self.raw_id)


def _hash64(*parts: str) -> int:
    digest = hashlib.sha1("\x00".join(parts).encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big")


def _progress(total: int, desc: str, enabled: bool | None):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="row", disable=None if enabled is None else not enabled,
                file=sys.stderr, dynamic_ncols=True, mininterval=1.0)


def _process_images(job) -> list[tuple[imagelib.Processed, float]] | None:
    """Stored forms of one row's images (``images.process``) with the CPU seconds each took, or None if one is
    missing or does not decode. A module-level function, so that worker processes can run it."""
    images, (min_pixels, max_pixels, jpeg_quality, png_level) = job
    out = []
    for data in images:
        if data is None:
            return None
        start = time.process_time()
        try:
            stored = imagelib.process(data, min_pixels, max_pixels, jpeg_quality, png_level)
        except imagelib.ImageError:
            return None
        out.append((stored, time.process_time() - start))
    return out


# ------------------------------------------------------------------------------------------------ output


class ShardWriter:
    """Parquet shards of at most ``max_rows`` rows / ``max_bytes`` bytes of row payload, in a staging folder."""

    def __init__(self, staging: Path, stem: str, max_rows: int, max_bytes: float):
        self.staging, self.stem = staging, stem
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self.files: list[tuple[Path, int, int]] = []  # (path, rows, payload bytes)
        self._writer: pq.ParquetWriter | None = None
        self._buffer: list[dict] = []
        self._rows = self._bytes = 0

    def write(self, row: dict, payload: int) -> None:
        if self._writer is not None and (self._rows >= self.max_rows or self._bytes + payload > self.max_bytes):
            self._close_shard()
        if self._writer is None:
            path = self.staging / f"{self.stem}-{len(self.files):05d}.parquet"
            self._writer = pq.ParquetWriter(
                str(path), OUTPUT_SCHEMA, compression="snappy", use_dictionary=False, write_statistics=False,
                version="2.6", data_page_version="1.0", store_schema=True)
            self.files.append((path, 0, 0))
            self._rows = self._bytes = 0
        self._buffer.append(row)
        self._rows += 1
        self._bytes += payload
        if len(self._buffer) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._buffer:
            self._writer.write_table(pa.Table.from_pylist(self._buffer, schema=OUTPUT_SCHEMA))
            self._buffer = []

    def _close_shard(self) -> None:
        self._flush()
        self._writer.close()
        self._writer = None
        path, _, _ = self.files[-1]
        self.files[-1] = (path, self._rows, self._bytes)

    def close(self) -> list[tuple[Path, int, int]]:
        if self._writer is not None:
            self._close_shard()
        return self.files


def _existing_outputs(out: Path) -> list[Path]:
    if not out.exists():
        return []
    names = [p for p in out.iterdir() if p.is_file() and (
        (p.name.startswith("train-") and p.suffix == ".parquet") or p.name in ("val.parquet", "summary.json"))]
    return sorted(names)


# ------------------------------------------------------------------------------------------------ the build


class Builder:
    def __init__(self, opts: BuildOptions):
        if opts.vero is None and opts.mmfinereason is None:
            raise BuildError("give at least one input: --vero PATH and/or --mmfinereason PATH")
        if opts.min_pixels > opts.max_pixels:
            raise BuildError(f"--min-pixels {opts.min_pixels} is above --max-pixels {opts.max_pixels}")
        self.opts = opts
        self.out = Path(opts.out)
        self.table: TierTable = load_tier_table(opts.tier_table, opts.unknown_source_tier)
        self.parse_opts = ParseOptions(max_answer_chars=opts.max_answer_chars, max_pass_rate=opts.max_pass_rate)
        self.caps = {"tier1": opts.tier1_cap, "tier2": opts.tier2_cap}
        self.counter = None
        if opts.processor is not None:
            from .tokens import PromptCounter, TokenCounterError

            try:
                self.counter = PromptCounter(opts.processor)
            except TokenCounterError as exc:
                raise BuildError(str(exc)) from exc
        self.drops = Drops(opts.dropped_id_sample)
        self.sources: list[SourceSpec] = []
        self.files: list[list[InputFile]] = []
        self.columns: list[list[dict[str, str]]] = []  # per source, per file: chosen column names
        self.input_paths: list[str] = []
        self.subs: list[SubStats] = []
        self._sub_index: dict[tuple[str, str], int] = {}  # (source, name in the data) -> SubStats index
        self._stats_index: dict[tuple[str, str], int] = {}  # (source, name counted under) -> SubStats index
        self.cand = Candidates()
        self.format_rules: Counter = Counter()
        self.image_actions: Counter = Counter()
        self.image_formats: Counter = Counter()
        self.image_cpu: Counter = Counter()  # CPU seconds of image work per action (measured where it ran)
        self.reward_types: Counter = Counter()
        self.timing: dict[str, float] = {}
        self.routed: Counter = Counter()  # (source, data_source, entry name) -> rows routed by id prefix
        self.written_tokens: list[int] = []

    # ---------------------------------------------------------------- inputs

    def _discover(self) -> None:
        existing = _existing_outputs(self.out)
        if existing and not self.opts.overwrite:
            raise BuildError(f"{self.out} already holds a build ({existing[0].name}, ...); pass --overwrite to "
                             "replace it")
        for key, path in (("vero", self.opts.vero), ("mmfinereason", self.opts.mmfinereason)):
            if path is None:
                continue
            spec = SOURCE_SPECS[key]
            try:
                files = discover(path, self.opts.splits, self.opts.cache_dir)
                chosen = [check_columns(f, spec.required, spec.required_fields) for f in files]
            except InputError as exc:
                raise BuildError(f"{key} input: {exc}") from exc
            self.sources.append(spec)
            self.files.append(files)
            self.columns.append(chosen)
            self.input_paths.append(str(path))

    def _sub(self, spec: SourceSpec, name: str, row_id: str) -> int:
        """The SubStats index of a row of sub-dataset ``name``. A name whose rows are routed by id (a Vero
        ``data_source`` missing from the tier table, or one of a shared set: ``TierTable.routes_by_id``) is
        resolved per row with ``row_id``; every other name once."""
        index = self._sub_index.get((spec.key, name))
        if index is not None:
            return index
        used, entry, routed = self.table.resolve(spec.key, name, row_id)
        if routed:
            self.routed[(spec.key, name, used)] += 1
        key = (spec.key, used)
        index = self._stats_index.get(key)
        if index is None:
            index = self._stats_index[key] = len(self.subs)
            self.subs.append(SubStats(spec.key, used, entry))
        if not routed and not self.table.routes_by_id(entry):
            self._sub_index[(spec.key, name)] = index
        return index

    # ---------------------------------------------------------------- pass 1

    def _pass1(self) -> None:
        total = sum(f.num_rows for files in self.files for f in files)
        with _progress(total, "pass 1: filters, hashes", self.opts.progress) as bar:
            for si, spec in enumerate(self.sources):
                for fi, file in enumerate(self.files[si]):
                    self._scan_file(si, spec, fi, file, bar)
                    file.close()

    def _scan_file(self, si: int, spec: SourceSpec, fi: int, file: InputFile, bar) -> None:
        chosen = self.columns[si][fi]
        meta_cols = spec.meta_columns(chosen, file.schema.names)
        image_col = chosen["image"]
        for ci in range(len(file.chunks)):
            table = file.read_chunk(ci, [column for _, column in meta_cols])
            cols = {key: table.column(column).to_pylist() for key, column in meta_cols}
            survivors = []
            subsets = cols[spec.subset_column]
            for r in range(table.num_rows):
                row = {key: values[r] for key, values in cols.items()}
                raw_id = spec.raw_id(row)
                sub = self._sub(spec, "" if subsets[r] is None else str(subsets[r]), raw_id)
                stats = self.subs[sub]
                stats.rows_in += 1
                if stats.entry.tier == "excluded":
                    self.drops.add("excluded_source", spec.key, f"{spec.id_prefix}/{raw_id}")
                    continue
                parsed = spec.parse(row, self.parse_opts)
                if isinstance(parsed, str):
                    self.drops.add(parsed, spec.key, f"{spec.id_prefix}/{raw_id}")
                    continue
                parsed.sub_dataset = stats.sub_dataset
                survivors.append((r, sub, parsed))
            if survivors:
                images = file.read_chunk(ci, [image_col]).column(0)
                for r, sub, parsed in survivors:
                    self._check_images(si, spec, fi, file, file.chunks[ci][0] + r, sub, parsed, images[r].as_py())
            bar.update(table.num_rows)

    def _check_images(self, si, spec, fi, file, row_index, sub, parsed: Parsed, cell) -> None:
        display = f"{spec.id_prefix}/{parsed.raw_id}"
        refs = image_refs(cell)
        if not refs:
            self.drops.add("image_missing", spec.key, display)
            return
        digests, sizes = [], []
        for data, path in refs:
            data = load_image_bytes(data, path, file)
            if data is None:
                self.drops.add("image_missing", spec.key, display)
                return
            try:
                info = imagelib.probe(data)
            except imagelib.ImageError:
                self.drops.add("image_undecodable", spec.key, display)
                return
            if min(info.width, info.height) < self.opts.min_image_side:
                self.drops.add("image_too_small", spec.key, display)
                return
            if aspect_ratio(info.height, info.width) > MAX_ASPECT_RATIO:
                self.drops.add("image_aspect_ratio", spec.key, display)
                return
            digests.append(hashlib.sha1(data).digest())
            sizes.append(resized_hw(info.height, info.width, self.opts.min_pixels, self.opts.max_pixels))
        tokens = -1
        if self.counter is not None:
            tokens = self.counter.count(parsed.question, sizes)
            if tokens > self.opts.max_prompt_tokens:
                self.drops.add("prompt_too_long", spec.key, display)
                return
        content = hashlib.sha1(dedupe_text(parsed.question).encode("utf-8") + b"\x00" + b"".join(digests)).digest()
        self.subs[sub].after_filters += 1
        self.cand.add(si, fi, row_index, sub, int.from_bytes(content[:8], "big"), parsed.raw_id, tokens)

    # ---------------------------------------------------------------- de-duplication, ids, caps

    def _dedupe(self) -> np.ndarray:
        """Boolean mask of the candidates kept; the first occurrence of a key wins (Vero rows come first)."""
        n = len(self.cand)
        keep = np.ones(n, dtype=bool)
        if n == 0:
            return keep
        keys = np.frombuffer(self.cand.key, dtype=np.uint64)
        src = np.frombuffer(self.cand.source, dtype=np.int8)
        _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
        first_of = first[inverse.reshape(-1)]
        duplicate = first_of != np.arange(n)
        keep[duplicate] = False
        for i in np.flatnonzero(duplicate):
            spec = self.sources[src[i]]
            same = src[first_of[i]] == src[i]
            rule = "duplicate_within_source" if same else "duplicate_of_vero"
            self.drops.add(rule, spec.key, f"{spec.id_prefix}/{self.cand.raw_id[i]}")
        for i in np.flatnonzero(keep):
            self.subs[self.cand.sub[i]].after_dedupe += 1
        return keep

    def _question_ids(self, kept: np.ndarray) -> list[str | None]:
        """Stable, unique ids "<prefix>/<id>" of the kept candidates (None for the others).

        Ids shared by several kept rows of one source all get "~<content hash>" appended: a property of each
        row, so the result does not depend on the input order. Two kept rows of one source never share both id
        and content hash (de-duplication removed such pairs), so the result is unique.
        """
        ids: list[str | None] = [None] * len(self.cand)
        prefixes = [spec.id_prefix for spec in self.sources]
        for i in kept.tolist():
            ids[i] = f"{prefixes[self.cand.source[i]]}/{self.cand.raw_id[i] or f'h{self.cand.key[i]:016x}'}"
        # Candidates for sharing an id: equal Python hashes (arrays, not a dict of every id); then exact strings.
        hashes = np.fromiter((hash(ids[i]) for i in kept.tolist()), dtype=np.int64, count=len(kept))
        _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        maybe = kept[counts[inverse.reshape(-1)] > 1].tolist()
        exact = Counter(ids[i] for i in maybe)
        shared = [i for i in maybe if exact[ids[i]] > 1]
        self.id_collisions = len(shared)
        for i in shared:
            ids[i] = f"{ids[i]}~{self.cand.key[i]:016x}"
        return ids

    def _draw(self, kept: np.ndarray, ids: list[str | None]) -> tuple[dict[str, np.ndarray], dict[str, int]]:
        """Per canonical group: its kept candidates in draw order (Vero first, then ``sha1("cap", seed, id)``)."""
        names = sorted({s.entry.canonical for s in self.subs if s.entry.tier != "excluded"})
        group_index = {name: k for k, name in enumerate(names)}
        group_of_sub = np.array([group_index.get(s.entry.canonical, -1) for s in self.subs] or [-1], dtype=np.int64)
        priority_of_source = np.array([spec.priority for spec in self.sources] or [0], dtype=np.int64)
        seed = str(self.opts.seed)
        cap_key = np.fromiter((_hash64("cap", seed, ids[i]) for i in kept.tolist()), dtype=np.uint64,
                              count=len(kept))
        group = group_of_sub[np.frombuffer(self.cand.sub, dtype=np.int32)[kept]] if len(kept) else kept
        priority = priority_of_source[np.frombuffer(self.cand.source, dtype=np.int8)[kept]] if len(kept) else kept
        order = np.lexsort((cap_key, priority, group))  # by group, then source priority, then hash
        ranked, ranked_group = kept[order], group[order]
        bounds = np.searchsorted(ranked_group, np.arange(len(names) + 1))
        ordered, caps = {}, {}
        for k, name in enumerate(names):
            members = ranked[bounds[k]:bounds[k + 1]]
            if len(members):
                ordered[name] = members
                caps[name] = self.caps[self.subs[self.cand.sub[int(members[0])]].entry.tier]
        return ordered, caps

    # ---------------------------------------------------------------- pass 2

    def _pass2(self, ordered: dict[str, np.ndarray], caps: dict[str, int], ids: list[str | None],
               staging: Path) -> None:
        position = {group: min(caps[group], len(members)) for group, members in ordered.items()}
        selected = [int(i) for group, members in ordered.items() for i in members[:position[group]]]
        val_rows = min(self.opts.val_rows, len(selected))
        val = set(sorted(selected, key=lambda i: (_hash64("val", str(self.opts.seed), ids[i]), ids[i]))[:val_rows])
        split_of = {i: ("val" if i in val else "train") for i in selected}

        max_bytes = self.opts.max_shard_mb * 1024 * 1024
        self.train_writer = ShardWriter(staging, "train", self.opts.shard_rows, max_bytes)
        self.val_writer = ShardWriter(staging, "val", 1 << 62, float("inf"))
        self.train_index = self.val_index = 0
        todo = selected
        pool = None
        if self.opts.workers > 1 and selected:
            # spawn, not fork: the parent holds pyarrow's thread pools
            pool = multiprocessing.get_context("spawn").Pool(self.opts.workers)
        try:
            with _progress(len(selected), "pass 2: images, shards", self.opts.progress) as bar:
                while todo:
                    failed = self._write_rows(todo, split_of, ids, bar, pool)
                    refill = []
                    for i in failed:
                        group = self.subs[self.cand.sub[i]].entry.canonical
                        members = ordered[group]
                        if position[group] < len(members):
                            j = int(members[position[group]])
                            position[group] += 1
                            split_of[j] = split_of[i]
                            refill.append(j)
                    bar.total += len(refill)
                    todo = refill
        finally:
            if pool is not None:
                pool.close()
                pool.join()
        for group, members in ordered.items():
            for i in members[position[group]:].tolist():
                spec = self.sources[self.cand.source[i]]
                self.drops.add("over_cap", spec.key, ids[i])

    def _jobs(self, todo: list[int]):
        """(candidate, spec, parsed, raw image bytes or None per image) in write order: files in input order,
        rows in file order; one input chunk in memory at a time."""
        by_file: dict[tuple[int, int], list[int]] = defaultdict(list)
        for i in todo:
            by_file[(self.cand.source[i], self.cand.file[i])].append(i)
        for (si, fi) in sorted(by_file):
            spec, file, chosen = self.sources[si], self.files[si][fi], self.columns[si][fi]
            meta_cols = spec.meta_columns(chosen, file.schema.names)
            columns = [column for _, column in meta_cols] + [chosen["image"]]
            starts = [start for start, _ in file.chunks]
            current_chunk, table = None, None
            for i in sorted(by_file[(si, fi)], key=lambda i: self.cand.row[i]):
                row_index = self.cand.row[i]
                ci = int(np.searchsorted(starts, row_index, side="right") - 1)
                if ci != current_chunk:
                    table, current_chunk = file.read_chunk(ci, columns), ci
                local = row_index - file.chunks[ci][0]
                row = {key: table.column(column)[local].as_py() for key, column in meta_cols}
                parsed = spec.parse(row, self.parse_opts)
                if isinstance(parsed, str):
                    raise BuildError(f"{file.path}: row {row_index} changed between the two passes ({parsed})")
                parsed.sub_dataset = self.subs[self.cand.sub[i]].sub_dataset
                cell = table.column(chosen["image"])[local].as_py()
                images = [load_image_bytes(data, path, file) for data, path in image_refs(cell)]
                yield i, spec, parsed, images
            table = None
            file.close()

    def _write_rows(self, todo: list[int], split_of: dict[int, str], ids: list[str | None], bar, pool
                    ) -> list[int]:
        """Process and write the rows ``todo``; returns those whose images failed to decode.

        Image work goes to ``pool`` (``--workers`` > 1) in windows of a bounded number of rows; results are
        taken in submission order, so the output is the same whatever the number of workers.
        """
        failed = []
        settings = (self.opts.min_pixels, self.opts.max_pixels, self.opts.jpeg_quality, self.opts.png_compress_level)
        window = max(1, self.opts.workers) * 16
        jobs = self._jobs(todo)
        while True:
            batch = list(itertools.islice(jobs, window))
            if not batch:
                return failed
            work = [(images, settings) for _, _, _, images in batch]
            results = pool.imap(_process_images, work, chunksize=1) if pool is not None else map(
                _process_images, work)
            for (i, spec, parsed, _), stored in zip(batch, results):
                if stored is None:
                    failed.append(i)
                    self.drops.add("image_decode_failed", spec.key, ids[i])
                else:
                    self._emit(i, spec, parsed, stored, split_of[i], ids[i])
                bar.update(1)

    def _emit(self, i: int, spec: SourceSpec, parsed: Parsed, results: list, split: str, qid: str) -> None:
        stored = [processed for processed, _ in results]
        for processed, cpu in results:
            self.image_actions[processed.action] += 1
            self.image_formats[processed.format] += 1
            self.image_cpu[processed.action] += cpu
        stats = self.subs[self.cand.sub[i]]
        entry = stats.entry
        if split == "val":
            index, self.val_index = self.val_index, self.val_index + 1
            stats.out_val += 1
        else:
            index, self.train_index = self.train_index, self.train_index + 1
            stats.out_train += 1
        question = question_with_placeholders(parsed.question, len(stored))
        row = {
            "data_source": f"{spec.id_prefix}/{parsed.sub_dataset}",
            "prompt": [{"role": "user", "content": user_content(parsed.question, len(stored))}],
            "ability": parsed.ability,
            "reward_model": {"style": "rule", "ground_truth": parsed.answer},
            "extra_info": {
                "index": index, "split": split, "question_id": qid, "question": question, "answer": parsed.answer,
                "reward_type": parsed.reward_type, "tolerance": parsed.tolerance, "pass_rate": parsed.pass_rate,
                "source": spec.key, "sub_dataset": parsed.sub_dataset, "group": entry.canonical,
                "tier": entry.tier, "original_id": parsed.raw_id,
                "prompt_tokens": self.cand.tokens[i] if self.counter is not None else None,
            },
            "images": [{"bytes": s.data} for s in stored],
        }
        payload = sum(len(s.data) for s in stored) + len(question) * 2 + 512
        (self.val_writer if split == "val" else self.train_writer).write(row, payload)
        self.format_rules.update(parsed.format_rules)
        self.reward_types[parsed.reward_type] += 1
        if self.counter is not None:
            self.written_tokens.append(self.cand.tokens[i])

    # ---------------------------------------------------------------- finish

    def _finish(self, staging: Path) -> dict:
        train_files = self.train_writer.close()
        val_files = self.val_writer.close()
        for old in _existing_outputs(self.out):
            old.unlink()
        shards = []
        total = len(train_files)
        for k, (path, rows, _) in enumerate(train_files):
            final = self.out / f"train-{k:05d}-of-{total:05d}.parquet"
            os.replace(path, final)
            shards.append({"file": final.name, "rows": rows, "bytes": final.stat().st_size})
        val_info = None
        if val_files:
            path, rows, _ = val_files[0]
            final = self.out / "val.parquet"
            os.replace(path, final)
            val_info = {"file": final.name, "rows": rows, "bytes": final.stat().st_size}
        self.timing["finish"] = round(time.perf_counter() - self._t_finish, 3)
        summary = self._summary(shards, val_info)
        tmp = staging / "summary.json"
        tmp.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n")
        os.replace(tmp, self.out / "summary.json")
        shutil.rmtree(staging, ignore_errors=True)
        return summary

    def _summary(self, shards: list[dict], val_info: dict | None) -> dict:
        opts = {k: (str(v) if isinstance(v, Path) else (list(v) if isinstance(v, tuple) else v))
                for k, v in asdict(self.opts).items()}
        sub_rows = []
        for s in sorted(self.subs, key=lambda s: (s.source, s.sub_dataset)):
            sub_rows.append({"source": s.source, "sub_dataset": s.sub_dataset, "in_tier_table": s.entry.known,
                             "tier": s.entry.tier, "group": s.entry.canonical, "rows_in": s.rows_in,
                             "after_filters": s.after_filters, "after_dedupe": s.after_dedupe,
                             "out_train": s.out_train, "out_val": s.out_val})
        groups = defaultdict(lambda: {"members": [], "tier": None, "cap": None, "candidates": 0, "out": 0})
        for s in self.subs:
            if s.entry.tier == "excluded":
                continue
            g = groups[s.entry.canonical]
            g["members"].append(f"{s.source}/{s.sub_dataset}")
            g["tier"], g["cap"] = s.entry.tier, self.caps[s.entry.tier]
            g["candidates"] += s.after_dedupe
            g["out"] += s.out_train + s.out_val
        rows_in = Counter()
        rows_out = Counter()
        for s in self.subs:
            rows_in[s.source] += s.rows_in
            rows_out[s.source] += s.out_train + s.out_val
        return {
            "builder_version": BUILDER_VERSION,
            "tier_table": {"path": str(self.table.path), "version": self.table.version, "sha256": self.table.sha256},
            "options": opts,
            "rules_in_order": [name for name, _ in RULES],
            "inputs": {spec.key: {"path": p, "files": [{"file": f.display, "split": f.split, "rows": f.num_rows}
                                                       for f in files]}
                       for spec, p, files in zip(self.sources, self.input_paths, self.files)},
            "rows_in": dict(rows_in),
            "rows_out": {"train": self.train_index, "val": self.val_index, "by_source": dict(rows_out)},
            "val_rows_requested": self.opts.val_rows,
            "dropped": self.drops.to_json(),
            "sub_datasets": sub_rows,
            "groups": {name: {**g, "members": sorted(g["members"])} for name, g in sorted(groups.items())},
            "unknown_sources": sorted(f"{s.source}/{s.sub_dataset}" for s in self.subs if not s.entry.known),
            "unknown_source_rows": self.unknown_rows(),
            "routed_by_id": {f"{src}/{name}": {used: n for (s2, n2, used), n in sorted(self.routed.items())
                                               if (s2, n2) == (src, name)}
                             for src, name in sorted({(k[0], k[1]) for k in self.routed})},
            "question_id_collisions": getattr(self, "id_collisions", 0),
            "prompt_tokens": self._token_summary(),
            "format_rules_applied": dict(sorted(self.format_rules.items())),
            "reward_types": dict(sorted(self.reward_types.items())),
            "images": {"actions": dict(sorted(self.image_actions.items())),
                       "formats": dict(sorted(self.image_formats.items()))},
            "image_cpu_s": {k: round(v, 3) for k, v in sorted(self.image_cpu.items())},
            "shards": shards,
            "val": val_info,
            "timing_s": self.timing,
        }

    def _token_summary(self) -> dict:
        """The prompt budget: processor, limit, and the lengths of the rows written (None without --processor)."""
        if self.counter is None:
            return {"processor": None, "max_prompt_tokens": self.opts.max_prompt_tokens, "checked": False}
        lengths = np.array(self.written_tokens or [0], dtype=np.int64)
        return {"processor": self.counter.path, "max_prompt_tokens": self.opts.max_prompt_tokens, "checked": True,
                "written_max": int(lengths.max()), "written_mean": round(float(lengths.mean()), 1)}

    def unknown_rows(self) -> dict[str, int]:
        """Rows per sub-dataset missing from the tier table ("source/name" -> rows), most rows first."""
        rows = Counter({f"{s.source}/{s.sub_dataset}": s.rows_in for s in self.subs if not s.entry.known})
        return dict(sorted(rows.items(), key=lambda kv: (-kv[1], kv[0])))

    def run(self) -> dict:
        t0, c0 = time.perf_counter(), time.process_time()
        self._discover()
        self.out.mkdir(parents=True, exist_ok=True)
        staging = self.out / ".staging"
        shutil.rmtree(staging, ignore_errors=True)  # left by an interrupted build: never part of an output
        staging.mkdir()
        self._pass1()
        unknown = self.unknown_rows()
        if self.opts.strict and unknown:
            shutil.rmtree(staging, ignore_errors=True)
            listed = ", ".join(f"{name} ({n} rows)" for name, n in unknown.items())
            raise BuildError(f"--strict: {len(unknown)} sub-dataset(s) not in the tier table {self.table.path}: "
                             f"{listed}; add them to the table (or drop --strict to give them "
                             f"--unknown-source-tier {self.table.unknown_tier})")
        t1, c1 = time.perf_counter(), time.process_time()
        kept = np.flatnonzero(self._dedupe())
        ids = self._question_ids(kept)
        ordered, caps = self._draw(kept, ids)
        t2, c2 = time.perf_counter(), time.process_time()
        self._pass2(ordered, caps, ids, staging)
        self._t_finish, c3 = time.perf_counter(), time.process_time()
        # Wall seconds, and CPU seconds of this process (the cost on a dedicated core when the host is shared).
        self.timing = {"pass1": round(t1 - t0, 3), "select": round(t2 - t1, 3),
                       "pass2": round(self._t_finish - t2, 3), "pass1_cpu": round(c1 - c0, 3),
                       "select_cpu": round(c2 - c1, 3), "pass2_cpu": round(c3 - c2, 3)}
        return self._finish(staging)


def build(opts: BuildOptions) -> dict:
    """Run the whole build; returns the summary (also written to ``<out>/summary.json``)."""
    return Builder(opts).run()


# ------------------------------------------------------------------------------------------------ report


def format_table(summary: dict) -> str:
    """The printed report: rows per sub-dataset and tier, then rows dropped per rule."""
    lines = []
    header = f"{'source':<13} {'sub-dataset':<28} {'tier':<9} {'in':>9} {'filtered':>9} {'deduped':>9} {'out':>7}"
    lines.append(header)
    lines.append("-" * len(header))
    totals = Counter()
    for s in summary["sub_datasets"]:
        tier = s["tier"] + ("" if s["in_tier_table"] else "?")
        out = s["out_train"] + s["out_val"]
        lines.append(f"{s['source']:<13} {s['sub_dataset'][:28]:<28} {tier:<9} {s['rows_in']:>9} "
                     f"{s['after_filters']:>9} {s['after_dedupe']:>9} {out:>7}")
        totals.update({"in": s["rows_in"], "f": s["after_filters"], "d": s["after_dedupe"], "o": out})
    lines.append("-" * len(header))
    lines.append(f"{'total':<13} {'':<28} {'':<9} {totals['in']:>9} {totals['f']:>9} {totals['d']:>9} "
                 f"{totals['o']:>7}")
    lines.append("")
    lines.append("tier: '?' = not in the tier table (--unknown-source-tier); filtered = after the row filters")
    lines.append("")
    lines.append(f"{'rule (in order)':<26} {'dropped':>9}   vero / mmfinereason")
    for name in summary["rules_in_order"]:
        d = summary["dropped"][name]
        by = d["by_source"]
        lines.append(f"{name:<26} {d['count']:>9}   {by.get('vero', 0)} / {by.get('mmfinereason', 0)}")
    out = summary["rows_out"]
    lines.append("")
    lines.append(f"written: {out['train']} train rows in {len(summary['shards'])} shard(s)"
                 + (f", {out['val']} val rows" if summary.get("val") else ""))
    routed = summary.get("routed_by_id") or {}
    if routed:
        lines.append("")
        lines.append("routed by id prefix (a shared data_source):")
        for name, targets in routed.items():
            lines.append(f"  {name}: " + ", ".join(f"{t} {n}" for t, n in targets.items()))
    unknown = summary.get("unknown_source_rows") or {}
    if unknown:
        tier = summary["options"]["unknown_source_tier"]
        lines.append("")
        lines.append(f"UNKNOWN SOURCES: {len(unknown)} sub-dataset(s) not in the tier table, given tier '{tier}' "
                     "(--unknown-source-tier; --strict makes this an error):")
        for name, n in unknown.items():
            lines.append(f"  {name:<50} {n:>9} rows")
    return "\n".join(lines)
