"""Build BasicSR LMDBs (or PNG folders) from the public releases' own folder layouts.

    python scripts/prepare_datasets.py sots_outdoor ~/data/SOTS/outdoor --split test --output datasets/sots_outdoor
    python scripts/prepare_datasets.py rain100l ~/data/Rain100L/train --split train --output datasets/rain100l_train
    python scripts/prepare_datasets.py bsd400 ~/data/BSD400 --split train --output datasets/bsd400
    python scripts/prepare_datasets.py paths_txt data_dir/rainy/rainTrain_paths.txt --output datasets/rain_list
    python scripts/prepare_datasets.py input_target ~/data/Rain13K/train --output datasets/rain13k_train
    python scripts/prepare_datasets.py sidd_val_blocks ~/data/SIDD --split test --output datasets/sidd_val
    python scripts/prepare_datasets.py cdd11 ~/data/CDD-11_train --split train --output datasets/cdd11_train

writes OUTPUT/gt.lmdb and, for paired sets, OUTPUT/lq.lmdb with identical keys (meta_info.txt inside each),
or OUTPUT/gt/ and OUTPUT/lq/ with --format folder. cdd11 writes one LMDB per folder of the release,
OUTPUT/clear.lmdb and OUTPUT/<type>.lmdb for its 11 types (haze.lmdb, low.lmdb, ..., low_haze_snow.lmdb), all
with the same keys (one per scene). Every image that cannot be paired is reported by name and nothing is
written; with --split, the count (images, CDD-11 scenes, SIDD blocks) is checked against the public split's
size. An existing output is never replaced without --overwrite.
"""
import argparse
import sys

from vlunet_basicsr.data.dataset_writer import write_sets
from vlunet_basicsr.data.public_layouts import COUNT_UNITS, KNOWN_COUNTS, LAYOUTS, SCENE_LAYOUTS, find_sets


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('layout', choices=sorted(LAYOUTS) + sorted(SCENE_LAYOUTS),
                        help='which public release layout INPUT has')
    parser.add_argument('input', help="the release's folder (the *_paths.txt file for paths_txt; the folder of "
                        'the two .mat files for sidd_val_blocks; one split folder, holding clear/, for cdd11)')
    parser.add_argument('--output', required=True, help='folder for gt.lmdb / lq.lmdb (or gt/ lq/; cdd11: '
                        'clear.lmdb and one LMDB per type)')
    parser.add_argument('--split', choices=['train', 'test'], help='check the image count of this public split')
    parser.add_argument('--format', choices=['lmdb', 'folder'], default='lmdb')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--no-count-check', action='store_true', help='accept a count other than the known one')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level (0-9)')
    args = parser.parse_args(argv)

    try:
        sets, problems = find_sets(args.layout, args.input)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if problems:
        print(f'error: {len(problems)} unmatched images in {args.input}; nothing written:', file=sys.stderr)
        for problem in problems[:50]:
            print(f'  {problem}', file=sys.stderr)
        if len(problems) > 50:
            print(f'  ... and {len(problems) - 50} more', file=sys.stderr)
        return 1
    count = len(next(iter(sets.values())))
    unit = COUNT_UNITS.get(args.layout, 'images')
    expected = KNOWN_COUNTS.get(args.layout, {}).get(args.split)
    if expected is not None and count != expected and not args.no_count_check:
        print(f'error: found {count} {unit} for {args.layout} {args.split}, the public split has {expected}; '
              'nothing written (--no-count-check to accept)', file=sys.stderr)
        return 1
    if not count:
        print(f'error: no images found in {args.input}', file=sys.stderr)
        return 1
    try:
        written = write_sets(sets, args.output, args.format, args.overwrite, args.compress_level)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if args.layout in SCENE_LAYOUTS:
        kind = f'{unit} x {len(written)} sets'
    else:
        kind = 'pairs' if 'lq' in written else 'clean images'
    print(f'wrote {count} {kind}: ' + ', '.join(written.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
