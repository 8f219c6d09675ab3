"""Running BasicSR's train and test pipelines with this plugin: ``run('train'|'test', argv)``.

The ``basicsr`` command (`vlunet_basicsr.cli.main`) parses its arguments torch-free and calls `run`;
``python -m vlunet_basicsr.train`` / ``.test`` (for torchrun) call it directly. Experiments, results and
tb_logger folders are created under the current working directory. Options are read by
`vlunet_basicsr.options.parse_options` (plugins, ``--force_yml``, checks, derived paths).
"""
import os
import sys


def run(command, argv, root_path=None):
    """Run one pipeline with BasicSR's flags in ``argv``; results go under ``root_path`` (default: cwd)."""
    from vlunet_basicsr import register
    register()  # compat fixes and registration before basicsr builds anything
    root_path = os.getcwd() if root_path is None else root_path
    sys.argv = [f'basicsr {command}'] + list(argv)
    if command == 'train':
        from basicsr.train import train_pipeline
        train_pipeline(root_path)
    elif command == 'test':
        from basicsr.test import test_pipeline
        test_pipeline(root_path)
    else:
        raise ValueError(f"Unknown command '{command}'; expected train or test")
