"""``python -m recipe.zppo.report``: the user-facing name of :mod:`recipe.zppo.eval.report`."""

import sys

from .eval.report import main

if __name__ == "__main__":
    sys.exit(main())
