"""Options, in one home: declared (`spec`), read (`loading`: YAML, ``--force_yml``, plugins), checked (`checks`,
BasicSR's keys in `spec`), documented (`reference`), and the pipeline that does it all (`pipeline.parse_options`).

`basicsr train|test` hand what `parse_options` returns to basicsr's pipelines (`vlunet_basicsr.tools.pipelines`).
"""
from vlunet_basicsr.tools.options.pipeline import parse_options  # noqa: F401
