"""``python -m data_prep.build_zppo77k``: see the package docstring."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
