"""``basicsr restore``: restore your own images (arguments: `vlunet_basicsr_cli.parsers.restore_parser`, which also
describes the command).

Reading: every input goes through the datasets' decoder (`vlunet_basicsr.utils.image_io.decode_image`), so a
file a dataset refuses (empty, truncated, corrupt) is refused here too, by name. Writing: all result names (and
``--explain`` figures) are decided before anything is written, by the rule of `vlunet_basicsr.utils.output_names`;
an input whose result would replace any input file is refused by name. Progress over the images and
over the tiles of each image is shown on stderr (tqdm).
"""
import csv
import os
import os.path as osp
import sys


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
    """Restore as the parsed ``args`` say (checked by ``basicsr restore``'s parser); returns the exit code (0: all
    restored, 1: some failed, 2: nothing ran)."""
    from tqdm import tqdm

    from vlunet_basicsr.tools.restore.restorer import Restorer, load_networks, resolve_device
    from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator
    from vlunet_basicsr.utils.image_io import read_image_file
    from vlunet_basicsr.utils.output_names import explain_files, plan_outputs

    try:
        # an exported graph's runtime meets torch on the host (ONNX Runtime's execution providers follow --device)
        device = resolve_device(args.device) if args.backend == 'torch' else resolve_device('cpu')
        inputs = list_inputs(args.input)
        plans = plan_outputs(inputs, args.output, explain_files if args.explain else None)
        if args.backend != 'torch':
            from vlunet_basicsr.tools.export.onnx_runtime import load_exported_networks
            networks = load_exported_networks(args.backend, args.onnx, args.device, args.degradation_type,
                                              args.ov_precision)
        else:
            networks = load_networks(args.opt, args.weights, args.clip_weights, args.adapter, args.clip_model,
                                     args.trust_checkpoint, args.degradation_type)
        if args.explain and not networks.inputs.explains:
            raise ValueError(f'--explain shows the key mixtures of VLU-Net; {networks.inputs.arch} has none')
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    if device.type == 'cpu':
        tune_cpu_allocator(args.cpu_allocator)
    restorer = Restorer(networks, device, args.amp, args.compile, args.tile, args.tile_overlap)
    prompts = restorer.prompts
    print(restorer.describe())
    if args.backend != 'torch':
        print(f'Backend {args.backend}: {args.onnx}, {networks.net.describe()}.')
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
            result, _ = restorer.restore_file(read_image_file(path), target, progress=_tile_bar(tqdm, args.tile),
                                              explain=args.explain)
        except (ValueError, OSError) as error:
            failures.append(path)
            tqdm.write(f'error: {error}', file=sys.stderr)
            continue
        line, prediction = '', result.prediction
        if prediction is not None:
            rows.append([osp.basename(path), prompts[prediction.label], f'{prediction.probability:.4f}',
                         prompts[prediction.used_label], *[f'{p:.4f}' for p in prediction.probabilities]])
            line = f'  {prompts[prediction.label]} (p={prediction.probability:.2f})'
            if prediction.used_label != prediction.label:
                line += f'; restored as {prompts[prediction.used_label]}'
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

