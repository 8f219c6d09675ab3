"""Options, in one home: declared (`spec`), read (`loading`: YAML, ``--force_yml``, plugins), checked (`checks`,
`basicsr_keys`), documented (`reference`), and the pipeline that does it all (`pipeline.parse_options`).

`parse_options` replaces basicsr's own in its train and test pipelines (see `vlunet_basicsr.compat`).
"""
from vlunet_basicsr.tools.options.pipeline import parse_options  # noqa: F401
