"""ZPPO: Zone of Proximal Policy Optimization (teacher in prompts, not gradients) as a verl recipe."""
