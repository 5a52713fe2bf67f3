"""Reward functions made for the end-to-end tests (a random tiny model never answers correctly).

``parity_score`` rewards about half of the responses, deterministically, so GRPO groups have non-zero advantages
and the update changes the weights.
"""


def parity_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    score = float(len(solution_str or "") % 2)
    return {"score": score, "acc": score}


def fails_fresh_solves_replayed(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Every fresh question fails (so it is hard and enters the buffer); every replayed one is solved (so it
    graduates)."""
    score = 1.0 if (extra_info or {}).get("zppo_kind") == "replay" else 0.0
    return {"score": score, "acc": score}


def only_teacher_is_right(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """The student always fails; every teacher response counts as correct (so BCQ can be built from them)."""
    score = 1.0 if (extra_info or {}).get("zppo_kind") == "teacher" else 0.0
    return {"score": score, "acc": score}


def fresh_fail_rest_parity(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    """Fresh questions always fail (hard, admitted), teacher responses are right (BCQ can be built), and every other
    prompt (replayed, BCQ, NCQ, ...) passes about half its answers: groups with a signal, deterministically placed."""
    kind = (extra_info or {}).get("zppo_kind")
    if kind == "teacher":
        return {"score": 1.0, "acc": 1.0}
    score = 0.0 if kind == "original" else float(len(solution_str or "") % 2)
    return {"score": score, "acc": score}
