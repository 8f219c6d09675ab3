"""`main`: the ``basicsr`` command. Arguments, ``--help`` and argument errors are answered without torch.

The command line is parsed here, once. Only a valid one imports the plugin (``vlunet_basicsr``, which registers
every class on import) by running its command.
"""
import gc
import os
import sys
import tempfile

from vlunet_basicsr_cli.help_texts import COMMANDS
from vlunet_basicsr_cli.parsers import (compare_parser, export_parser, pipeline_parser, restore_backend_error,
                                        restore_parser, serve_parser, tile_error)


def command_parser():
    """The top-level parser: ``basicsr {train,test,restore,...} ...``."""
    import argparse
    parser = argparse.ArgumentParser(
        prog='basicsr', description='BasicSR pipelines with VLU-Net and any installed basicsr plugins.',
        epilog='train and test take BasicSR flags: -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] '
        '[--debug] [--force_yml key:sub=value ...]; restore takes its own. "basicsr COMMAND -h" lists them.')
    subparsers = parser.add_subparsers(dest='command', metavar='{' + ','.join(COMMANDS) + '}')
    for name, text in COMMANDS.items():
        subparsers.add_parser(name, help=text, add_help=False)
    return parser


def _parse(command, rest):
    """The parsed arguments of ``command`` (--help and argument errors end here, before torch)."""
    if command == 'serve':
        parser = serve_parser()
        args = parser.parse_args(rest)
        if tile_error(args):
            parser.error(tile_error(args))
        return args
    if command == 'compare':
        return compare_parser().parse_args(rest)
    if command == 'export':
        return export_parser().parse_args(rest)
    if command == 'restore':
        parser = restore_parser()
        args = parser.parse_args(rest)
        for error in (restore_backend_error(args), tile_error(args)):
            if error:
                parser.error(error)
        return args
    return pipeline_parser(f'basicsr {command}').parse_args(rest)


def pipeline_flags(args):
    """The pipeline flags of parsed ``train``/``test`` arguments, as `vlunet_basicsr.tools.pipelines.run` takes them."""
    return {'launcher': args.launcher, 'auto_resume': args.auto_resume, 'debug': args.debug,
            'force_yml': args.force_yml}


def _run(command, args):
    if command == 'serve':
        from vlunet_basicsr.tools.serve.server import run
        return run(args)
    if command == 'compare':
        from vlunet_basicsr.tools.compare.command import run
        return run(args)
    if command == 'export':
        from vlunet_basicsr.tools.export.onnx_export import run
        return run(args)
    if command == 'restore':
        from vlunet_basicsr.tools.restore.inference import run
        return run(args)
    from vlunet_basicsr.tools.pipelines import run
    run(command, args.opt, **pipeline_flags(args))
    return 0


def main(argv=None):
    """``basicsr COMMAND ...`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    args = _parse(command, rest)
    if command == 'serve':
        # the server's folder is made before torch is imported, to hold torch's cache folder, which torch makes at
        # import (TMPDIR/torchinductor_<user> unless TORCHINDUCTOR_CACHE_DIR names one); all of it goes at stop
        args.workspace = tempfile.mkdtemp(prefix='basicsr-serve-')
        os.environ.setdefault('TORCHINDUCTOR_CACHE_DIR', os.path.join(args.workspace, 'torchinductor'))
    return _run(command, args)


def console_main(argv=None):
    """The ``basicsr`` program, whose process ends when the command does (the console script, ``python -m
    vlunet_basicsr_cli``, ``python -m vlunet_basicsr.train`` / ``.test``): `main`, then the objects alive are frozen
    (`gc.freeze`), so that the interpreter's last collection, at exit, does not walk the million-odd objects that
    torch, basicsr and the plugin made (1.4 s of each command's exit here; docs/benchmarks/house.md). Frozen objects
    are never collected: a caller that goes on running calls `main`."""
    code = main(argv)
    gc.freeze()
    return code
