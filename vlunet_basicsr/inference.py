"""``basicsr restore``: restore your own images (arguments: `vlunet_basicsr_cli.restore_parser`, which also
describes the command).

Reading: every input goes through the datasets' decoder (`vlunet_basicsr.utils.image_io.decode_image`), so a
file a dataset refuses (empty, truncated, corrupt) is refused here too, by name. Writing: all result names are
decided before anything is written (`vlunet_basicsr.utils.output_names.plan_outputs`): ``<stem>.png``, or
``<stem>_<ext>.png`` when inputs share a stem, or ``<name>_2.png``, ... when the name is already another
input's result; an input whose result (or ``--explain`` plot) would replace any input file is refused by
name. Progress over the images and over the tiles of each image is shown on stderr (tqdm).
"""
import csv
import os
import os.path as osp
import sys
from collections import namedtuple

from vlunet_basicsr_cli import restore_parser

#: What `load_networks` returns.
Networks = namedtuple('Networks', ['net', 'inputs', 'clip', 'prompts', 'fixed_label', 'size_multiple'])


def load_networks(args):
    """The network (VLUNet from ``--weights`` alone, else ``network_g``), its protocol and its guidance encoder.

    Returns:
        Networks: ``net``, ``inputs`` (`NetworkInputs`), ``clip`` (or None), ``prompts``, ``fixed_label`` (the
        ``--degradation-type`` / ``val.degradation_type`` label of a text-guided arch, or None) and
        ``size_multiple`` (``val.size_multiple``).
    """
    from basicsr.archs import build_network
    from vlunet_basicsr.utils.checkpoint_util import load_weights
    from vlunet_basicsr.utils.options_util import load_yaml
    from vlunet_basicsr.models.network_inputs import NetworkInputs
    from vlunet_basicsr.utils.prompts import prompt_label, resolve_prompts
    from vlunet_basicsr.utils.release_checkpoint import infer_network_options

    opt = load_yaml(args.opt) if args.opt else {}
    path_opt = opt.get('path') or {}
    weights = args.weights or path_opt.get('pretrain_network_g')
    if weights is None:
        raise ValueError('give -opt (a test YAML with path.pretrain_network_g) or --weights net_g.pth')
    trust = args.trust_checkpoint or bool(path_opt.get('trust_checkpoint', False))
    checkpoint = load_weights(weights, trust, how_to_trust='pass --trust-checkpoint')
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
    inputs = NetworkInputs.of(type(net))
    inputs.check_encoder(clip is not None)
    if args.explain and not hasattr(net, 'forward_with_trace'):
        raise ValueError(f'--explain shows the key mixtures of VLU-Net; {type(net).__name__} has none')
    prompts = resolve_prompts(opt.get('prompts'))
    degradation_type = args.degradation_type or (opt.get('val') or {}).get('degradation_type')
    fixed = None if degradation_type is None else prompt_label(degradation_type, prompts, '--degradation-type')
    if fixed is not None and inputs.guidance_input != 'text_features':
        raise ValueError(f'--degradation-type is for text-guided archs; {type(net).__name__} does not take one')
    size_multiple = int((opt.get('val') or {}).get('size_multiple', 1))
    return Networks(net, inputs, clip, prompts, fixed, size_multiple)


def list_inputs(path):
    """The image files to restore: ``path`` itself, or the images of the folder ``path`` (sorted)."""
    from vlunet_basicsr.data.image_source import IMAGE_EXTENSIONS, list_image_files
    if osp.isfile(path):
        return [path]
    if not osp.exists(path):
        raise FileNotFoundError(f'input: no image file or folder at {path}')
    inputs = [osp.join(path, name) for name in list_image_files(path, 'input')]
    if not inputs:
        raise FileNotFoundError(f"input: the folder {path} holds no image (accepted extensions: "
                                f"{', '.join(IMAGE_EXTENSIONS)}, any case)")
    return inputs


def _explain_files(name):
    stem = osp.splitext(name)[0]
    return [osp.join('explain', f'{stem}_mixture_weights.png'), osp.join('explain', f'{stem}_residuals.png')]


def _tile_bar(tqdm, enabled):
    """A ``progress(done, total)`` callback that draws one tile bar per image (None when not tiling)."""
    state = {}

    def progress(done, total):
        if 'bar' not in state:
            state['bar'] = tqdm(total=total, desc='  tiles', unit='tile', leave=False, file=sys.stderr)
        state['bar'].update(1)
        if done == total:
            state.pop('bar').close()

    return progress if enabled else None


def run(args):
    """Restore as the parsed ``args`` say; returns the exit code (0: all restored, 1: some failed, 2: nothing ran)."""
    import cv2
    import numpy as np
    import torch
    from tqdm import tqdm

    import vlunet_basicsr  # noqa: F401  (registers the archs)
    from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator
    from vlunet_basicsr.utils.image_io import encode_like, read_image_file
    from vlunet_basicsr.utils.output_names import plan_outputs
    from vlunet_basicsr.utils.plot_util import save_mixture_weights, save_residual_maps
    from vlunet_basicsr.utils.precision import AMP_DTYPES, autocast
    from vlunet_basicsr.utils.restore_util import compiled, restore_image

    try:
        inputs = list_inputs(args.input)
        plans = plan_outputs(inputs, args.output, _explain_files if args.explain else None)
        networks = load_networks(args)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    device = torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if args.device == 'auto' else args.device)
    if device.type == 'cpu':
        tune_cpu_allocator(args.cpu_allocator)
    net, clip, prompts = networks.net.to(device).eval(), networks.clip, networks.prompts
    runner = compiled(net, args.compile, '--compile')
    clip = clip.to(device).eval() if clip is not None else None
    print(networks.inputs.describe(None if clip is None else type(clip).__name__))
    text_features = None
    if networks.inputs.guidance_input == 'text_features':
        with torch.no_grad():
            text_features = clip.encode_text(prompts).float()
    os.makedirs(args.output, exist_ok=True)
    rows, failures = [], []
    for plan in tqdm(plans, desc='restore', unit='image', file=sys.stderr, disable=len(plans) < 2):
        path, target = plan.input, plan.target
        if plan.error:
            failures.append(path)
            tqdm.write(f'error: {plan.error}', file=sys.stderr)
            continue
        if plan.note:
            tqdm.write(f'note: {plan.note}', file=sys.stderr)
        try:
            rgb, alpha, is_gray, dtype = read_image_file(path)
        except (ValueError, OSError) as error:
            failures.append(path)
            tqdm.write(f'error: {error}', file=sys.stderr)
            continue
        lq = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None].to(device)
        with torch.no_grad(), autocast(device, AMP_DTYPES[args.amp]):
            vector, guidance, line = None, None, ''
            if clip is not None:
                vector = clip.degradation_vector(lq)
                probabilities = clip.prompt_probabilities(vector, prompts)[0].float().cpu()
                best = int(probabilities.argmax())
                used = best if networks.fixed_label is None else networks.fixed_label
                rows.append([osp.basename(path), prompts[best], f'{probabilities[best]:.4f}', prompts[used],
                             *[f'{p:.4f}' for p in probabilities.tolist()]])
                line = f'  {prompts[best]} (p={probabilities[best]:.2f})'
                if text_features is not None:
                    guidance = text_features[used][None]
                    line += '' if used == best else f'; restored as {prompts[used]}'
                else:
                    guidance = vector
            run = networks.inputs.final(runner, guidance)
            output = restore_image(run, lq, args.tile, args.tile_overlap, size_multiple=networks.size_multiple,
                                   progress=_tile_bar(tqdm, args.tile))
            if args.explain:
                _, trace = net.forward_with_trace(lq, vector)
                explain = [osp.join(args.output, p) for p in _explain_files(osp.basename(target))]
                save_mixture_weights(trace, explain[0])
                save_residual_maps(trace, explain[1])
        restored = output[0].float().permute(1, 2, 0).cpu().numpy()
        if not cv2.imwrite(target, encode_like(restored, alpha, is_gray, dtype)):
            failures.append(path)
            tqdm.write(f'error: {path}: cannot write {target}', file=sys.stderr)
            continue
        tqdm.write(f'{path} -> {target}{line}', file=sys.stdout)
        sys.stdout.flush()
    if rows:
        with open(osp.join(args.output, 'degradations.csv'), 'w', newline='') as f:
            writer = csv.writer(f)
            writer.writerow(['file', 'predicted', 'probability', 'restored_as', *prompts])
            writer.writerows(rows)
    print(f'{len(inputs) - len(failures)} restored, {len(failures)} failed' +
          (f": {', '.join(failures)}" if failures else ''))
    return 1 if failures else 0


def main(argv=None):
    """``basicsr restore`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code."""
    return run(restore_parser().parse_args(argv))


if __name__ == '__main__':
    sys.exit(main())
