"""README's first command (`make demo`): the whole VLU-Net pipeline on CPU with embedded data, in minutes.

1. Builds a small NHRBL-like dataset from colour photographs that ship inside scikit-image (train and test
   split by image): Gaussian noise sigma 15/25/50 (added on the fly), haze (atmospheric scattering model with a
   smooth synthetic depth), rain streaks, motion blur and low light, written as BasicSR LMDBs in the layout of
   scripts/prepare_datasets.py under demo_output/datasets/.
2. Runs, through `basicsr train` / `basicsr test` and the YAMLs in options/demo/: stage 1 (adapter tuning; with
   no pretrained CLIP to be had offline, a small randomly initialised backbone whose image tower is trained
   too, unless --clip-weights gives a ViT-B-32 weights file, which stays frozen), stage 2 (a small CLIP-guided
   VLUNet on stage 1's backbone and adapters), then testing on the held-out photographs.
3. Writes demo_output/report.json, report.md, grid.png (degraded | restored | clean per task) and
   similarity.png (the adapters' image-prompt similarity matrix).

Everything is written under the working directory: demo_output/, experiments/, results/ and tb_logger/.
"""
import argparse
import glob
import json
import os
import os.path as osp
import shutil
import subprocess
import sys
import time

os.environ.setdefault('MPLCONFIGDIR', osp.abspath(osp.join('demo_output', '.matplotlib')))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402
from skimage import data as skdata  # noqa: E402
from tqdm import tqdm  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
OPTIONS = osp.join(REPO, 'options', 'demo')
#: Colour photographs, then greyscale ones (textures and objects, as three equal channels): with the colour
#: ones alone, the small stage-1 backbone learned the photographs more than the degradations (0.64 / 0.79 top-1).
TRAIN_PHOTOS = ('astronaut', 'chelsea', 'rocket', 'hubble_deep_field', 'immunohistochemistry', 'stereo_motorcycle',
                'stereo_motorcycle_right', 'camera', 'brick', 'grass', 'gravel', 'clock', 'coins')
TEST_PHOTOS = ('coffee', 'retina')
PAIRED_TASKS = ('haze', 'rain', 'blur', 'lowlight')
NOISE_TASKS = {'denoise15': 15, 'denoise25': 25, 'denoise50': 50}
TASKS = (*NOISE_TASKS, *PAIRED_TASKS)
#: The data of the full run; its iterations are the YAMLs' own. The quick run (tests) overrides them.
FULL = {'train_side': 160, 'test_side': 128, 'variants': 4}
QUICK = {'train_side': 40, 'test_side': 36, 'variants': 1, 'gt_size': 32, 'stage1_iters': 4, 'stage2_iters': 4}


def load_photo(name):
    if name == 'stereo_motorcycle_right':
        return skdata.stereo_motorcycle()[1]
    image = getattr(skdata, name)()
    image = image[0] if isinstance(image, tuple) else image
    return np.repeat(image[..., None], 3, axis=2) if image.ndim == 2 else image


def _write_png(path, rgb_float):
    os.makedirs(osp.dirname(path), exist_ok=True)
    cv2.imwrite(path, np.rint(np.clip(rgb_float, 0, 1) * 255).astype(np.uint8)[..., ::-1])


def build_dataset(settings, root='demo_output'):
    """Write the demo images as PNGs (demo_output/images) and BasicSR LMDBs (demo_output/datasets)."""
    import demo_degradations
    from vlunet_basicsr.data.dataset_writer import write_pairs
    synthesise = {'haze': demo_degradations.add_haze, 'rain': demo_degradations.add_rain,
                  'blur': demo_degradations.add_motion_blur, 'lowlight': demo_degradations.add_low_light}
    for split, photos in (('train', TRAIN_PHOTOS), ('test', TEST_PHOTOS)):
        side = settings[f'{split}_side']
        variants = settings['variants'] if split == 'train' else 1
        pairs = {task: [] for task in ('clean', *PAIRED_TASKS)}
        for index, name in enumerate(tqdm(photos, desc=f'demo {split} images', unit='photo')):
            rgb = load_photo(name)[..., :3]
            scale = side / min(rgb.shape[:2])
            clean = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA).astype(np.float32) / 255
            clean_path = osp.join(root, 'images', f'clean_{split}', f'{name}.png')
            _write_png(clean_path, clean)
            pairs['clean'].append((name, clean_path, None))
            for task_index, task in enumerate(PAIRED_TASKS):
                for variant in range(variants):
                    key = f'{name}_v{variant}'
                    rng = np.random.default_rng([index, task_index, variant, 1 if split == 'train' else 2])
                    lq_path = osp.join(root, 'images', f'{task}_{split}', 'lq', f'{key}.png')
                    _write_png(lq_path, synthesise[task](clean, rng))
                    pairs[task].append((key, clean_path, lq_path))
        for task, task_pairs in pairs.items():
            write_pairs(task_pairs, osp.join(root, 'datasets', f'{task}_{split}'), overwrite=True, progress=False)


#: torch threads of each of the demo's processes. One: measured on 2 cores (docs/demo.md), a training step with 2
#: threads took 0.28 s alone but 5.1 s beside one other busy process (threads waiting on each other); with 1 thread
#: 0.37 s in both cases. OMP_NUM_THREADS, when set, wins.
THREADS = '1'
#: Training processes of stages 1 and 2 (DDP over gloo, each with `THREADS` threads): the YAMLs' batches are split
#: between them. Two: the cores the demo's budget counts on (docs/demo.md, "The budget").
PROCESSES = 2
#: The YAMLs of the two training stages, in options/demo/.
TRAIN_YAMLS = {'stage1': 'train_clip_adapter_demo.yml', 'stage2': 'train_vlunet_demo.yml'}


def basicsr(*args, processes=1):
    """``basicsr ARGS`` with `THREADS` threads; ``train`` on ``processes`` > 1 ranks runs under torchrun."""
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get('OMP_NUM_THREADS', THREADS))
    if processes > 1:
        if args[0] != 'train':
            raise ValueError(f'basicsr {args[0]} runs in one process')
        torchrun = shutil.which('torchrun', path=osp.dirname(sys.executable)) or 'torchrun'
        arguments = ['--standalone', f'--nproc_per_node={processes}', '-m', 'vlunet_basicsr.train', '--launcher',
                     'pytorch', *args[1:]]
        command, shown = [torchrun, *arguments], ['torchrun', *arguments]
    else:
        basicsr_program = shutil.which('basicsr', path=osp.dirname(sys.executable)) or 'basicsr'
        command, shown = [basicsr_program, *args], ['basicsr', *args]
    print(f"\n$ OMP_NUM_THREADS={env['OMP_NUM_THREADS']} " + ' '.join(shown), flush=True)
    subprocess.run(command, check=True, env=env)


def batch_per_process(stage, processes):
    """The ``batch_size_per_gpu`` of ``stage``'s YAML split between ``processes`` (it must divide evenly)."""
    name = TRAIN_YAMLS[stage]
    batch = yaml.safe_load(open(osp.join(OPTIONS, name)))['datasets']['train']['batch_size_per_gpu']
    if batch % processes:
        raise ValueError(f'--processes {processes}: options/demo/{name} trains batches of {batch}, which '
                         f'{processes} processes cannot share evenly')
    return batch // processes


def overrides(settings, clip_weights, stage, seed=None, stage2_amp='none', processes=1):
    values = [] if seed is None else [f'manual_seed={seed}']
    if stage in ('stage1', 'stage2') and processes > 1:
        values.append(f'datasets:train:batch_size_per_gpu={batch_per_process(stage, processes)}')
    if stage == 'stage2' and stage2_amp != 'none':
        values.append(f'train:amp={stage2_amp}')
    if stage in ('stage1', 'stage2') and f'{stage}_iters' in settings:
        total = settings[f'{stage}_iters']
        warmup = max(1, total // 20)
        values += [f'train:total_iter={total}', f'train:scheduler:total_iter={total}',
                   f'train:scheduler:warmup_iter={warmup}', f'logger:save_checkpoint_freq={total}']
        if 'gt_size' in settings:
            values.append(f"datasets:train:gt_size={settings['gt_size']}")
        if stage == 'stage1':
            values.append(f'val:val_freq={total}')
    if clip_weights:
        values += [f'network_clip:pretrained={osp.abspath(clip_weights)}', 'network_clip:model_cfg=~']
        if stage == 'stage1':
            values.append('train:train_backbone=false')  # the real recipe: ViT-B-32 stays frozen
        else:
            values.append('network_g:degradation_dim=512')
    return ['--force_yml', *values] if values else []


def yaml_seed():
    """The ``manual_seed`` the demo's YAMLs share."""
    seeds = {yaml.safe_load(open(osp.join(OPTIONS, name)))['manual_seed']
             for name in (*TRAIN_YAMLS.values(), 'test_vlunet_demo.yml')}
    if len(seeds) != 1:
        raise ValueError(f'options/demo: the three YAMLs should share one manual_seed, found {sorted(seeds)}')
    return seeds.pop()


def _latest(pattern):
    paths = glob.glob(pattern)
    if not paths:
        raise FileNotFoundError(f'expected output missing: {pattern}')
    return max(paths, key=lambda p: int(osp.splitext(p)[0].rsplit('_', 1)[1]))


def as_image(tensor):
    return tensor.permute(1, 2, 0).numpy()


def write_report(seconds, clip_weights, seed, stage2_amp='none', root='demo_output', stage_seconds=None,
                 processes=1):
    import vlunet_basicsr  # noqa: F401
    from basicsr.data import build_dataset as build
    from vlunet_basicsr.metrics.protocol_metric import calculate_psnr_float, calculate_ssim_float
    from vlunet_basicsr.utils.plot_util import save_image_grid
    from vlunet_basicsr.utils.timing import cpu_model

    test_opt = yaml.safe_load(open(osp.join(OPTIONS, 'test_vlunet_demo.yml')))
    outputs = json.load(open(osp.join('results', test_opt['name'], 'metrics.json')))
    tasks, rows = {}, []
    for phase, dataset_opt in sorted(test_opt['datasets'].items()):
        dataset = build({**dataset_opt, 'phase': 'test'})
        name = dataset_opt['name']
        samples = [dataset[i] for i in range(len(dataset))]
        tasks[name] = {
            'input_psnr': float(np.mean([calculate_psnr_float(as_image(s['lq']), as_image(s['gt'])) for s in samples])),
            'output_psnr': outputs[name]['psnr'],
            'input_ssim': float(np.mean([calculate_ssim_float(as_image(s['lq']), as_image(s['gt'])) for s in samples])),
            'output_ssim': outputs[name]['ssim'],
        }
        first = samples[0]
        key = osp.splitext(osp.basename(first['lq_path']))[0]
        restored = cv2.imread(osp.join('results', test_opt['name'], 'visualization', name,
                                       f"{key}_{test_opt['name']}.png"))[..., ::-1].astype(np.float32) / 255
        rows.append((name, [as_image(first['lq']), restored, as_image(first['gt'])]))
    save_image_grid(rows, ['degraded', 'restored', 'clean'], osp.join(root, 'grid.png'))

    classification_path = _latest(osp.join('experiments', 'demo_clip_adapter', 'visualization', 'demo_test',
                                           'classification_*.json'))
    classification = json.load(open(classification_path))
    shutil.copy(classification_path.replace('classification_', 'similarity_').replace('.json', '.png'),
                osp.join(root, 'similarity.png'))
    report = {'tasks': tasks, 'clip_accuracy': classification['accuracy'], 'seconds': seconds,
              'clip_backbone': osp.abspath(clip_weights) if clip_weights else
              'small backbone trained in stage 1 from random initialisation',
              'class_names': classification['class_names'], 'confusion_matrix': classification['confusion_matrix'],
              'torch_threads': int(os.environ.get('OMP_NUM_THREADS', THREADS)), 'training_processes': processes,
              'manual_seed': seed,
              'stage2_amp': stage2_amp, 'stage_seconds': stage_seconds or {}, 'cpu': cpu_model()}
    with open(osp.join(root, 'report.json'), 'w') as f:
        json.dump(report, f, indent=1)
    stages = ', '.join(f'{name} {value:.0f} s' for name, value in report['stage_seconds'].items())
    lines = ['# VLU-Net demo report', '',
             f"CLIP backbone: {report['clip_backbone']}. Wall time: {seconds:.0f} s on {report['cpu']}"
             f"{f' ({stages})' if stages else ''}. `manual_seed`: {seed}. Metrics: float RGB protocol.", '',
             '| task | input PSNR | output PSNR | input SSIM | output SSIM |', '| --- | --- | --- | --- | --- |']
    lines += [f"| {n} | {t['input_psnr']:.2f} | {t['output_psnr']:.2f} | {t['input_ssim']:.4f} "
              f"| {t['output_ssim']:.4f} |" for n, t in tasks.items()]
    lines += ['', f"Adapter zero-shot accuracy on the held-out images: {report['clip_accuracy']:.3f}", '',
              'Confusion matrix (rows: true degradation, columns: predicted prompt):', '',
              '| | ' + ' | '.join(report['class_names']) + ' |', '|---' * (len(report['class_names']) + 1) + '|']
    lines += [f'| {name} | ' + ' | '.join(map(str, row)) + ' |'
              for name, row in zip(report['class_names'], report['confusion_matrix'])]
    lines += ['', '![grid](grid.png)', '', '![similarity](similarity.png)', '']
    with open(osp.join(root, 'report.md'), 'w') as f:
        f.write('\n'.join(lines))
    return report


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--clip-weights', help='a ViT-B-32 open_clip weights file, kept frozen (default: a small '
                        'backbone trained in stage 1 from random weights)')
    parser.add_argument('--quick', action='store_true', help='tiny images and a few iterations (for tests)')
    parser.add_argument('--seed', type=int, default=yaml_seed(),
                        help="manual_seed of every stage (default: the YAMLs' own, %(default)s)")
    parser.add_argument('--stage2-amp', choices=('none', 'bf16'), default='none',
                        help="stage 2's train.amp (docs/precision.md: bf16 training against float32 seeds)")
    parser.add_argument('--processes', type=int, default=PROCESSES,
                        help='training processes of stages 1 and 2 (DDP over gloo, one thread each; the batches are '
                        'split between them). Default: %(default)s')
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error(f'--processes {args.processes}: at least 1')
    settings = QUICK if args.quick else FULL
    try:  # before the data is built: batches the processes cannot share stop here
        training = {stage: overrides(settings, args.clip_weights, stage, args.seed, args.stage2_amp, args.processes)
                    for stage in TRAIN_YAMLS}
    except ValueError as error:
        parser.error(str(error))
    start = stage_start = time.time()
    stage_seconds = {}

    def finished(stage):
        nonlocal stage_start
        stage_seconds[stage], stage_start = round(time.time() - stage_start, 1), time.time()

    print('CLIP backbone: ' + (f'{args.clip_weights} (frozen)' if args.clip_weights else
                               'a small one, randomly initialised (no weights file given) and trained in stage 1 '
                               'with the adapters; the real recipe keeps a pretrained ViT-B-32 frozen'), flush=True)
    build_dataset(settings)
    finished('data')
    basicsr('train', '-opt', osp.join(OPTIONS, TRAIN_YAMLS['stage1']), *training['stage1'], processes=args.processes)
    finished('stage 1')
    basicsr('train', '-opt', osp.join(OPTIONS, TRAIN_YAMLS['stage2']), *training['stage2'], processes=args.processes)
    finished('stage 2')
    basicsr('test', '-opt', osp.join(OPTIONS, 'test_vlunet_demo.yml'),
            *overrides(settings, args.clip_weights, 'test', args.seed))
    finished('test')
    report = write_report(time.time() - start, args.clip_weights, args.seed, args.stage2_amp,
                          stage_seconds=stage_seconds, processes=args.processes)
    print('\n' + open(osp.join('demo_output', 'report.md')).read().split('![grid]')[0])
    print(f"Demo finished in {report['seconds']:.0f} s on {report['cpu']}: demo_output/report.md, report.json, "
          'grid.png, similarity.png')
    return 0


if __name__ == '__main__':
    sys.exit(main())
