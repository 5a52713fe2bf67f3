"""Evaluation (``python -m recipe.zppo.eval``), reports (``python -m recipe.zppo.report``) and the adapters that let
lm-evaluation-harness and lmms-eval score with ZPPO's answer format."""
