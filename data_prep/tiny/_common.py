"""Shared helpers of the tiny builders: deterministic JSON, file hashes, and the build manifest.

Every artefact folder gets a ``tiny_manifest.json`` holding the build parameters and the sha256 of every file the
builder wrote. A later build with the same parameters whose files still hash the same is skipped; anything else
(other parameters, a missing or edited file, another builder version) rebuilds the folder from scratch.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Bump when a builder changes what it writes (the source hash in the manifest catches edits too).
BUILDER_VERSION = 1
MANIFEST_NAME = "tiny_manifest.json"


def dump_json(obj: Any) -> str:
    """JSON text with sorted keys, fixed indentation and a final newline (byte-stable)."""
    return json.dumps(obj, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def write_json(path: Path, obj: Any) -> None:
    Path(path).write_text(dump_json(obj), encoding="utf-8")


def normalize_json_file(path: Path) -> None:
    """Rewrite a JSON file written by a library with sorted keys (same content, stable bytes)."""
    path = Path(path)
    write_json(path, json.loads(path.read_text(encoding="utf-8")))


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def hash_tree(root: Path) -> dict[str, str]:
    """sha256 of every file under ``root`` (relative POSIX paths), the manifest itself excluded."""
    root = Path(root)
    out = {}
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.name != MANIFEST_NAME:
            out[p.relative_to(root).as_posix()] = sha256_file(p)
    return out


def builder_source_hash() -> str:
    """Hash of this package's source and of the answer closer: any change to what the builders write rebuilds."""
    from recipe.zppo.algo.answer_format import ANSWER_CLOSER

    h = hashlib.sha256(ANSWER_CLOSER.encode("utf-8"))
    for p in sorted(Path(__file__).parent.glob("*.py")):
        h.update(p.name.encode("utf-8") + b"\x00" + p.read_bytes())
    return h.hexdigest()[:16]


def manifest_matches(out_dir: Path, params: dict) -> bool:
    """True when ``out_dir`` holds a complete build with exactly these parameters."""
    mpath = Path(out_dir) / MANIFEST_NAME
    if not mpath.is_file():
        return False
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    if manifest.get("params") != json.loads(dump_json(params)):
        return False
    return manifest.get("files") == hash_tree(out_dir)


def _manifest_params(kind: str, params: dict) -> dict:
    return {"builder_version": BUILDER_VERSION, "builder_source": builder_source_hash(), "kind": kind, **params}


def is_built(kind: str, out_dir: Path, params: dict) -> bool:
    """True when ``out_dir`` holds a complete ``kind`` build that ``build_once`` with ``params`` would skip."""
    return manifest_matches(Path(out_dir), _manifest_params(kind, params))


def build_once(kind: str, out_dir: Path, params: dict, build: Callable[[Path], None], force: bool = False) -> Path:
    """Run ``build(tmp_dir)`` unless ``out_dir`` already holds this build; print one line either way.

    The build goes to a fresh sibling temporary folder that replaces ``out_dir`` only when complete, so an
    interrupted build never leaves a folder that looks finished, and two processes building at once do not
    write into the same folder.
    """
    started = time.perf_counter()
    out_dir = Path(out_dir)
    params = _manifest_params(kind, params)
    if not force and manifest_matches(out_dir, params):
        print(f"[tiny] {kind}: up to date at {out_dir}")
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.build-", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; the result is an ordinary folder
    try:
        build(tmp)
        write_json(tmp / MANIFEST_NAME, {"params": params, "files": hash_tree(tmp)})
        if out_dir.exists():
            shutil.rmtree(out_dir)
        try:
            os.replace(tmp, out_dir)
        except OSError:
            # another process finished the same build in between: keep theirs if it is this build
            if not manifest_matches(out_dir, params):
                raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    print(f"[tiny] {kind}: built at {out_dir} ({time.perf_counter() - started:.1f} s)")
    return out_dir
