"""The paper's baselines (App. D.2) that need more than a config switch: distillation, Hint, Prefix, and
``grpo_matched`` (ours)."""
