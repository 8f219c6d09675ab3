"""Import time of the plugin against basicsr alone, each in fresh interpreters, alternating, medians.

    python scripts/import_time.py [--rounds 7] [--json FILE]

``import basicsr`` is measured with the alias of ``torchvision.transforms.functional_tensor`` that basicsr 1.4.2
needs on torchvision >= 0.17 (compat fix 1), so both sides import the same stack; ``python -X importtime`` on
the plugin's line shows where its own time goes.
"""
import argparse
import json
import statistics
import subprocess
import sys
import time

BASICSR = ('import sys, torchvision.transforms.functional as F; '
           "sys.modules['torchvision.transforms.functional_tensor'] = F; import basicsr")
PLUGIN = 'import vlunet_basicsr'


def seconds(code):
    start = time.perf_counter()
    subprocess.run([sys.executable, '-c', code], check=True)
    return time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--rounds', type=int, default=7)
    parser.add_argument('--json', help='also write the figures here')
    args = parser.parse_args(argv)
    seconds(PLUGIN)  # warm the file cache
    times = {'basicsr': [], 'vlunet_basicsr': []}
    for _ in range(args.rounds):
        times['basicsr'].append(seconds(BASICSR))
        times['vlunet_basicsr'].append(seconds(PLUGIN))
    medians = {name: statistics.median(values) for name, values in times.items()}
    from vlunet_basicsr.utils.timing import cpu_model  # after the measured imports: this process's own is not timed
    result = {'cpu': cpu_model(), 'rounds': args.rounds, 'median_s': medians,
              'ratio': medians['vlunet_basicsr'] / medians['basicsr'], 'seconds': times}
    print(f"import basicsr {medians['basicsr']:.2f} s, import vlunet_basicsr {medians['vlunet_basicsr']:.2f} s "
          f"(median of {args.rounds}, alternating): ratio {result['ratio']:.3f}")
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=2)
    return 0


if __name__ == '__main__':
    sys.exit(main())
