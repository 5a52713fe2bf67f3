"""Per-step metrics of the reward: the share of answers decided by each route, and the judge's calls.

verl 0.9.1 does not turn the reward function's extra keys into training metrics: the training batch carries them
per sample (``reward_extra_info``) and only validation averages the numeric ones (per data source, with bootstrap
statistics; string values are skipped). The ZPPO trainer therefore logs ``route_shares`` of each step's rollouts
itself (``zppo/reward/...``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

# Who decided an answer (``compute_score``'s "route"): the grader; the grader without a verdict in time (0); no boxed
# answer and no judge for it (0); the judge (a call); the judge's cache (no call); the judge needed but failed (0);
# a reward type nothing here scores, or no gold (0).
ROUTES = ("grader", "grader_failed", "unparseable", "judge", "judge_cached", "judge_failed", "unsupported")


def _routes(results) -> Iterable:
    if isinstance(results, Mapping):  # verl's reward_extra_infos_dict: {"route": array([...]), ...}
        return results.get("route", []) if "route" in results else [results.get("route")]
    return (r.get("route") if isinstance(r, Mapping) else r for r in results)


def route_shares(results, prefix: str = "reward/") -> dict[str, float]:
    """Share and count of each route among scored answers, and the judge's load.

    ``results``: score dicts from ``compute_score``, their route strings, or a dict of per-sample columns
    (``{"route": [...]}``, e.g. verl's ``reward_extra_infos_dict``). Returns, for every route in ``ROUTES``,
    ``{prefix}route_<route>`` (share in [0, 1]) and ``{prefix}route_<route>_count``; ``{prefix}judge_calls`` (answers
    sent to the judge: routes judge and judge_failed; cached verdicts are not calls), ``{prefix}judge_share`` (share
    of answers the judge decided or was needed for: judge, judge_cached, judge_failed) and ``{prefix}n_scored``. An
    empty input gives zeros.
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
    calls = counts["judge"] + counts["judge_failed"]
    out[f"{prefix}judge_calls"] = float(calls)
    out[f"{prefix}judge_share"] = (calls + counts["judge_cached"]) / total if total else 0.0
    out[f"{prefix}n_scored"] = float(total)
    return out
