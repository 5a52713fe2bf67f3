"""Namespace for verl recipes shipped by this project.

This is a regular package on purpose: TransferQueue (a verl-core dependency) installs a top-level `recipe/`
folder without `__init__.py` into site-packages. A regular package wins over such a namespace portion
wherever it sits on `sys.path`, so `python -m recipe.zppo.main_zppo` always imports this project's recipe.
"""
