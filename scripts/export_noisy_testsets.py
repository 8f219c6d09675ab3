"""Write the canonical noisy test images (e.g. CBSD68, Urban100 at sigma 15/25/50) with a SHA-256 manifest.

    python scripts/export_noisy_testsets.py datasets/cbsd68/gt.lmdb --output noisy/cbsd68 --sigmas 15 25 50

The noise is the one PairedDegradationDataset adds (it depends only on noise seed, image key and sigma,
rounded to 8 bits), so results can be compared across papers and machines: OUTPUT/sigma<S>/<key>.png and
OUTPUT/manifest.sha256 (``sha256  relative/path`` per line, as sha256sum -c reads it).
"""
import argparse
import hashlib
import os
import os.path as osp
import sys

import cv2
import numpy as np
from tqdm import tqdm

from vlunet_basicsr.data.degradations import add_gaussian_noise, noise_rng
from vlunet_basicsr.data.dataset_writer import prepare_output
from vlunet_basicsr.data.image_source import ImageSource


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='clean images: a folder or a *.lmdb')
    parser.add_argument('--output', required=True)
    parser.add_argument('--sigmas', type=float, nargs='+', default=[15, 25, 50])
    parser.add_argument('--noise-seed', type=int, default=0, help='the noise_seed of the test YAMLs')
    parser.add_argument('--overwrite', action='store_true')
    args = parser.parse_args(argv)

    backend = 'lmdb' if args.input.rstrip('/').endswith('.lmdb') else 'disk'
    source = ImageSource({'dataroot_gt': args.input, 'noise_sigma': args.sigmas[0], 'label': 0,
                          'io_backend': {'type': backend}}, f'input {args.input}')
    folders = {sigma: osp.join(args.output, f'sigma{sigma:g}') for sigma in args.sigmas}
    manifest = osp.join(args.output, 'manifest.sha256')
    try:
        prepare_output([*folders.values(), manifest], args.overwrite)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    lines = []
    for sigma, folder in folders.items():
        os.makedirs(folder)
        for index in tqdm(range(len(source)), desc=f'sigma {sigma:g}', unit='img'):
            record = source.read(index)
            noisy = add_gaussian_noise(record['gt'], sigma, noise_rng(args.noise_seed, record['key'], sigma))
            ok, encoded = cv2.imencode('.png', np.rint(noisy * 255).astype(np.uint8)[..., ::-1])
            relative = osp.join(osp.basename(folder), f"{record['key']}.png")
            with open(osp.join(args.output, relative), 'wb') as f:
                f.write(encoded.tobytes())
            lines.append(f'{hashlib.sha256(encoded.tobytes()).hexdigest()}  {relative}\n')
    with open(manifest, 'w') as f:
        f.writelines(lines)
    print(f'wrote {len(lines)} noisy images and {manifest}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
