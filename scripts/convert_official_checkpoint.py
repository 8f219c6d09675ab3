"""Convert a published checkpoint to BasicSR files: a front over vlunet_basicsr.tools.convert.convert_checkpoint, which
finds the file's layout among those registered (vlunet_basicsr/tools/convert/*_checkpoint.py).

    python scripts/convert_official_checkpoint.py 5task_vlunet.ckpt --output-dir pretrained/5task
    python scripts/convert_official_checkpoint.py model_deblurring.pth --output-dir pretrained/dgunet_gopro

writes the files the input holds (net_g.pth, and e.g. clip_adapter.pth, clip_backbone.pth), each checked
against the network it loads into before anything is written, and prints the network_g YAML block that
loads the network.
"""
import argparse
import os.path as osp
import sys

from vlunet_basicsr.tools.convert import CHECKPOINT_LAYOUT_REGISTRY, convert_checkpoint
from vlunet_basicsr.tools.convert.conversion import pretrain_yaml_block
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError


def main(argv=None):
    known = '; '.join(layout.name for _, layout in CHECKPOINT_LAYOUT_REGISTRY)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=f'known layouts: {known}')
    parser.add_argument('input', help='a published checkpoint file of a known layout (see below)')
    parser.add_argument('--output-dir', required=True, help='folder for net_g.pth and the other files written')
    parser.add_argument('--de-dim', type=int, default=None, help='fail unless the network has this many keys')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling (only for files from a source you trust)')
    parser.add_argument('--overwrite', action='store_true', help='replace output files that already exist')
    args = parser.parse_args(argv)
    try:
        conversion = convert_checkpoint(args.input, args.output_dir, args.trust_checkpoint,
                                        {'de_dim': args.de_dim}, overwrite=args.overwrite)
    except (CheckpointFormatError, OSError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for part, path in conversion.written.items():
        print(f'wrote {part}: {path}')
    if conversion.yaml_block:
        print('\n# YAML that loads the converted network:')
        print(conversion.yaml_block)
        if 'network' in conversion.written:
            print('\n' + pretrain_yaml_block(osp.abspath(conversion.written['network'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
