"""Speed and memory of a restoration system: a training step (with its guidance), and inference.

    python scripts/benchmark.py -opt options/test_promptir_nhrbl.yml   # any train/test YAML's network_g (+ clip)
    python scripts/benchmark.py -opt options/test_vlur_nhrbl.yml --network-override dim=16 --size 64
    python scripts/benchmark.py                                  # default VLUNet, 128x128, batch 2, CPU
    python scripts/benchmark.py --compare-release --skip-inference   # VLUNet vs the release's arithmetic
    python scripts/benchmark.py --arch DGUNet --compare-release      # DGUNet vs the published arithmetic
    python scripts/benchmark.py --arch DGUNet --compare-release --flop-rate   # ... and how near the device's peak
    python scripts/benchmark.py --device cuda --batch 32 --amp bf16 --json docs/benchmarks/h100.json
    python scripts/benchmark.py --infer-size 1024 --tile 256 --skip-train
    python scripts/benchmark.py --device cuda --skip-train --infer-size 1024 --amp bf16 --compile reduce-overhead
    python scripts/benchmark.py --backend onnxruntime --json docs/benchmarks/cpu_onnxruntime.json
    python scripts/benchmark.py --backend onnxruntime -opt test.yml --onnx model.onnx   # an exported system

--compare-release measures the training step of VLUNet and of VLUNetReleasePort (the release's arithmetic),
or with --arch DGUNet / DGUNetPlus of that network and DGUNetReleasePort / DGUNetPlusReleasePort (the published
arithmetic), with the same flags, each in a fresh process, and checks on shared weights that their outputs and
gradients agree.

-opt builds network_g (and network_clip) of a YAML with BasicSR's build_network, with random weights (the
clip's pretrained and adapter_path are dropped, with a warning: speed does not depend on the weights), and
feeds and scores it through the arch protocol (vlunet_basicsr.models.network_inputs: guidance kind, stages,
size rule), so any registered arch runs. Without -opt, --arch and --preset pick a network from the tables
below (kept for the release ports of --compare-release).

Training step = CLIP vector (one batched no-grad call; VLU-Net only) + forward + backward + AdamW; the CLIP
share of the step is reported. The loss is L1, on every stage image for the multi-stage DGUNet archs (their
training loss sums over the stages). Warm-up runs, then the median of --repeat runs. Peak memory: CUDA's
allocator peak, or on CPU the growth of the process's peak resident set (VmHWM, reset before each measurement).
Inference is measured before training because the CPU allocator keeps freed memory resident; for exact CPU
figures measure one thing per process (--skip-train / --skip-inference). Not a test: a tool.

--flop-rate counts the training step's floating-point operations (torch.utils.flop_counter: convolutions and
matrix products, forward and backward; element-wise work is not counted) and measures the device's float32
matrix-product rate (a 2048x2048 product, median of 5): the step's achieved rate as a share of that rate bounds
what any exact speed-up of the same arithmetic can reach. (On CUDA, cuDNN's convolutions run in TF32 by default
while the product follows torch.backends.cuda.matmul.allow_tf32, off by default: the share can pass 100%.)

--backend onnxruntime exports the network and its guidance encoder with basicsr export's code (verified against
torch), then measures whole-image inference (CLIP vector + network) at each --infer-sizes size with torch eager
and with ONNX Runtime in the same run, and the largest |ONNX Runtime - torch| of the restored images. With
--onnx, nothing is exported: the given graph (and its guidance graph beside it) is measured against the system of
-opt, the test YAML it was exported from, with that YAML's weights (an export takes minutes).
"""
import argparse
import os
import subprocess
import sys

import torch

from vlunet_basicsr.tools.benchmark.eager import Policy, measure_inference, measure_training
from vlunet_basicsr.tools.benchmark.report import machine_facts, print_results, write_json
from vlunet_basicsr.tools.benchmark.systems import (ARCHS, CLIPS, PRESETS, RELEASE_PORTS, build, is_dgunet,
                                                    parse_overrides)
from vlunet_basicsr.utils import cpu_allocator, precision
from vlunet_basicsr.utils.precision import AMP_DTYPES

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')


def build_parser():
    """The arguments of scripts/benchmark.py (and python -m vlunet_basicsr.tools.benchmark)."""
    parser = argparse.ArgumentParser(prog='scripts/benchmark.py', description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', metavar='YAML',
                        help='build network_g (and network_clip) of this train or test YAML, random weights (with '
                             "--onnx: the YAML's), instead of --arch / --preset / --clip")
    parser.add_argument('--network-override', nargs='+', metavar='KEY=VALUE',
                        help='with -opt: network_g options to replace (YAML values), e.g. dim=16 num_blocks=[1,1,1,1]')
    parser.add_argument('--arch', choices=ARCHS,
                        help='default VLUNet; DGUNet archs take no CLIP vector (--clip is ignored) and are scored '
                             'on every stage')
    parser.add_argument('--compare-release', action='store_true',
                        help='measure --arch (VLUNet, DGUNet or DGUNetPlus) and its release port side by side '
                             '(training step)')
    parser.add_argument('--preset', choices=sorted(PRESETS),
                        help='network size of --arch (default: default; PRESETS; for the DGUNet archs DGUNET_PRESETS: '
                             'default = the published 80/48/32, DGUNet+ 96/48/32; small = 40/20/16; tiny = 16/8/8)')
    parser.add_argument('--clip', choices=[*CLIPS, 'none'], help='the CLIP of --arch (default: vit-b-32)')
    parser.add_argument('--size', type=int, default=128, help='training patch size')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', choices=list(AMP_DTYPES), default='none', help='see vlunet_basicsr/utils/precision.py')
    parser.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True,
                        help='the channels_last option of VLUNet, DGUNet and DGUNetPlus: NHWC features (default) '
                             'or, with --no-channels-last, NCHW')
    parser.add_argument('--fused-backward', choices=['on', 'off'], default='on', help="VLUNet's fused_backward")
    parser.add_argument('--cpu-allocator', choices=cpu_allocator.CHOICES, default='tuned',
                        help='see vlunet_basicsr/utils/cpu_allocator.py (applies to every arch alike)')
    parser.add_argument('--compile', nargs='?', const='default', choices=COMPILE_MODES, metavar='MODE',
                        help=f"torch.compile the network; MODE is its mode ({', '.join(COMPILE_MODES)}; "
                             "default: default)")
    parser.add_argument('--compile-regions', action='store_true',
                        help='with --compile: compile each transformer block and D-GDM instead of the whole network '
                             '(VLUNet.compile_regions; about half the compile time)')
    parser.add_argument('--gram-chunk', type=int, metavar='PIXELS',
                        help='restormer_ops.GRAM_CHUNK, the smallest pixel chunk of the Gram matrices in CUDA '
                             'inference; 0: one product, no chunks (default: the module\'s value)')
    parser.add_argument('--threads', type=int, help='torch.set_num_threads (default: torch\'s own choice)')
    parser.add_argument('--load', type=int, default=0, metavar='N',
                        help='keep N other CPU-bound processes busy while measuring (thread settings under load)')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--infer-size', type=int, default=256)
    parser.add_argument('--tile', type=int, default=0, help='also measure tiled inference with this tile size')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--skip-whole', action='store_true', help='with --tile, measure tiled inference only')
    parser.add_argument('--skip-train', action='store_true')
    parser.add_argument('--skip-inference', action='store_true')
    parser.add_argument('--profile', type=int, default=0, metavar='N',
                        help='after measuring, print the N operators with the most self time in one more run '
                             "(--backend onnxruntime: ONNX Runtime's profiler over --repeat more runs of the graph, "
                             'kernel time by operator type)')
    parser.add_argument('--flop-rate', action='store_true',
                        help="count the training step's FLOPs and compare its rate with a float32 matrix product's")
    parser.add_argument('--json', help='write the results here')
    parser.add_argument('--backend', choices=['torch', 'onnxruntime', 'openvino'], default='torch',
                        help='onnxruntime / openvino: export the network (basicsr export) and compare ONNX Runtime, '
                        'or OpenVINO in f32 and bf16, with torch eager on whole-image inference at --infer-sizes '
                        '(no training step)')
    parser.add_argument('--amp-ab', action='store_true',
                        help='float32 against --amp, alternating in one process: the training step (guidance '
                        'included) and whole-image restores at --infer-sizes (medians and ratios)')
    parser.add_argument('--infer-sizes', type=int, nargs='+', default=[256, 512], metavar='SIZE',
                        help='with --backend onnxruntime: the square image sizes (default: 256 512)')
    parser.add_argument('--onnx-dir', help='with --backend onnxruntime: keep the exported graphs in this folder')
    parser.add_argument('--onnx', metavar='MODEL.onnx',
                        help='with --backend and -opt: measure this graph (basicsr export of the -opt YAML) instead '
                             "of exporting; the torch side loads the YAML's weights")
    return parser


def main(argv=None):
    """Parse ``argv`` (default: the command line), measure, write --json; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    burners = [subprocess.Popen([sys.executable, '-c', 'while True: pass']) for _ in range(args.load)]
    try:
        return measure(parser, args, argv)
    finally:
        for burner in burners:
            burner.kill()
            burner.wait()


def resolve_network_flags(parser, args):
    """-opt or the tables: --arch, --preset and --clip go with the tables only; their defaults filled in."""
    if args.opt:
        given = [flag for flag, value in (('--arch', args.arch), ('--preset', args.preset), ('--clip', args.clip),
                                          ('--compare-release', args.compare_release)) if value]
        if given:
            parser.error(f"-opt builds the YAML's networks: drop {', '.join(given)}")
        if not os.path.isfile(args.opt):
            parser.error(f'-opt: no file {args.opt}')
        try:
            args.network_override = parse_overrides(args.network_override)
        except ValueError as error:
            parser.error(str(error))
        return
    if args.network_override:
        parser.error('--network-override goes with -opt')
    args.arch, args.preset, args.clip = args.arch or 'VLUNet', args.preset or 'default', args.clip or 'vit-b-32'


def check_flags(parser, args):
    """Refuse the flag combinations the measurements cannot honour, each naming its flags."""
    if args.compare_release and args.arch not in RELEASE_PORTS:
        parser.error(f"--compare-release measures one of {', '.join(RELEASE_PORTS)} against its release port")
    if (args.compare_release or args.arch == 'VLUNetReleasePort') and args.clip == 'none' \
            and not is_dgunet(args.arch):
        parser.error('the release arithmetic needs a CLIP vector: use --clip vit-b-32 or --clip small')
    if args.compile_regions and not args.compile:
        parser.error('--compile-regions goes with --compile')
    if args.gram_chunk is not None and args.gram_chunk < 0:
        parser.error('--gram-chunk must be 0 (no chunks) or a number of pixels')
    if args.backend != 'torch' and (args.compile or args.amp != 'none' or args.arch not in (None, 'VLUNet')
                                    or args.compare_release):
        parser.error(f'--backend {args.backend} compares float32 VLUNet (or the system of -opt) in torch eager with '
                     'the exported graph: drop --compile, --amp, --arch and --compare-release')
    if args.onnx and (args.backend == 'torch' or not args.opt):
        parser.error('--onnx goes with --backend onnxruntime (or openvino) and -opt (the YAML it was exported from)')
    if args.onnx and not os.path.isfile(args.onnx):
        parser.error(f'--onnx: no file {args.onnx}')
    if args.flop_rate and (args.skip_train or args.compile or args.backend != 'torch'):
        parser.error('--flop-rate counts the eager torch training step: drop --skip-train, --compile and '
                     '--backend onnxruntime')
    if args.onnx_dir and not os.path.isdir(args.onnx_dir):
        parser.error(f'--onnx-dir: no folder {args.onnx_dir}')
    if args.amp_ab and (args.amp == 'none' or args.backend != 'torch' or args.compile):
        parser.error('--amp-ab compares float32 with --amp bf16 (or fp16) in torch eager: give --amp, drop --backend '
                     'and --compile')


def measure(parser, args, argv):
    """Build the system of the flags, run the measurements they ask for, print and write the report."""
    resolve_network_flags(parser, args)
    if args.device == 'cpu':
        cpu_allocator.tune_cpu_allocator(args.cpu_allocator)
    check_flags(parser, args)
    if args.compare_release:
        from vlunet_basicsr.tools.benchmark.release import compare_release
        return compare_release(args, argv)
    if args.gram_chunk is not None:
        from vlunet_basicsr.archs import restormer_ops
        restormer_ops.GRAM_CHUNK = args.gram_chunk or sys.maxsize

    device = torch.device(args.device)
    torch.backends.cudnn.benchmark = True  # as basicsr's train and test pipelines set it
    torch.manual_seed(0)
    try:
        system = build(args, device)
    except (ValueError, KeyError, OSError) as error:
        parser.error(f'{args.opt or args.arch}: {error}')
    clip = system.clip
    print(f"{system.inputs.describe(None if clip is None else type(clip).__name__)} Random weights.", flush=True)
    model = system.net
    if args.compile and args.compile_regions:
        system.net.compile_regions(mode=args.compile)
    elif args.compile:
        model = torch.compile(system.net, mode=args.compile)
    policy = Policy(system, device, precision.supported_dtype(AMP_DTYPES[args.amp], device, '--amp'))

    results = {}
    if args.amp_ab:
        from vlunet_basicsr.tools.benchmark.amp_ab import precision_ab
        results['amp_ab'] = precision_ab(args, system, device)
    elif args.backend != 'torch':
        from vlunet_basicsr.tools.benchmark.exported import onnxruntime_comparison
        results[args.backend] = onnxruntime_comparison(args, system, device)
    else:
        # inference first: the CPU allocator keeps the training step's freed memory resident
        if not args.skip_inference:
            results.update(measure_inference(args, system, model, policy))
        if not args.skip_train:
            results['train'] = measure_training(args, system, model, policy)
    report = {'machine': machine_facts(device, args.load), 'config': vars(args), 'system': system.describe(),
              'results': results}
    print_results(results)
    write_json(args.json, report)
    return 0
