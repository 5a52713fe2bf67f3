"""Input discovery, work units, streaming reads and the output shards of the teacher-response step.

An input is one parquet file, a folder (every ``*.parquet`` below it, hidden ``.x``/``_x`` entries skipped) or a
glob. Each input file becomes one work unit (its output keeps the file's path relative to the input root), or,
with ``shard_rows``, one unit per ``shard_rows`` rows (``<stem>-00000-of-00003.parquet``).

Nothing holds a whole shard in memory: rows are read in batches of at most a few hundred, and the output is
written in row groups of ``OUTPUT_ROW_GROUP_ROWS`` rows while the teacher columns are streamed from the part
files (see ``runner``) in the same order.
"""

from __future__ import annotations

import glob
import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

TEACHER_RESPONSES = "teacher_responses"
TEACHER_CORRECT = "teacher_correct"
RESPONSES_TYPE = pa.list_(pa.string())
CORRECT_TYPE = pa.list_(pa.bool_())
# Rows per output row group: fixed, so that the bytes of a shard do not depend on how the run was split up.
OUTPUT_ROW_GROUP_ROWS = 256
# Columns the step reads (other columns are only copied); (column, child of a struct column or None).
REQUIRED = (("prompt", None), ("data_source", None), ("reward_model", "ground_truth"), ("extra_info", "question_id"))
IMAGES_COLUMN = "images"


class InputError(ValueError):
    """Bad input that stops the run before any work (missing file or column): the message names both."""


def _glob_chars(text: str) -> bool:
    return any(c in text for c in "*?[")


def _visible(rel: Path) -> bool:
    return not any(part.startswith((".", "_")) for part in rel.parts)


def find_inputs(spec: str) -> tuple[Path, list[Path]]:
    """(root, sorted parquet files) for a file, a folder or a glob; paths are absolute."""
    if _glob_chars(spec):
        files = sorted(Path(p).resolve() for p in glob.glob(spec, recursive=True) if p.endswith(".parquet"))
        files = [f for f in files if f.is_file()]
        if not files:
            raise InputError(f"--data {spec}: the glob matches no .parquet file")
        root = Path(os.path.commonpath([str(f.parent) for f in files]))
        return root, files
    path = Path(spec).resolve()
    if path.is_file():
        return path.parent, [path]
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.parquet") if p.is_file() and _visible(p.relative_to(path)))
        if not files:
            raise InputError(f"--data {spec}: the folder holds no .parquet file")
        return path, files
    raise InputError(f"--data {spec}: no such file or folder")


def _field_type(schema: pa.Schema, column: str, child: str | None) -> pa.DataType | None:
    if column not in schema.names:
        return None
    kind = schema.field(column).type
    if child is None:
        return kind
    if not pa.types.is_struct(kind) or kind.get_field_index(child) < 0:
        return None
    return kind.field(child).type


def check_schema(path: Path, schema: pa.Schema) -> None:
    """Raise ``InputError`` naming the file and the first missing column."""
    for column, child in REQUIRED:
        if _field_type(schema, column, child) is None:
            name = column if child is None else f"{column}.{child}"
            raise InputError(f"{path}: missing required column '{name}' (columns: {', '.join(schema.names)})")
    extra = schema.field("extra_info").type
    for name, wanted in ((TEACHER_RESPONSES, RESPONSES_TYPE), (TEACHER_CORRECT, CORRECT_TYPE)):
        i = extra.get_field_index(name)
        if i >= 0 and not (pa.types.is_list(extra.field(i).type) or pa.types.is_large_list(extra.field(i).type)
                           or pa.types.is_null(extra.field(i).type)):
            raise InputError(f"{path}: column 'extra_info.{name}' is {extra.field(i).type}, expected {wanted} "
                             "(it is replaced by this step)")


def sha256_file(path: Path, progress=None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 22), b""):
            h.update(chunk)
            if progress is not None:
                progress.update(len(chunk))
    return h.hexdigest()


@dataclass(frozen=True)
class Unit:
    """Rows [start, stop) of one input file, written to ``name`` (a relative POSIX path) under OUT."""

    name: str
    input: Path
    input_rel: str
    start: int
    stop: int

    @property
    def rows(self) -> int:
        return self.stop - self.start


def plan_units(root: Path, files: list[Path], rows_of: dict[Path, int], shard_rows: int | None) -> list[Unit]:
    units = []
    for path in files:
        rel = path.relative_to(root).as_posix()
        n = rows_of[path]
        if not shard_rows:
            units.append(Unit(rel, path, rel, 0, n))
            continue
        count = max(1, -(-n // shard_rows))
        stem = rel[: -len(".parquet")]
        for i in range(count):
            units.append(Unit(f"{stem}-{i:05d}-of-{count:05d}.parquet", path, rel, i * shard_rows,
                              min(n, (i + 1) * shard_rows)))
    return units


def iter_batches(path: Path, start: int, stop: int, batch_rows: int, columns: list[str] | None = None
                 ) -> Iterator[tuple[int, pa.Table]]:
    """(offset of the first row, table of at most ``batch_rows`` rows) over rows [start, stop) of a file.

    Only the row groups that overlap the range are read, one record batch at a time.
    """
    if start >= stop:
        return
    pf = pq.ParquetFile(str(path))
    groups, first_row, offset = [], None, 0
    for g in range(pf.metadata.num_row_groups):
        n = pf.metadata.row_group(g).num_rows
        if offset + n > start and offset < stop:
            groups.append(g)
            first_row = offset if first_row is None else first_row
        offset += n
    position = first_row or 0
    pending: list[pa.Table] = []
    pending_rows = 0
    pending_start = max(start, position)
    for batch in pf.iter_batches(batch_size=batch_rows, row_groups=groups, columns=columns, use_threads=False):
        lo, hi = max(start, position), min(stop, position + batch.num_rows)
        position += batch.num_rows
        if lo >= hi:
            if position >= stop:
                break
            continue
        pending.append(pa.Table.from_batches([batch.slice(lo - (position - batch.num_rows), hi - lo)]))
        pending_rows += hi - lo
        while pending_rows >= batch_rows:
            table = pa.concat_tables(pending)
            yield pending_start, table.slice(0, batch_rows)
            rest = table.slice(batch_rows)
            pending, pending_rows = ([rest] if rest.num_rows else []), rest.num_rows
            pending_start += batch_rows
        if position >= stop:
            break
    if pending_rows:
        yield pending_start, pa.concat_tables(pending)


# ------------------------------------------------------------------------------------------------ output


def output_schema(schema: pa.Schema) -> pa.Schema:
    """The input schema with ``extra_info.teacher_responses``/``teacher_correct`` as list<string>/list<bool>.

    Existing fields of those names keep their position; missing ones are appended. A ``huggingface`` schema
    annotation (``datasets``' feature description) is dropped when the struct changed, as it no longer matches.
    """
    i = schema.get_field_index("extra_info")
    extra = schema.field(i)
    fields = list(extra.type)
    names = [f.name for f in fields]
    for name, kind in ((TEACHER_RESPONSES, RESPONSES_TYPE), (TEACHER_CORRECT, CORRECT_TYPE)):
        if name in names:
            fields[names.index(name)] = pa.field(name, kind)
        else:
            fields.append(pa.field(name, kind))
    new_type = pa.struct(fields)
    out = schema.set(i, pa.field("extra_info", new_type, extra.nullable, extra.metadata))
    if new_type != extra.type and out.metadata and b"huggingface" in out.metadata:
        out = out.with_metadata({k: v for k, v in out.metadata.items() if k != b"huggingface"})
    return out


def with_teacher_fields(table: pa.Table, responses: pa.Array, correct: pa.Array, schema: pa.Schema) -> pa.Table:
    """``table`` with its ``extra_info`` teacher fields replaced; every other value is left as it is."""
    i = table.schema.get_field_index("extra_info")
    extra = table.column(i).combine_chunks()
    target = schema.field("extra_info").type
    children = []
    for field in target:
        if field.name == TEACHER_RESPONSES:
            children.append(responses)
        elif field.name == TEACHER_CORRECT:
            children.append(correct)
        else:
            children.append(pc.struct_field(extra, [extra.type.get_field_index(field.name)]))
    mask = extra.is_null() if extra.null_count else None
    new_extra = pa.StructArray.from_arrays(children, fields=list(target), mask=mask)
    return table.set_column(i, schema.field("extra_info"), new_extra).cast(schema)
