"""ZPPO's algorithm as pure modules (no Ray, no GPU, no verl): advantage (App. C, Eqs 2-3), the step's hardness
rule and caps (Algorithm 1), BCQ/NCQ reformulation (Sec. 3.2), the prompt replay buffer, and their bookkeeping."""
