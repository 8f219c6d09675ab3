"""``make compare``: VLU-Net, DGUNet and VL-UR, small, compared on CPU with embedded data (docs/compare.md).

1. Builds make demo's data from scikit-image photographs (scripts/run_demo.py, the same images and
   degradations) under demo_output/datasets/.
2. Stage 1 as in make demo (options/demo/train_clip_adapter_demo.yml as experiments/compare_clip_adapter): a
   small CLIP backbone trained from random weights with its adapters on the demo's seven degradations; every
   run of the guided systems uses that backbone and those adapters.
3. Runs ``basicsr compare`` with options/demo/compare_demo.yml (its YAML paths made absolute, so any working
   folder will do) into compare_output/, replacing an earlier one (``--overwrite``): the three systems
   trained with the same iterations, tested on the held-out photographs, measured, reported in
   compare_output/report.md, report.json, psnr.png and grid_<set>.png.

Nothing is downloaded. Everything is written under the working directory.
"""
import argparse
import os.path as osp
import sys
import time

sys.path.insert(0, osp.dirname(osp.abspath(__file__)))
import run_demo  # noqa: E402  (the demo's data and its basicsr runner)

REPO = run_demo.REPO
COMPARE_FILE = osp.join(REPO, 'options', 'demo', 'compare_demo.yml')
STAGE1 = osp.join(REPO, 'options', 'demo', 'train_clip_adapter_demo.yml')
FULL = {**run_demo.FULL}
#: Tiny images and a few iterations, to check the pipeline (patches of 64 need training images of 64 or more).
QUICK = {'train_side': 72, 'test_side': 36, 'variants': 1, 'gt_size': 64, 'stage1_iters': 4}
QUICK_COMPARE = ['total_iter=4', 'timing:train_steps=1', 'timing:warmup_steps=0', 'timing:infer_images=2']


def compare_file_here(path):
    """The demo compare file with its systems' YAMLs as absolute paths into this repository, written under
    demo_output/ (its data paths stay relative: the data is built in the working folder)."""
    import yaml

    from vlunet_basicsr.tools.options.loading import load_yaml
    opt = load_yaml(COMPARE_FILE)
    for system in opt['systems']:
        for key in ('train', 'test'):
            if system.get(key) and not osp.isabs(system[key]):
                system[key] = osp.join(REPO, system[key])
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='tiny images and a few iterations (a check, not a result)')
    parser.add_argument('-o', '--output', default='compare_output', help='output folder (default: compare_output)')
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    start = time.time()
    run_demo.build_dataset(settings)
    stage1 = run_demo.overrides(settings, None, 'stage1') + ['name=compare_clip_adapter']
    run_demo.basicsr('train', '-opt', STAGE1, *stage1)
    compare_file = compare_file_here(osp.join('demo_output', 'compare_demo.yml'))
    compare = ['compare', '-opt', compare_file, '-o', args.output, '--overwrite']
    if args.quick:
        compare += ['--force_yml', *QUICK_COMPARE]
    print('\n$ basicsr ' + ' '.join(compare), flush=True)
    from vlunet_basicsr_cli import main as basicsr_main
    code = basicsr_main(compare)
    report = osp.join(args.output, 'report.md')
    if osp.isfile(report):
        print('\n' + open(report).read().split('## Figures')[0])
    from vlunet_basicsr.utils.timing import cpu_model
    print(f'make compare finished in {time.time() - start:.0f} s on {cpu_model()} (exit code {code}): '
          f'{args.output}/report.md, report.json, psnr.png, grid_<set>.png')
    return code


if __name__ == '__main__':
    sys.exit(main())
