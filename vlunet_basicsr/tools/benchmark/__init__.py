"""scripts/benchmark.py's measurements (``python -m vlunet_basicsr.tools.benchmark``): the systems it builds, torch
eager, --amp-ab, the exported graphs and --compare-release, on the timing harness that ``basicsr compare`` uses
too (`vlunet_basicsr.utils.timing`)."""
