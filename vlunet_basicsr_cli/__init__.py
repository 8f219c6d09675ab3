"""The ``basicsr`` command, torch-free until a command runs: `main` (front_door.py), every command's arguments
(parsers.py) and their help texts (help_texts.py).

A package of its own beside the plugin, as open_clip ships ``open_clip_train`` beside ``open_clip``: it imports
``vlunet_basicsr`` only to run a command, and nothing in ``vlunet_basicsr`` imports it. The console script is
``basicsr = vlunet_basicsr_cli:console_main``.
"""
from vlunet_basicsr_cli.front_door import console_main, main  # noqa: F401
