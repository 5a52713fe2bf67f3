"""Build ZPPO-77K, the training set, from local copies of Vero-600k and MMFineReason-SFT-586K.

Command line (see ``docs/data.md`` for downloading the two sets, the rules and the output)::

    python -m data_prep.build_zppo77k --vero PATH --mmfinereason PATH --out DIR \\
        [--tier-table YAML] [--unknown-source-tier excluded|tier1|tier2] [--tier1-cap 2800] [--tier2-cap 1400] \\
        [--max-pass-rate 0.5] [--max-answer-chars 512] [--min-image-side 100] [--seed 0] [--val-rows N] \\
        [--shard-rows 10000] [--max-shard-mb 512] [--splits train] [--overwrite]

Output in DIR: ``train-00000-of-000NN.parquet`` shards (verl's RL row layout, images embedded), ``val.parquet``
when ``--val-rows`` > 0, and ``summary.json`` (rows in/out per source, sub-dataset and tier, rows dropped per
rule with sample ids, the tier table version, the options); the same table is printed.

From Python: ``build(BuildOptions(out=..., vero=..., mmfinereason=...))`` returns the summary dict.
"""

from .builder import RULES, BuildError, BuildOptions, build, format_table

__all__ = ["RULES", "BuildError", "BuildOptions", "build", "format_table"]
