"""Build BasicSR LMDBs (or clean gt/ lq/ folders) from the public releases' own folder layouts.

    python scripts/prepare_datasets.py sots_outdoor ~/data/SOTS/outdoor --split test --output datasets/sots_outdoor
    python scripts/prepare_datasets.py rain100l ~/data/Rain100L/train --split train --output datasets/rain100l_train
    python scripts/prepare_datasets.py bsd400 ~/data/BSD400 --split train --output datasets/bsd400
    python scripts/prepare_datasets.py paths_txt data_dir/rainy/rainTrain_paths.txt --output datasets/rain_list

writes OUTPUT/gt.lmdb and, for paired sets, OUTPUT/lq.lmdb with identical keys (meta_info.txt inside each),
or OUTPUT/gt/ and OUTPUT/lq/ with --format folder. Every image that cannot be paired is reported by name
and nothing is written; with --split, the count is checked against the public split's size. An existing
output is never replaced without --overwrite.
"""
import argparse
import sys

from vlunet_basicsr.data.dataset_writer import write_pairs
from vlunet_basicsr.data.public_layouts import KNOWN_COUNTS, LAYOUTS


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('layout', choices=sorted(LAYOUTS), help='which public release layout INPUT has')
    parser.add_argument('input', help="the release's folder (or the *_paths.txt file for paths_txt)")
    parser.add_argument('--output', required=True, help='folder for gt.lmdb / lq.lmdb (or gt/ lq/)')
    parser.add_argument('--split', choices=['train', 'test'], help='check the image count of this public split')
    parser.add_argument('--format', choices=['lmdb', 'folder'], default='lmdb')
    parser.add_argument('--overwrite', action='store_true', help='replace an existing output')
    parser.add_argument('--no-count-check', action='store_true', help='accept a count other than the known one')
    parser.add_argument('--compress-level', type=int, default=1, help='PNG compression level (0-9)')
    args = parser.parse_args(argv)

    try:
        pairs, problems = LAYOUTS[args.layout](args.input)
    except FileNotFoundError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    if problems:
        print(f'error: {len(problems)} unmatched images in {args.input}; nothing written:', file=sys.stderr)
        for problem in problems[:50]:
            print(f'  {problem}', file=sys.stderr)
        if len(problems) > 50:
            print(f'  ... and {len(problems) - 50} more', file=sys.stderr)
        return 1
    expected = KNOWN_COUNTS.get(args.layout, {}).get(args.split)
    if expected is not None and len(pairs) != expected and not args.no_count_check:
        print(f'error: found {len(pairs)} images for {args.layout} {args.split}, the public split has {expected}; '
              'nothing written (--no-count-check to accept)', file=sys.stderr)
        return 1
    if not pairs:
        print(f'error: no images found in {args.input}', file=sys.stderr)
        return 1
    try:
        written = write_pairs(pairs, args.output, args.format, args.overwrite, args.compress_level)
    except FileExistsError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    kind = 'pairs' if 'lq' in written else 'clean images'
    print(f'wrote {len(pairs)} {kind}: ' + ', '.join(written.values()))
    return 0


if __name__ == '__main__':
    sys.exit(main())
