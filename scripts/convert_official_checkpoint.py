"""Convert a released VLU-Net checkpoint (*.ckpt) or adapter file (clip_tuned.pth), or a published DGUNet /
DGUNet+ checkpoint (*.pth), to BasicSR files.

    python scripts/convert_official_checkpoint.py 5task_vlunet.ckpt --output-dir pretrained/5task
    python scripts/convert_official_checkpoint.py model_deblurring.pth --output-dir pretrained/dgunet_gopro

writes net_g.pth, clip_adapter.pth and clip_backbone.pth (each only when the input holds it) and prints
the network_g YAML block that loads the network.
"""
import argparse
import os.path as osp
import sys

from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, load_weights
from vlunet_basicsr.utils.dgunet_checkpoint import convert_dgunet_checkpoint, dgunet_state_dict, dgunet_yaml_block
from vlunet_basicsr.utils.release_checkpoint import convert_release_file, network_yaml_block


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='released *.ckpt (Lightning), clip_tuned.pth, or a DGUNet/DGUNet+ *.pth')
    parser.add_argument('--output-dir', required=True,
                        help='folder for net_g.pth / clip_adapter.pth / clip_backbone.pth')
    parser.add_argument('--de-dim', type=int, default=None, help='fail unless the network has this many keys')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling (only for files from a source you trust)')
    args = parser.parse_args(argv)
    try:
        checkpoint = load_weights(args.input, args.trust_checkpoint)
        if dgunet_state_dict(checkpoint) is not None:
            if args.de_dim is not None:
                raise CheckpointFormatError(f'{args.input} is a DGUNet checkpoint: --de-dim is for VLU-Net files')
            result = convert_dgunet_checkpoint(checkpoint, args.output_dir, args.input)
        else:
            del checkpoint  # convert_release_file reads the file itself
            result = convert_release_file(args.input, args.output_dir, args.trust_checkpoint, args.de_dim)
    except (CheckpointFormatError, FileNotFoundError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    for part, path in result['written'].items():
        print(f'wrote {part}: {path}')
    if 'network_options' in result:
        print('\n# YAML that loads the converted network:')
        weights = osp.abspath(result['written']['network'])
        if 'network_type' in result:  # DGUNet / DGUNetPlus
            print(dgunet_yaml_block(result['network_type'], result['network_options'], weights))
        else:
            print(network_yaml_block(result['network_options'], weights))
    return 0


if __name__ == '__main__':
    sys.exit(main())
