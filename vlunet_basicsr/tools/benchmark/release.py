"""--compare-release: an arch against its release port, each measured in a fresh process, and their agreement on
shared weights."""
import json
import os
import subprocess
import sys
import tempfile

from vlunet_basicsr.tools.benchmark.eager import describe_flop_rate
from vlunet_basicsr.tools.benchmark.report import write_json
from vlunet_basicsr.tools.benchmark.systems import RELEASE_PORTS, output_difference

def compare_release(args, argv):
    """Measure ``args.arch`` and its release port, each in a fresh ``python -m vlunet_basicsr.tools.benchmark`` process
    with the other flags of ``argv``; report the speed-up and the output agreement."""
    fast = args.arch
    release = RELEASE_PORTS[fast]
    runs = {}
    for arch in (release, fast):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'run.json')
            command = [sys.executable, '-m', 'vlunet_basicsr.tools.benchmark', *_without_compare(argv), '--arch', arch,
                       '--skip-inference', '--json', path]
            print(f'measuring {arch} ...', flush=True)
            subprocess.run(command, check=True)
            with open(path) as f:
                runs[arch] = json.load(f)
    step = {arch: run['results']['train']['step_s'] for arch, run in runs.items()}
    speedup = step[release] / step[fast]
    agreement = output_difference(args, fast)
    if args.flop_rate:
        for arch, run in runs.items():
            print(f'{arch}:' + describe_flop_rate(run['results']['train']))
    print(f'training step: release arithmetic {step[release]:.3f} s, {fast} {step[fast]:.3f} s, '
          f"speed-up {speedup:.2f}x; max |output diff| {agreement['max_abs_output_diff']:.2e}, "
          f"max |grad diff| {agreement['max_abs_grad_diff']:.2e}")
    report = {'machine': runs[fast]['machine'], 'config': vars(args), 'runs': runs, 'speedup': speedup,
              **agreement}
    write_json(args.json, report)
    return 0


def _without_compare(argv):
    """``argv`` less --compare-release, --arch and --json (each run gets its own)."""
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ('--json', '--arch'):
            skip = True
        elif arg != '--compare-release' and not arg.startswith(('--json=', '--arch=')):
            kept.append(arg)
    return kept
