"""A toy experiment through the real recipe: does ZPPO teach a tiny model questions it cannot reach alone?

``python -m benchmarks.toy.run --out outputs/toy --size full`` (see ``run.py``); the task is in ``task.py``,
the supervised warm-up and the greedy evaluation in ``warmup.py``, the aggregation in ``results.py``.
"""
