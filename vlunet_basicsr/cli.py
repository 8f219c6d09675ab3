"""The ``basicsr`` command: ``basicsr train|test -opt X.yml [BasicSR flags]`` and ``basicsr restore``.

Experiments, results and tb_logger folders are created under the current working directory. Before
anything is built, vlunet_basicsr registers its classes, then every installed ``basicsr.plugins`` entry
point and every module named in the YAML key ``plugins`` is imported (see ``compat.parse_options``).
"""
import argparse
import os
import sys

COMMANDS = {
    'train': 'train a model from an option YAML (BasicSR train pipeline)',
    'test': 'test a model from an option YAML (BasicSR test pipeline)',
    'restore': 'restore your own images with a trained or released VLU-Net (see "basicsr restore -h")',
}


def _parser():
    parser = argparse.ArgumentParser(
        prog='basicsr', description='BasicSR pipelines with VLU-Net and any installed basicsr plugins.',
        epilog='Each command takes BasicSR flags: -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] '
        '[--debug] [--force_yml key:sub=value ...]; restore takes its own. "basicsr COMMAND -h" lists them.')
    subparsers = parser.add_subparsers(dest='command', metavar='{' + ','.join(COMMANDS) + '}')
    for name, text in COMMANDS.items():
        subparsers.add_parser(name, help=text, add_help=False)
    return parser


def run(command, argv, root_path=None):
    """Run one pipeline with BasicSR's flags in ``argv``; results go under ``root_path`` (default: cwd)."""
    import vlunet_basicsr  # noqa: F401  (compat fixes and registration before basicsr builds anything)
    root_path = os.getcwd() if root_path is None else root_path
    sys.argv = [f'basicsr {command}'] + list(argv)
    if command == 'train':
        from basicsr.train import train_pipeline
        train_pipeline(root_path)
    elif command == 'test':
        from basicsr.test import test_pipeline
        test_pipeline(root_path)
    else:
        raise ValueError(f"Unknown command '{command}'; expected one of {', '.join(COMMANDS)}")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = _parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        parser.error(f"unknown command '{argv[0]}' (choose from {', '.join(COMMANDS)})")
    if argv[0] == 'restore':
        from vlunet_basicsr.inference import main as restore_main
        return restore_main(argv[1:])
    run(argv[0], argv[1:])
    return 0


if __name__ == '__main__':
    sys.exit(main())
