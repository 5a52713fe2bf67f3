"""Finding and reading the input data sets in small pieces (never a whole data set in memory).

An input PATH is one of:

- a parquet file, or a folder holding parquet files at any depth (a hub snapshot: ``data/train-*.parquet``,
  ``<config>/train/*.parquet``, ...);
- a ``datasets.save_to_disk`` folder (``state.json`` + ``*.arrow``; a ``DatasetDict`` folder with
  ``dataset_dict.json`` and one sub-folder per split), also nested inside another folder;
- a hub id (``owner/name``) when no such path exists: the parquet and arrow files are downloaded with
  ``huggingface_hub.snapshot_download`` (your own hub access; not exercised by the tests, which have no hub).

Files are taken in sorted order of their relative path, so the same folder gives the same order. Split: a
file belongs to the split named by a path component or a file-name prefix (``train``, ``val``,
``validation``, ``test``, ``dev``, ``eval``), or, for a ``save_to_disk`` set, by its folder/``state.json``; a
file with no split in its name is taken whatever ``--splits`` says. Hidden folders (``.cache`` ...) are skipped.

Reading is by chunk: a parquet row group, or a slice of an arrow file (memory-mapped), with only the columns
asked for, so the image column is read only where a row survived the cheaper checks.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

SPLIT_NAMES = ("train", "val", "validation", "test", "dev", "eval")
ARROW_CHUNK_ROWS = 256  # rows per chunk of a save_to_disk arrow file (parquet files use their row groups)
_SPLIT_TOKEN = re.compile(r"^([a-z]+)(?:[-_.]|$)")
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")


class InputError(ValueError):
    """An input cannot be used as a whole (not found, wrong schema); the message names the file and column."""


@dataclass
class InputFile:
    path: Path
    root: Path  # the data set folder: relative image paths are resolved against it (then the file's folder)
    kind: str  # "parquet" | "arrow"
    split: str | None
    schema: pa.Schema
    chunks: list[tuple[int, int]]  # (first row, number of rows)
    num_rows: int
    _arrow_table: pa.Table | None = field(default=None, repr=False)

    @property
    def display(self) -> str:
        try:
            return str(self.path.relative_to(self.root))
        except ValueError:
            return str(self.path)

    def read_chunk(self, index: int, columns: Sequence[str]) -> pa.Table:
        """Rows of chunk ``index``, only ``columns``; a file that cannot be read raises ``InputError``."""
        try:
            if self.kind == "parquet":
                return _parquet(self.path).read_row_group(index, columns=list(columns))
            start, length = self.chunks[index]
            return self._arrow().slice(start, length).select(list(columns))
        except (OSError, pa.ArrowException) as exc:
            start, length = self.chunks[index]
            raise InputError(f"{self.path}: cannot read rows {start}..{start + length - 1} "
                             f"(columns {list(columns)}): {exc}") from exc

    def _arrow(self) -> pa.Table:
        if self._arrow_table is None:
            # Memory-mapped and zero-copy: pages are read from disk when a slice touches them.
            self._arrow_table = pa.ipc.open_stream(pa.memory_map(str(self.path))).read_all()
        return self._arrow_table

    def close(self) -> None:
        self._arrow_table = None


_PARQUET_CACHE: dict[Path, pq.ParquetFile] = {}


def _parquet(path: Path) -> pq.ParquetFile:
    # One open handle at a time: files are read one after the other.
    handle = _PARQUET_CACHE.get(path)
    if handle is None:
        for old in _PARQUET_CACHE.values():
            old.close()
        _PARQUET_CACHE.clear()
        handle = _PARQUET_CACHE[path] = pq.ParquetFile(str(path))
    return handle


def _split_of(relative: Path) -> str | None:
    parts = [p.lower() for p in relative.parts]
    for part in parts[:-1]:
        if part in SPLIT_NAMES:
            return part
    match = _SPLIT_TOKEN.match(parts[-1])
    if match and match.group(1) in SPLIT_NAMES:
        return match.group(1)
    return None


def _hidden(relative: Path) -> bool:
    return any(part.startswith(".") for part in relative.parts)


def _parquet_file(path: Path, root: Path, split: str | None) -> InputFile:
    try:
        handle = pq.ParquetFile(str(path))
        meta, schema = handle.metadata, handle.schema_arrow
        handle.close()
    except Exception as exc:  # a file that is not parquet at all is a whole-input problem
        raise InputError(f"{path}: cannot read as parquet: {exc}") from exc
    chunks, start = [], 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        chunks.append((start, n))
        start += n
    return InputFile(path=path, root=root, kind="parquet", split=split, schema=schema, chunks=chunks,
                     num_rows=meta.num_rows)


def _arrow_file(path: Path, root: Path, split: str | None) -> InputFile:
    try:
        table = pa.ipc.open_stream(pa.memory_map(str(path))).read_all()
    except Exception as exc:
        raise InputError(f"{path}: cannot read as an arrow stream (datasets.save_to_disk format): {exc}") from exc
    chunks = [(s, min(ARROW_CHUNK_ROWS, table.num_rows - s)) for s in range(0, table.num_rows, ARROW_CHUNK_ROWS)]
    return InputFile(path=path, root=root, kind="arrow", split=split, schema=table.schema, chunks=chunks,
                     num_rows=table.num_rows)


def _saved_dataset_files(folder: Path, root: Path, split_hint: str | None) -> list[InputFile]:
    """The arrow files of one ``save_to_disk`` folder (listed in its state.json)."""
    state = json.loads((folder / "state.json").read_text())
    split = state.get("_split") or split_hint
    names = [entry["filename"] for entry in state.get("_data_files", [])] or sorted(
        p.name for p in folder.glob("*.arrow"))
    return [_arrow_file(folder / name, root, split.lower() if isinstance(split, str) else None) for name in names]


def discover(source: str | Path, splits: Sequence[str] = ("train",), cache_dir: str | None = None
             ) -> list[InputFile]:
    """The input files of one data set (see the module docstring), in a fixed order, filtered by split."""
    path = Path(source).expanduser()
    if not path.exists():
        if isinstance(source, str) and _HUB_ID.match(source):
            path = _download(source, cache_dir)
        else:
            raise InputError(f"{source}: no such file or folder (and not a hub id owner/name)")
    wanted = {s.lower() for s in splits}
    if path.is_file():
        if path.suffix != ".parquet":
            raise InputError(f"{path}: expected a .parquet file or a folder")
        return [_parquet_file(path, path.parent, None)]

    files: list[InputFile] = []
    saved_roots: set[Path] = set()
    for state in sorted(path.rglob("state.json")):
        rel = state.relative_to(path)
        if _hidden(rel):
            continue
        folder = state.parent
        hint = folder.name.lower() if folder.name.lower() in SPLIT_NAMES else None
        saved_roots.add(folder)
        files.extend(_saved_dataset_files(folder, path, hint))
    for parquet in sorted(path.rglob("*.parquet"), key=lambda p: p.relative_to(path).as_posix()):
        rel = parquet.relative_to(path)
        if _hidden(rel) or any(parent in saved_roots for parent in parquet.parents):
            continue
        files.append(_parquet_file(parquet, path, _split_of(rel)))
    files.sort(key=lambda f: f.path.relative_to(path).as_posix())
    if not files:
        raise InputError(f"{path}: no parquet files and no datasets.save_to_disk folder found")
    selected = [f for f in files if f.split is None or f.split in wanted]
    if not selected:
        found = sorted({f.split for f in files if f.split})
        raise InputError(f"{path}: no file of split(s) {sorted(wanted)} (found: {found}); see --splits")
    return selected


def _download(repo_id: str, cache_dir: str | None) -> Path:
    """A local snapshot of a hub data set (parquet/arrow files and metadata only)."""
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - installed with transformers
        raise InputError(f"{repo_id}: huggingface_hub is needed to download a hub data set") from exc
    try:
        local = snapshot_download(repo_id=repo_id, repo_type="dataset", cache_dir=cache_dir,
                                  allow_patterns=["*.parquet", "*.arrow", "*.json"])
    except Exception as exc:  # offline, no access, no such repository: one clear message
        raise InputError(f"{repo_id}: no such local path, and downloading it as a hub data set failed: "
                         f"{type(exc).__name__}: {exc}") from exc
    return Path(local)


# ------------------------------------------------------------------------------------------------ schema checks


def check_columns(file: InputFile, required: Sequence[Sequence[str]], required_fields: dict[str, Sequence[str]]
                  ) -> dict[str, str]:
    """Raise ``InputError`` naming the file and the missing column; returns {wanted name: column used}.

    ``required``: each item lists alternative column names (the first present is used). ``required_fields``:
    struct columns and the fields they must have.
    """
    names = set(file.schema.names)
    chosen = {}
    for alternatives in required:
        hit = next((a for a in alternatives if a in names), None)
        if hit is None:
            wanted = " or ".join(repr(a) for a in alternatives)
            raise InputError(f"{file.path}: missing column {wanted} (columns: {sorted(names)})")
        chosen[alternatives[0]] = hit
    for column, fields in required_fields.items():
        if column not in names:
            continue
        col_type = file.schema.field(column).type
        if not pa.types.is_struct(col_type):
            raise InputError(f"{file.path}: column {column!r} must be a struct with fields {list(fields)}, "
                             f"got {col_type}")
        present = {col_type.field(i).name for i in range(col_type.num_fields)}
        for f in fields:
            if f not in present:
                raise InputError(f"{file.path}: missing column '{column}.{f}' (fields of {column}: "
                                 f"{sorted(present)})")
    return chosen


# ------------------------------------------------------------------------------------------------ images


def image_refs(value) -> list[tuple[bytes | None, str | None]]:
    """The images of one cell as (bytes, path) pairs.

    Accepts the ``datasets`` Image feature ({"bytes", "path"}), raw bytes, a path string, or a list of those
    (an ``images`` column). Missing/empty entries are kept as (None, None), so that the caller can drop the row.
    """
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        out = []
        for item in value:
            out.extend(image_refs(item) or [(None, None)])
        return out
    if isinstance(value, dict):
        data = value.get("bytes")
        path = value.get("path")
        return [(bytes(data) if data else None, path if isinstance(path, str) and path else None)]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return [(bytes(value) or None, None)]
    if isinstance(value, str):
        return [(None, value or None)]
    return [(None, None)]


def load_image_bytes(data: bytes | None, path: str | None, file: InputFile) -> bytes | None:
    """The image's bytes: embedded bytes, else the file at ``path`` (absolute, or relative to the data set folder,
    then to the parquet file's folder). None when neither exists."""
    if data:
        return data
    if not path:
        return None
    candidates = [Path(path)] if Path(path).is_absolute() else [file.root / path, file.path.parent / path]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_bytes()
    return None
