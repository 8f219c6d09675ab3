"""The option pipeline: read the YAML, apply ``--force_yml``, import plugins, check every key, derive paths.

`parse_options` replaces basicsr's own in its train and test pipelines (see `vlunet_basicsr.compat`).
"""
from vlunet_basicsr.options.pipeline import parse_options  # noqa: F401
