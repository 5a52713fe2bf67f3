"""The tier table: which sub-dataset goes into ZPPO-77K, under which cap, merged with which other.

The table is a YAML file (default: ``tier_table.yaml`` beside this module; ``--tier-table PATH`` for your own)::

    version: 1                       # required; recorded in summary.json
    vero:                            # Vero-600k sub-datasets (the ``data_source`` column)
      - name: ai2d_merged            # the name as published
        match: ["ai2d*"]             # optional extra glob patterns
        canonical: ai2d              # optional: entries with the same canonical name share one cap
        tier: tier1                  # tier1 | tier2 | excluded
        why: "..."                   # required: the reasoning behind the choice
        id_prefix: ["tallyqa"]       # optional (vero): rows of a shared data_source whose id starts so
    mmfinereason:                    # MMFineReason sources (the ``source`` column)
      - ...

Names and patterns are compared after ``normalize_name`` (lower case, every run of other characters than
letters and digits turned into one ``_``), so "CoSyn-400k/Chart" matches ``cosyn_400k_chart``. A name is looked
up exactly first, then against the ``match`` patterns in file order (the first match wins). A name found
nowhere is an unknown source: it gets the tier chosen by ``--unknown-source-tier`` (default ``excluded``) and
is listed in the summary so that the table can be completed.

Vero only: a ``data_source`` that names a task category before the set (``stem-ai2d_merged``, as the ZPPO paper
spells it) is looked up again without the category (``VERO_DOMAINS``). Vero's counting / grounding / search sets
may share one ``data_source``; Vero's own loader (``infer_task_type`` in ``vero-rl/verl/utils/dataset/
rl_dataset.py``) tells them apart by the first ``_``-separated word of the row's id. ``TierTable.resolve`` does
the same for a Vero row whose ``data_source`` is not in the table, or names one of the sets that carry an
``id_prefix`` (a shared ``data_source`` may be spelled like one of its members): the row goes to the entry whose
``id_prefix`` the id starts with (the whole id, or the prefix followed by ``_``; the longest such prefix wins),
and is counted under that entry's name. A row no prefix claims stays where its ``data_source`` puts it.

A canonical group's cap is applied to all its members together, Vero rows first (see the builder).
"""

from __future__ import annotations

import fnmatch
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

TIERS = ("tier1", "tier2", "excluded")
# Vero-600k's six task categories (its docs/DATA.md and training config), as they may prefix a data_source.
VERO_DOMAINS = ("chart_ocr", "stem", "spatial_action", "knowledge_recognition", "counting_grounding_search",
                "grounding_counting_search", "visual_alignment", "captioning_instruction_following")
SOURCES = ("vero", "mmfinereason")
DEFAULT_TABLE = Path(__file__).with_name("tier_table.yaml")

_NON_ALNUM = re.compile(r"[^0-9a-z*?\[\]]+")


class TierTableError(ValueError):
    """The tier table file is malformed (the message names the file and the entry)."""


def normalize_name(name: str) -> str:
    """Lower case; runs of characters other than letters, digits and glob characters become one ``_``."""
    return _NON_ALNUM.sub("_", str(name).strip().lower()).strip("_")


@dataclass(frozen=True)
class TierEntry:
    source: str
    name: str  # as written in the table (or as found in the data, for unknown sources)
    tier: str
    canonical: str  # the group whose cap this entry shares
    why: str
    known: bool = True
    patterns: tuple[str, ...] = ()
    id_prefixes: tuple[str, ...] = ()


@dataclass
class TierTable:
    version: str
    path: Path
    sha256: str
    unknown_tier: str
    entries: dict[str, list[TierEntry]]
    _exact: dict[str, dict[str, TierEntry]] = field(default_factory=dict)
    _cache: dict[tuple[str, str], TierEntry] = field(default_factory=dict)
    _prefixes: dict[str, list[tuple[str, TierEntry]]] = field(default_factory=dict)

    def __post_init__(self):
        for source, entries in self.entries.items():
            self._exact[source] = {normalize_name(e.name): e for e in entries}
            pairs = [(p, e) for e in entries for p in e.id_prefixes]
            self._prefixes[source] = sorted(pairs, key=lambda pe: -len(pe[0]))  # stable: file order among equals

    def lookup(self, source: str, name: str | None) -> TierEntry:
        """The entry for sub-dataset ``name`` of ``source`` (a synthetic one for an unknown name)."""
        key = (source, "" if name is None else str(name))
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        norm = normalize_name(key[1])
        entry = self._exact.get(source, {}).get(norm)
        if entry is None:
            for candidate in self.entries.get(source, []):
                if any(fnmatch.fnmatchcase(norm, p) for p in candidate.patterns):
                    entry = candidate
                    break
        if entry is None and source == "vero":
            for domain in VERO_DOMAINS:
                if norm.startswith(domain + "_"):
                    inner = self.lookup(source, norm[len(domain) + 1:])
                    if inner.known:
                        entry = inner
                    break
        if entry is None:
            entry = TierEntry(source=source, name=key[1], tier=self.unknown_tier,
                              canonical=f"{source}/{norm or 'unnamed'}",
                              why=f"not in the tier table (--unknown-source-tier {self.unknown_tier})", known=False)
        self._cache[key] = entry
        return entry

    def routes_by_id(self, entry: TierEntry) -> bool:
        """Whether rows of a sub-dataset with this entry are routed per row by id (``resolve``): an unknown
        name, or a member of a shared ``data_source`` (an entry with ``id_prefix``), when the table has any."""
        return bool(self._prefixes.get(entry.source)) and (not entry.known or bool(entry.id_prefixes))

    def resolve(self, source: str, name: str | None, row_id: str) -> tuple[str, TierEntry, bool]:
        """(sub-dataset name to count the row under, its entry, routed by id?) for one row.

        A name in the table without ``id_prefix`` is used as it is. An unknown name, or one of an entry with
        ``id_prefix`` (a shared ``data_source``), is routed by the row's id prefix when an entry claims it (the
        longest prefix wins); otherwise the row stays under its name. "Routed" is true only when the entry
        changed.
        """
        name = "" if name is None else str(name)
        entry = self.lookup(source, name)
        if not row_id or not self.routes_by_id(entry):
            return name, entry, False
        routed = self._by_id_prefix(source, row_id)
        if routed is None or routed is entry:
            return name, entry, False
        return routed.name, routed, True

    def _by_id_prefix(self, source: str, row_id: str) -> TierEntry | None:
        norm = normalize_name(row_id)
        for prefix, candidate in self._prefixes.get(source, ()):  # longest first
            if norm == prefix or norm.startswith(prefix + "_"):
                return candidate
        return None


def load_tier_table(path: Path | None = None, unknown_tier: str = "excluded") -> TierTable:
    """Read and validate a tier table; raises ``TierTableError`` naming the file and the bad entry."""
    path = Path(path) if path is not None else DEFAULT_TABLE
    if unknown_tier not in TIERS:
        raise TierTableError(f"--unknown-source-tier must be one of {', '.join(TIERS)}, got {unknown_tier!r}")
    raw_bytes = path.read_bytes()
    try:
        data = yaml.load(raw_bytes, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))  # C parser when built
    except yaml.YAMLError as exc:
        raise TierTableError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(data, dict):
        raise TierTableError(f"{path}: expected a mapping with 'version', 'vero' and 'mmfinereason' keys")
    if data.get("version") in (None, ""):
        raise TierTableError(f"{path}: the 'version' key is required")
    unexpected = sorted(set(data) - {"version", *SOURCES})
    if unexpected:
        raise TierTableError(f"{path}: unknown top-level key(s) {unexpected}; expected version, vero, mmfinereason")
    entries: dict[str, list[TierEntry]] = {}
    group_tier: dict[str, tuple[str, str]] = {}
    for source in SOURCES:
        items = data.get(source) or []
        if not isinstance(items, list):
            raise TierTableError(f"{path}: '{source}' must be a list of entries")
        seen: dict[str, int] = {}
        out = []
        for i, item in enumerate(items):
            where = f"{path}: {source}[{i}]"
            if not isinstance(item, dict) or not item.get("name"):
                raise TierTableError(f"{where}: each entry needs at least 'name', 'tier' and 'why'")
            name = str(item["name"])
            where += f" ({name})"
            unknown_keys = sorted(set(item) - {"name", "tier", "why", "canonical", "match", "id_prefix"})
            if unknown_keys:
                raise TierTableError(f"{where}: unknown key(s) {unknown_keys}")
            tier = item.get("tier")
            if tier not in TIERS:
                raise TierTableError(f"{where}: tier must be one of {', '.join(TIERS)}, got {tier!r}")
            why = item.get("why")
            if not isinstance(why, str) or not why.strip():
                raise TierTableError(f"{where}: 'why' (the reasoning for this tier) is required")
            norm = normalize_name(name)
            if norm in seen:
                raise TierTableError(f"{where}: same name as entry {seen[norm]} after normalisation ({norm!r})")
            seen[norm] = i
            patterns = item.get("match") or []
            if isinstance(patterns, str):
                patterns = [patterns]
            if not isinstance(patterns, list):
                raise TierTableError(f"{where}: 'match' must be a list of glob patterns")
            id_prefixes = item.get("id_prefix") or []
            if isinstance(id_prefixes, str):
                id_prefixes = [id_prefixes]
            if not isinstance(id_prefixes, list):
                raise TierTableError(f"{where}: 'id_prefix' must be a list of id prefixes")
            canonical = normalize_name(item["canonical"]) if item.get("canonical") else f"{source}/{norm}"
            if tier != "excluded":
                prior = group_tier.get(canonical)
                if prior is not None and prior[0] != tier:
                    raise TierTableError(f"{where}: canonical group {canonical!r} is {tier} here but {prior[0]} in "
                                         f"{prior[1]}; members of a group share one cap, so one tier")
                group_tier.setdefault(canonical, (tier, where))
            out.append(TierEntry(source=source, name=name, tier=tier, canonical=canonical, why=why.strip(),
                                 patterns=tuple(normalize_name(p) for p in patterns),
                                 id_prefixes=tuple(normalize_name(p) for p in id_prefixes)))
        entries[source] = out
    return TierTable(version=str(data["version"]), path=path, sha256=hashlib.sha256(raw_bytes).hexdigest(),
                     unknown_tier=unknown_tier, entries=entries)
