"""Benchmarks of ZPPO's cost against GRPO (issue 8); see benchmarks/README.md for what each script measures and
how to run it. Not part of the installed package: run the scripts from the repository root."""
