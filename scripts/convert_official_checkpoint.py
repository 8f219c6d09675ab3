"""Convert a released VLU-Net checkpoint (*.ckpt) or adapter file (clip_tuned.pth) to BasicSR files.

    python scripts/convert_official_checkpoint.py 5task_vlunet.ckpt --output-dir pretrained/5task

writes net_g.pth, clip_adapter.pth and clip_backbone.pth (each only when the input holds it) and prints
the network_g YAML block that loads the network.
"""
import argparse
import os.path as osp
import sys

from vlunet_basicsr.utils.release_checkpoint import CheckpointFormatError, convert_release_file, network_yaml_block


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='released *.ckpt (Lightning) or clip_tuned.pth')
    parser.add_argument('--output-dir', required=True,
                        help='folder for net_g.pth / clip_adapter.pth / clip_backbone.pth')
    parser.add_argument('--de-dim', type=int, default=None, help='fail unless the network has this many keys')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling (only for files from a source you trust)')
    args = parser.parse_args(argv)
    try:
        result = convert_release_file(args.input, args.output_dir, args.trust_checkpoint, args.de_dim)
    except (CheckpointFormatError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for part, path in result['written'].items():
        print(f'wrote {part}: {path}')
    if 'network_options' in result:
        print('\n# YAML that loads the converted network:')
        print(network_yaml_block(result['network_options'], osp.abspath(result['written']['network'])))
    return 0


if __name__ == '__main__':
    sys.exit(main())
