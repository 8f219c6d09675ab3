"""The ``basicsr`` command's front door: arguments, ``--help`` and argument errors without importing torch.

``basicsr train|test -opt X.yml [BasicSR flags]`` and ``basicsr restore ...`` are parsed here, in a module
outside the ``vlunet_basicsr`` package (importing that package registers every class, which imports torch and
basicsr: seconds of start-up that ``--help`` should not pay). Only a valid command line goes on to
`vlunet_basicsr.cli`.
"""
import argparse
import sys

COMMANDS = {
    'train': 'train a model from an option YAML (BasicSR train pipeline)',
    'test': 'test a model from an option YAML (BasicSR test pipeline)',
    'restore': 'restore your own images with a trained or released network (see "basicsr restore -h")',
}


def command_parser():
    """The top-level parser: ``basicsr {train,test,restore} ...``."""
    parser = argparse.ArgumentParser(
        prog='basicsr', description='BasicSR pipelines with VLU-Net and any installed basicsr plugins.',
        epilog='train and test take BasicSR flags: -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] '
        '[--debug] [--force_yml key:sub=value ...]; restore takes its own. "basicsr COMMAND -h" lists them.')
    subparsers = parser.add_subparsers(dest='command', metavar='{' + ','.join(COMMANDS) + '}')
    for name, text in COMMANDS.items():
        subparsers.add_parser(name, help=text, add_help=False)
    return parser


def pipeline_parser(prog='basicsr train'):
    """BasicSR's flags for the train and test pipelines (plus ``--local-rank``, which torch's launcher passes)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the latest training state')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override YAML values, parsed as YAML. Examples: train:ema_decay=0.999 '
                        'train:optim_g:lr=1e-4')
    return parser


RESTORE_DESCRIPTION = """Restore your own images with a trained or released VLU-Net.

INPUT is an image or a folder (png, jpg, jpeg, bmp, tif, tiff, webp). Each output has the input's size and bit
depth (8 or 16), stays grayscale if the input is, and keeps the input's alpha channel untouched. Results are PNG
files in the output folder, named <stem>.png (<stem>_<ext>.png when inputs share a stem; <name>_2.png, ... when
that name is already another input's result). No result ever replaces an input file: an input whose result
would is refused by name. Images are read by the datasets' decoder: an empty, truncated (JPEG without its end
marker, PNG without IEND) or corrupt file is named, the others are still restored, and the exit code is 1;
a folder without images, or network weights that are missing, corrupt or unsafe, stop it with exit code 2.
The predicted degradation of each image (zero-shot over the prompts with the tuned adapters) is printed and
written to degradations.csv; --explain also saves, per image, the key-mixture weights of every stage and the
gradient-step residual maps phi(x, keys) - y (the paper's degradation maps). Progress (images, and tiles with
--tile) is shown on stderr.
"""


def restore_parser():
    """The arguments of ``basicsr restore`` (``--device auto`` is resolved when the command runs)."""
    parser = argparse.ArgumentParser(prog='basicsr restore', description=RESTORE_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('-o', '--output', default='results/restore', help='output folder (default: results/restore)')
    parser.add_argument('-opt', help='a test YAML (network_g, network_clip, path.pretrain_network_g)')
    parser.add_argument('--weights', help='net_g.pth (BasicSR format); network options are read from its shapes')
    parser.add_argument('--clip-weights', help='CLIP backbone weights (e.g. the converter\'s clip_backbone.pth)')
    parser.add_argument('--adapter', help='CLIP adapters (clip_adapter.pth, or the released clip_tuned.pth)')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling of the network weights (--weights or path.pretrain_network_g)'
                        '; only for files from a source you trust')
    parser.add_argument('--tile', type=int, help='restore in tiles of this size (large images)')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='auto (default): cuda when available, else cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                        help='autocast precision (default: none = float32); bf16 is the fast choice on recent GPUs')
    parser.add_argument('--half', action='store_const', dest='amp', const='fp16', help='same as --amp fp16')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (minutes to compile; pays off over many images of one size)')
    parser.add_argument('--cpu-allocator', choices=['tuned', 'system'], default='system',
                        help='on CPU: glibc defaults (system, default) or keep freed memory for reuse (tuned: '
                        'faster, but whole large images then need up to twice the memory)')
    parser.add_argument('--explain', action='store_true', help='save key-mixture weights and residual maps')
    parser.add_argument('--degradation-type', help='text-guided archs (VL-UR): the degradation to restore every image '
                        'with (a label, its name such as low_haze, or the prompt) instead of the predicted one')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    if command == 'restore':
        args = restore_parser().parse_args(rest)  # --help and argument errors end here, before torch
        from vlunet_basicsr.inference import run as restore_run
        return restore_run(args)
    pipeline_parser(f'basicsr {command}').parse_args(rest)  # --help and argument errors end here
    from vlunet_basicsr.cli import run
    run(command, rest)
    return 0


if __name__ == '__main__':
    sys.exit(main())
