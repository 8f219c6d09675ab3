"""The ``basicsr`` command: `main` (front_door.py), the arguments of every command (parsers.py) and their help
texts (help_texts.py), all torch-free; `run` (pipelines.py) runs BasicSR's train and test pipelines.

The console script is ``basicsr = vlunet_basicsr.cli:main``.
"""
from vlunet_basicsr.cli.front_door import main  # noqa: F401
from vlunet_basicsr.cli.help_texts import COMMANDS  # noqa: F401
from vlunet_basicsr.cli.pipelines import run  # noqa: F401
