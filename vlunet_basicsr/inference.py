"""Restore your own images: ``basicsr restore INPUT -o OUTPUT [-opt test.yml | --weights net_g.pth ...]``.

INPUT is an image or a folder (png, jpg, bmp, tif, webp). Each output has the input's size and bit depth
(8 or 16), stays grayscale if the input is, and keeps the input's alpha channel untouched. Results are PNG
files in the output folder; an input is never overwritten. The predicted degradation of each image
(zero-shot over the prompts with the tuned adapters) is printed and written to ``degradations.csv``;
``--explain`` also saves, per image, the key-mixture weights of every stage and the gradient-step residual
maps ``phi(x, keys) - y`` (the paper's degradation maps).
"""
import argparse
import csv
import os
import os.path as osp
import sys

import cv2
import numpy as np
import torch

from vlunet_basicsr.data.image_source import list_image_files
from vlunet_basicsr.utils.cpu_allocator import CHOICES as CPU_ALLOCATORS, tune_cpu_allocator
from vlunet_basicsr.utils.precision import AMP_DTYPES, autocast
from vlunet_basicsr.utils.prompts import DEGRADATION_PROMPTS


def _parser():
    parser = argparse.ArgumentParser(prog='basicsr restore', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('-o', '--output', default='results/restore', help='output folder (default: results/restore)')
    parser.add_argument('-opt', help='a test YAML (network_g, network_clip, path.pretrain_network_g)')
    parser.add_argument('--weights', help='net_g.pth (BasicSR format); network options are read from its shapes')
    parser.add_argument('--clip-weights', help='CLIP backbone weights (e.g. the converter\'s clip_backbone.pth)')
    parser.add_argument('--adapter', help='CLIP adapters (clip_adapter.pth, or the released clip_tuned.pth)')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32)')
    parser.add_argument('--tile', type=int, help='restore in tiles of this size (large images)')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--amp', choices=list(AMP_DTYPES), default='none',
                        help='autocast precision (default: none = float32); bf16 is the fast choice on recent GPUs')
    parser.add_argument('--half', action='store_const', dest='amp', const='fp16', help='same as --amp fp16')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (minutes to compile; pays off over many images of one size)')
    parser.add_argument('--cpu-allocator', choices=CPU_ALLOCATORS, default='system',
                        help='on CPU: glibc defaults (system, default) or keep freed memory for reuse (tuned: '
                        'faster, but whole large images then need up to twice the memory)')
    parser.add_argument('--explain', action='store_true', help='save key-mixture weights and residual maps')
    return parser


def load_networks(args):
    """Build VLUNet (and DegradationCLIP when configured) from ``-opt`` and/or the weight flags."""
    from basicsr.archs import build_network
    from vlunet_basicsr.utils.options_util import load_yaml
    from vlunet_basicsr.utils.release_checkpoint import infer_network_options, load_weights

    opt = load_yaml(args.opt) if args.opt else {}
    path_opt = opt.get('path') or {}
    weights = args.weights or path_opt.get('pretrain_network_g')
    if weights is None:
        raise ValueError('give -opt (a test YAML with path.pretrain_network_g) or --weights net_g.pth')
    checkpoint = load_weights(weights)
    param_key = path_opt.get('param_key_g') or ('params_ema' if 'params_ema' in checkpoint else 'params')
    if param_key not in checkpoint:
        raise ValueError(f"{weights} has no '{param_key}' entry (keys: {sorted(checkpoint)})")
    state = checkpoint[param_key]
    net_opt = dict(opt['network_g']) if 'network_g' in opt else {'type': 'VLUNet', **infer_network_options(state)}
    net = build_network(net_opt)
    net.load_state_dict(state, strict=True)

    clip_opt = dict(opt['network_clip']) if opt.get('network_clip') else None
    if clip_opt is None and (args.clip_weights or args.adapter):
        clip_opt = {'type': 'DegradationCLIP', 'model_name': args.clip_model}
    if clip_opt is not None:
        if args.clip_weights:
            clip_opt['pretrained'] = args.clip_weights
        if args.adapter:
            clip_opt['adapter_path'] = args.adapter
    clip = build_network(clip_opt) if clip_opt is not None else None
    prompts = list(opt.get('prompts') or DEGRADATION_PROMPTS)
    return net, clip, prompts


def list_inputs(path):
    if osp.isfile(path):
        return [path]
    if not osp.exists(path):
        raise FileNotFoundError(f'input: no image file or folder at {path}')
    return [osp.join(path, name) for name in list_image_files(path, 'input')]


def read_image(path):
    """-> (RGB float32 HxWx3 in [0, 1], alpha or None, is_gray, dtype) for 8/16-bit gray, gray+alpha, RGB, RGBA."""
    raw = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if raw is None:
        raise ValueError(f'cannot read image {path}: the file is corrupt, truncated or not an image')
    if raw.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'{path}: unsupported sample type {raw.dtype} (8- or 16-bit images only)')
    scale = float(np.iinfo(raw.dtype).max)
    alpha = None
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        raw, alpha = raw[..., :-1], raw[..., -1]
    is_gray = raw.ndim == 2 or raw.shape[2] == 1
    if is_gray:
        rgb = np.repeat(raw.reshape(raw.shape[0], raw.shape[1], 1), 3, axis=2)
    else:
        rgb = raw[..., ::-1]
    return (rgb.astype(np.float32) / scale), alpha, is_gray, raw.dtype


def to_output_image(rgb, alpha, is_gray, dtype):
    scale = float(np.iinfo(dtype).max)
    image = np.rint(np.clip(rgb, 0, 1) * scale).astype(dtype)
    image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if is_gray else image[..., ::-1]
    if alpha is not None:
        image = np.dstack([image, alpha])
    return image


def output_names(paths):
    """``<stem>.png`` per input; inputs that share a stem get ``<stem>_<ext>.png``."""
    stems = [osp.splitext(osp.basename(p))[0] for p in paths]
    return [f'{stem}.png' if stems.count(stem) == 1 else f'{stem}_{osp.splitext(p)[1][1:].lower()}.png'
            for stem, p in zip(stems, paths)]


def main(argv=None):
    args = _parser().parse_args(argv)
    import vlunet_basicsr  # noqa: F401
    from vlunet_basicsr.utils.plot_util import save_mixture_weights, save_residual_maps
    from vlunet_basicsr.utils.restore_util import compiled, restore

    try:
        inputs = list_inputs(args.input)
        net, clip, prompts = load_networks(args)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    device = torch.device(args.device)
    if device.type == 'cpu':
        tune_cpu_allocator(args.cpu_allocator)
    net = net.to(device).eval()
    runner = compiled(net, args.compile, '--compile')
    clip = clip.to(device).eval() if clip is not None else None
    if clip is None:
        print('no CLIP configured (network_clip / --clip-weights / --adapter): restoring without guidance')
    os.makedirs(args.output, exist_ok=True)
    rows, failures = [], []
    for path, name in zip(inputs, output_names(inputs)):
        target = osp.join(args.output, name)
        if osp.exists(target) and osp.samefile(target, path):
            failures.append(path)
            print(f'error: {path}: the output would overwrite the input; choose another output folder',
                  file=sys.stderr)
            continue
        try:
            rgb, alpha, is_gray, dtype = read_image(path)
        except ValueError as error:
            failures.append(path)
            print(f'error: {error}', file=sys.stderr)
            continue
        lq = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)
        with torch.no_grad(), autocast(device, AMP_DTYPES[args.amp]):
            vector, line = None, ''
            if clip is not None:
                vector = clip.degradation_vector(lq)
                probabilities = clip.prompt_probabilities(vector, prompts)[0].float().cpu()
                best = int(probabilities.argmax())
                rows.append([osp.basename(path), prompts[best], f'{probabilities[best]:.4f}',
                             *[f'{p:.4f}' for p in probabilities.tolist()]])
                line = f'  {prompts[best]} (p={probabilities[best]:.2f})'
            output = restore(runner, lq, vector, args.tile, args.tile_overlap)
            if args.explain:
                _, trace = net.forward_with_trace(lq, vector)
                stem = osp.splitext(name)[0]
                save_mixture_weights(trace, osp.join(args.output, 'explain', f'{stem}_mixture_weights.png'))
                save_residual_maps(trace, osp.join(args.output, 'explain', f'{stem}_residuals.png'))
        restored = output[0].float().permute(1, 2, 0).cpu().numpy()
        cv2.imwrite(target, to_output_image(restored, alpha, is_gray, dtype))
        print(f'{path} -> {target}{line}', flush=True)
    if rows:
        with open(osp.join(args.output, 'degradations.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['file', 'predicted', 'probability', *prompts])
            writer.writerows(rows)
    print(f'{len(inputs) - len(failures)} restored, {len(failures)} failed' +
          (f": {', '.join(failures)}" if failures else ''))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
