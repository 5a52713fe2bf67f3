"""The recipe's Hydra configs (zppo_trainer.yaml, method/, preset/) and their typed schema (schema.py).

Importing this package registers the schema with Hydra's ConfigStore, which the YAML's defaults list needs: the
entry point and ``hydra.initialize_config_module("recipe.zppo.config")`` both import it first.
"""

from .schema import register_schema

register_schema()
