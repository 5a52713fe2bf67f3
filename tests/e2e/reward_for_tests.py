"""Reward functions made for the end-to-end tests (a random tiny model never answers correctly).

``parity_score`` rewards about half of the responses, deterministically, so GRPO groups have non-zero advantages
and the update changes the weights.
"""


def parity_score(data_source, solution_str, ground_truth, extra_info=None, **kwargs):
    score = float(len(solution_str or "") % 2)
    return {"score": score, "acc": score}
