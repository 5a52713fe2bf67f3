"""``python -m recipe.zppo.eval``: evaluate a model or checkpoint on the benchmark suite (see evaluate.py)."""

import sys

from .evaluate import main

if __name__ == "__main__":
    sys.exit(main())
