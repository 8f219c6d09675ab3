"""VLU-Net for BasicSR: importing this package applies the basicsr compat fixes and registers every class.

How the ``basicsr`` command stays torch-free although it lives in this package: Python runs this file before
any submodule, so ``from vlunet_basicsr.cli import main`` (the console script) runs it too, and no lazy
attribute (PEP 562) can fill basicsr's registries, which are read by name without touching this module. So the
import registers (`register`: compat first, then archs, data, losses, metrics, models, which import torch)
everywhere except in the ``basicsr`` program, named by ``sys.argv[0]`` (``basicsr``, ``basicsr.exe``,
``basicsr-script.py``). There `vlunet_basicsr.cli.main` parses the command line without torch and calls
`register` itself before any command runs, so everything a command, a YAML ``plugins`` module or a
``basicsr.plugins`` entry point imports finds the classes registered, as everywhere else.
"""
import os.path as osp
import sys

__version__ = '0.1.0'

_FRONT_DOOR_PROGRAMS = ('basicsr', 'basicsr.exe', 'basicsr-script.py')


def register():
    """Apply the basicsr compat fixes and register every class of the package (once; safe to call again)."""
    from vlunet_basicsr import compat
    compat.apply()
    from vlunet_basicsr import archs, data, losses, metrics, models  # noqa: F401  (registers the classes)


def _in_front_door():
    """Whether this process is the ``basicsr`` console script, which registers after parsing its arguments."""
    program = (getattr(sys, 'argv', None) or [''])[0] or ''
    return osp.basename(program).lower() in _FRONT_DOOR_PROGRAMS


if not _in_front_door():
    register()
