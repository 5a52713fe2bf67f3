"""Per-step metrics of the reward: the share of answers scored by each route.

verl 0.9.1 does not turn the reward function's extra keys into training metrics: the training batch carries
them per sample (``reward_extra_info``) and only validation averages the numeric ones (per data source, with
bootstrap statistics; string values are skipped). The trainer therefore logs ``route_shares`` itself.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

ROUTES = ("parser", "judge", "unparseable", "judge_unavailable")


def _routes(results) -> Iterable:
    if isinstance(results, Mapping):  # verl's reward_extra_infos_dict: {"route": array([...]), ...}
        return results.get("route", []) if "route" in results else [results.get("route")]
    return (r.get("route") if isinstance(r, Mapping) else r for r in results)


def route_shares(results, prefix: str = "reward/") -> dict[str, float]:
    """Share and count of each route among scored answers.

    ``results``: score dicts from ``compute_score``, their route strings, or a dict of per-sample columns
    (``{"route": [...]}``, e.g. verl's ``reward_extra_infos_dict``). Returns, for every route in ``ROUTES``,
    ``{prefix}route_<route>`` (share in [0, 1]) and ``{prefix}route_<route>_count``, plus ``{prefix}n_scored``.
    An empty input gives zeros.
    """
    counts: Counter = Counter()
    total = 0
    for route in _routes(results if results is not None else []):
        total += 1
        counts[str(route)] += 1
    out: dict[str, float] = {}
    for route in ROUTES:
        out[f"{prefix}route_{route}"] = counts[route] / total if total else 0.0
        out[f"{prefix}route_{route}_count"] = float(counts[route])
    out[f"{prefix}n_scored"] = float(total)
    return out
