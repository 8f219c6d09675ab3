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
and with ONNX Runtime in the same run, and the largest |ONNX Runtime - torch| of the restored images.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import time
import warnings

import torch
import yaml

from vlunet_basicsr.utils import cpu_allocator, precision
from vlunet_basicsr.utils.precision import AMP_DTYPES
from vlunet_basicsr.utils.timing import PeakMemory, count_parameters, sync, timed
from vlunet_basicsr.utils.timing import seconds as measured_seconds

COMPILE_MODES = ('default', 'reduce-overhead', 'max-autotune', 'max-autotune-no-cudagraphs')
PRESETS = {
    'default': {},  # the released network
    'small': {'dim': 24, 'num_blocks': [1, 2, 2, 2], 'num_refinement_blocks': 1},
    'tiny': {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
}
DGUNET_PRESETS = {
    'default': {},  # the published deblurring / denoising widths (DGUNet 80/48/32, DGUNet+ 96/48/32)
    'small': {'n_feat': 40, 'scale_unetfeats': 20, 'scale_orsnetfeats': 16},  # the published deraining widths
    'tiny': {'n_feat': 16, 'scale_unetfeats': 8, 'scale_orsnetfeats': 8},
}
#: Each measured arch and the reference that computes it with the release's arithmetic (--compare-release).
RELEASE_PORTS = {'VLUNet': 'VLUNetReleasePort', 'DGUNet': 'DGUNetReleasePort', 'DGUNetPlus': 'DGUNetPlusReleasePort'}
ARCHS = [name for pair in RELEASE_PORTS.items() for name in pair] + ['VLURNet']
#: VL-UR's sizes (``--preset``): default = the arch's defaults (docs/vlur.md).
VLUR_PRESETS = {'default': {}, 'small': {'dim': 24}, 'tiny': {'dim': 8, 'heads': [1, 1, 1, 1]}}
CLIPS = {
    'vit-b-32': None,  # open_clip ViT-B-32 (random weights: speed does not depend on them)
    'small': {'embed_dim': 128, 'vision_cfg': {'image_size': 128, 'layers': 2, 'width': 128, 'patch_size': 16,
                                               'head_width': 32},
              'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 128, 'heads': 2, 'layers': 2}},
}


#: Side of the square float32 matrix product whose rate --flop-rate takes as the device's attainable peak.
MATMUL_SIDE = 2048


def matmul_rate(device, side=MATMUL_SIDE, warmup=2, repeat=5):
    """GFLOP/s of a (side x side) @ (side x side) float32 product on ``device``: the median of ``repeat``."""
    a = torch.randn(side, side, device=device)
    b = torch.randn(side, side, device=device)
    seconds, _ = timed(lambda: a @ b, device, warmup, repeat)
    return 2 * side**3 / seconds / 1e9


def print_profile(name, fn, device, rows):
    """One more run of ``fn`` under torch.profiler: the ``rows`` operators with the most self device time."""
    from torch.profiler import ProfilerActivity, profile
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == 'cuda' else [])
    with profile(activities=activities) as prof:
        fn()
        sync(device)
    sort_by = 'self_cuda_time_total' if device.type == 'cuda' else 'self_cpu_time_total'
    print(f'profile of {name}:')
    print(prof.key_averages().table(sort_by=sort_by, row_limit=rows, max_name_column_width=60))


def is_dgunet(name):
    """DGUNet, DGUNetPlus and their release ports: unguided, multi-stage networks."""
    return name.startswith('DGUNet')


class System:
    """The measured network, its frozen guidance encoder (or None), its protocol (`NetworkInputs`), its
    `Guidance` and its size rule."""

    def __init__(self, net, clip, prompts):
        from vlunet_basicsr.models.guidance import Guidance
        from vlunet_basicsr.models.network_inputs import NetworkInputs, size_rule
        self.net, self.clip = net, clip
        self.inputs = NetworkInputs.of(type(net))
        self.inputs.check_encoder(clip is not None)
        self.guidance = Guidance(self.inputs, clip, prompts)
        self.rule = size_rule(net)

    def guide(self, images, evaluating):
        """The guidance input for ``images``: in training with label 0 for each (text-guided archs)."""
        labels = None if evaluating else torch.zeros(images.shape[0], dtype=torch.long)
        return self.guidance(images, labels, evaluating)

    def losses(self, model, lq, gt, guidance):
        """The training loss: L1 summed over every output image (the stages of a multi-stage arch)."""
        return sum((output.float() - gt).abs().mean() for output in self.inputs.outputs(model, lq, guidance,
                                                                                        self.rule))

    def restore(self, model, image, guidance, tile=None, tile_overlap=32):
        """The final image of ``model`` (``self.net`` or its compiled form) on ``image``, padded by the size rule."""
        from vlunet_basicsr.utils.restore_util import restore_image
        return restore_image(self.inputs.final(model, guidance), image, tile, tile_overlap, size_rule=self.rule)

    def describe(self):
        return {'arch': self.inputs.arch, 'guidance_input': self.inputs.guidance_input,
                'multi_stage_output': self.inputs.multi_stage_output, 'size_multiple': self.rule.multiple,
                'encoder': None if self.clip is None else type(self.clip).__name__, 'weights': 'random weights',
                'params': count_parameters(self.net), 'guidance_params': count_parameters(self.clip)}


def build(args, device):
    """The `System` that -opt's YAML, or --arch / --preset / --clip, describe, on ``device``."""
    import vlunet_basicsr  # noqa: F401
    from vlunet_basicsr.utils.prompts import resolve_prompts
    if args.opt:
        net, clip, prompts = build_from_options(args.opt, args.network_override)
    else:
        net, clip, prompts = *build_from_tables(args), None
    if clip is not None:
        clip = clip.to(device).eval().requires_grad_(False)
    return System(net.to(device), clip, resolve_prompts(prompts))


def parse_overrides(pairs):
    """``--network-override key=value`` pairs -> {key: YAML value}; ValueError naming a pair without ``=``."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise ValueError(f'--network-override takes key=value (e.g. dim=16); got {pair!r}')
        overrides[key] = yaml.safe_load(value)
    return overrides


def build_from_options(path, overrides=None):
    """network_g (with ``overrides``) and network_clip of the YAML ``path``, random weights, and its prompts."""
    from basicsr.archs import build_network
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict) or 'type' not in opt['network_g']:
        raise ValueError(f'{path}: no network_g mapping with a type to build')
    net = build_network({**opt['network_g'], **(overrides or {})})
    clip_opt = opt.get('network_clip')
    if clip_opt is None:
        return net, None, opt.get('prompts')
    dropped = [key for key in ('pretrained', 'adapter_path') if clip_opt.get(key) is not None]
    if dropped:
        warnings.warn(f"{path}: network_clip's {' and '.join(dropped)} not loaded: the benchmark runs random "
                      'weights (speed does not depend on them)')
    return net, build_network({**clip_opt, 'pretrained': None, 'adapter_path': None}), opt.get('prompts')


def build_from_tables(args):
    """The network of --arch at --preset and the CLIP of --clip (none for the DGUNet archs)."""
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    clip = None
    if args.clip != 'none' and not is_dgunet(args.arch):
        clip = DegradationCLIP(pretrained=None, model_cfg=CLIPS[args.clip])
    vector_dim = clip.backbone.visual.output_dim if clip is not None else 512
    return build_arch(args.arch, args, degradation_dim=vector_dim), clip


def build_arch(name, args, **overrides):
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    from vlunet_basicsr.reference.vlunet_release_port import VLUNetReleasePort
    if is_dgunet(name):
        from basicsr.utils.registry import ARCH_REGISTRY
        from vlunet_basicsr.reference import RELEASE_PORTS
        speed = {} if name.endswith('ReleasePort') else {'channels_last': args.channels_last}
        return (RELEASE_PORTS.get(name) or ARCH_REGISTRY.get(name))(**DGUNET_PRESETS[args.preset], **speed)
    if name == 'VLURNet':  # guided by a text embedding as long as the CLIP vector (its speed does not depend on it)
        from vlunet_basicsr.archs.vlur_arch import VLURNet
        return VLURNet(**VLUR_PRESETS[args.preset], text_dim=overrides['degradation_dim'])
    options = {**PRESETS[args.preset], **overrides}
    if name == 'VLUNetReleasePort':
        return VLUNetReleasePort(**options)
    return VLUNet(**options, channels_last=args.channels_last,
                  fused_backward=args.fused_backward == 'on')


def output_difference(args, arch='VLUNet'):
    """Max |arch - its release port| on shared random weights: the outputs (every stage image of a DGUNet), and
    the gradients of one step."""
    from vlunet_basicsr.models.network_inputs import NetworkInputs
    torch.manual_seed(0)
    fast, release = build_arch(arch, args), build_arch(RELEASE_PORTS[arch], args)
    release.load_state_dict(fast.state_dict())
    inputs = NetworkInputs.of(type(fast))
    lq = torch.rand(args.batch, 3, args.size, args.size)
    guidance = torch.randn(args.batch, fast.degradation_dim) if inputs.guided else None
    outputs, grads = [], []
    for net in (fast, release):
        out = torch.stack(inputs.outputs(net, lq, guidance))
        out.abs().mean().backward()
        outputs.append(out.detach())
        grads.append({name: p.grad for name, p in net.named_parameters() if p.grad is not None})
    if grads[0].keys() != grads[1].keys():
        raise RuntimeError(f'{arch} and {RELEASE_PORTS[arch]} give gradients to different parameters')
    grad_diff = max((grads[0][name] - grads[1][name]).abs().max().item() for name in grads[0])
    return {'max_abs_output_diff': (outputs[0] - outputs[1]).abs().max().item(), 'max_abs_grad_diff': grad_diff}


def compare_release(args, argv):
    """Run this script once per arch in a fresh process; report the speed-up and the output agreement."""
    import subprocess
    import tempfile
    fast = args.arch
    release = RELEASE_PORTS[fast]
    runs = {}
    for arch in (release, fast):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, 'run.json')
            command = [sys.executable, os.path.abspath(__file__), *_without_compare(argv), '--arch', arch,
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
    _write_json(args.json, report)
    return 0


def describe_flop_rate(train):
    """One line: the step's FLOPs, its rate and that rate's share of the matrix product's."""
    return (f"  {train['flops'] / 1e12:.3f} TFLOP per step, {train['gflop_per_s']:.0f} GFLOP/s = "
            f"{100 * train['share_of_matmul_rate']:.0f}% of a float32 {MATMUL_SIDE}x{MATMUL_SIDE} matrix "
            f"product's {train['matmul_gflop_per_s']:.0f} GFLOP/s")


def _without_compare(argv):
    kept, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg in ('--json', '--arch'):
            skip = True
        elif arg != '--compare-release' and not arg.startswith(('--json=', '--arch=')):
            kept.append(arg)
    return kept


def _write_json(path, report):
    if path:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, 'w') as f:
            json.dump(report, f, indent=1)


def exported_runtimes(args, device):
    """The runtimes --backend compares with torch eager: ONNX Runtime, or OpenVINO in f32 and in bf16 (on
    torch's thread count)."""
    from vlunet_basicsr.onnx_runtime import OnnxRuntime, execution_providers
    if args.backend == 'onnxruntime':
        return {'onnxruntime': OnnxRuntime(execution_providers(device.type))}
    from vlunet_basicsr.openvino_runtime import OpenVinoRuntime
    return {f'openvino_{p}': OpenVinoRuntime(p, 'cpu', torch.get_num_threads()) for p in ('f32', 'bf16')}


def onnxruntime_comparison(args, system, device):
    """Torch eager against the --backend runtime(s) on the same network, guidance and images: median seconds per
    size (ONNX Runtime: ``onnxruntime_s``, ``speedup``, ``max_abs_diff``; OpenVINO: ``openvino_f32_s``,
    ``openvino_f32_speedup``, ``openvino_f32_max_abs_diff`` and the same for bf16)."""
    import tempfile

    from vlunet_basicsr.onnx_export import export_system
    from vlunet_basicsr.onnx_runtime import OnnxGuidance, OnnxNetwork, guidance_path
    from vlunet_basicsr.restorer import Networks
    from vlunet_basicsr.utils.prompts import resolve_prompts
    from vlunet_basicsr.utils.restore_util import restore
    net, clip = system.net.eval(), system.clip
    networks = Networks(net, system.inputs, clip, resolve_prompts(None), None, 1)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(args.onnx_dir or tmp, 'model.onnx')
        start = time.perf_counter()
        export_system(networks, path)
        results['export_s'] = time.perf_counter() - start
        graphs = {name: (OnnxNetwork(path, runtime), OnnxGuidance(guidance_path(path), runtime) if clip else None)
                  for name, runtime in exported_runtimes(args, device).items()}
        onnx_net, onnx_clip = graphs.get('onnxruntime', (None, None))
        for size in args.infer_sizes:
            image = torch.rand(1, 3, size, size, device=device)

            def restored(graph, encoder):
                with torch.no_grad():
                    return restore(graph, image, None if encoder is None else encoder.degradation_vector(image))

            expected = restored(net, clip)
            torch_s = timed(lambda: restored(net, clip), device, args.warmup, args.repeat)[0]
            row = results[f'inference_{size}'] = {'size': size, 'torch_eager_s': torch_s}
            for name, (graph, encoder) in graphs.items():
                difference = (restored(graph, encoder) - expected).abs().max().item()
                seconds = timed(lambda: restored(graph, encoder), device, args.warmup, args.repeat)[0]
                prefix = '' if name == 'onnxruntime' else f'{name}_'
                row.update({f'{name}_s': seconds, f'{prefix}speedup': torch_s / seconds,
                            f'{prefix}max_abs_diff': difference})
                print(f'{size}x{size}: torch eager {torch_s:.3f} s, {name} {seconds:.3f} s '
                      f'({torch_s / seconds:.2f}x), max |{name} - torch| {difference:.2e}', flush=True)
            if args.profile and onnx_net is not None:
                vector = None if onnx_clip is None else onnx_clip.degradation_vector(image)
                kernels = onnxruntime_profile(onnx_net, lambda graph: restore(graph, image, vector), args.repeat)
                results[f'inference_{size}']['onnxruntime_kernel_ms'] = kernels
                print_onnxruntime_profile(f'{size}x{size}', kernels, args.profile)
    results['providers'] = [graph.describe() for graph, _ in graphs.values()]
    return results


def precision_ab(args, system, device):
    """``--amp-ab``: float32 and the --amp policy (`precision.precision_scope`) alternating, run by run, on one
    network: median seconds of each, their ratio, and for restores the max |difference| of the outputs."""
    net, clip = system.net, system.clip
    low = precision.supported_dtype(AMP_DTYPES[args.amp], device, '--amp')
    modules = [net] + ([clip] if clip is not None else [])
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
    lq = torch.rand(args.batch, 3, args.size, args.size, device=device)
    gt = torch.rand_like(lq)

    def vector(images, dtype, evaluating):
        with torch.no_grad(), precision.precision_scope(device, dtype, *modules):
            return system.guide(images, evaluating)

    def train_step(dtype):
        guidance = vector(lq, dtype, False)
        optimizer.zero_grad(set_to_none=True)
        with precision.precision_scope(device, dtype, *modules):
            loss = system.losses(net, lq, gt, guidance)
        loss.backward()
        optimizer.step()

    def restorer(size):
        image = torch.rand(1, 3, size, size, device=device)

        def run(dtype):
            with torch.no_grad(), precision.precision_scope(device, dtype, *modules):
                return system.restore(net, image, vector(image, dtype, True)).float()
        return run

    cases = [] if args.skip_train else [('train', train_step)]
    cases += [] if args.skip_inference else [(f'inference_{size}', restorer(size)) for size in args.infer_sizes]
    results = {}
    for name, run in cases:
        net.train(name == 'train')
        row = results[name] = {}
        if name != 'train':
            row['max_abs_diff'] = (run(None) - run(low)).abs().max().item()
        times = {None: [], low: []}
        for _ in range(args.warmup):
            run(None), run(low)
        for _ in range(args.repeat):
            for dtype, seconds in times.items():
                seconds.append(measured_seconds(lambda: run(dtype), device))
        row['float32_s'], row[f'{args.amp}_s'] = (sorted(t)[len(t) // 2] for t in times.values())
        row['speedup'] = row['float32_s'] / row[f'{args.amp}_s']
        print(f"{name}: float32 {row['float32_s']:.3f} s, {args.amp} {row[f'{args.amp}_s']:.3f} s "
              f"({row['speedup']:.2f}x)" + (f", max |diff| {row['max_abs_diff']:.2e}" if 'max_abs_diff' in row else ''),
              flush=True)
    return results


def onnxruntime_profile(onnx_net, run, repeat):
    """Kernel milliseconds per run of the restoration graph, by operator type, from ONNX Runtime's profiler:
    ``run(graph)`` once untimed, then ``repeat`` times, on a profiling session of ``onnx_net``'s graph."""
    import collections
    import copy
    import tempfile

    import onnxruntime
    options = onnxruntime.SessionOptions()
    options.enable_profiling = True
    with tempfile.TemporaryDirectory() as tmp:
        options.profile_file_prefix = os.path.join(tmp, 'profile')
        profiled = copy.copy(onnx_net)
        profiled.session = onnxruntime.InferenceSession(onnx_net.path, options,
                                                        providers=onnx_net.session.get_providers())
        with torch.no_grad():
            for _ in range(1 + repeat):
                run(profiled)
        with open(profiled.session.end_profiling()) as f:
            events = json.load(f)
    runs = sorted(event['ts'] for event in events if event.get('name') == 'model_run')
    kernels = collections.Counter()
    for event in events:
        if event.get('cat') == 'Node' and event['name'].endswith('_kernel_time') and event['ts'] >= runs[1]:
            kernels[event['args']['op_name']] += event['dur'] / 1000 / repeat
    return dict(kernels.most_common())


def print_onnxruntime_profile(name, kernels, rows):
    total = sum(kernels.values())
    print(f'ONNX Runtime kernels at {name}: {total:.1f} ms per run; the {rows} costliest operator types:')
    for op, ms in list(kernels.items())[:rows]:
        print(f'  {op:<24}{ms:>10.1f} ms {100 * ms / total:>5.1f}%')


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', '--opt', metavar='YAML',
                        help='build network_g (and network_clip) of this train or test YAML, random weights, instead '
                             'of --arch / --preset / --clip')
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


def measure(parser, args, argv):
    resolve_network_flags(parser, args)
    if args.device == 'cpu':
        cpu_allocator.tune_cpu_allocator(args.cpu_allocator)
    if args.compare_release and args.arch not in RELEASE_PORTS:
        parser.error(f"--compare-release measures one of {', '.join(RELEASE_PORTS)} against its release port")
    if (args.compare_release or args.arch == 'VLUNetReleasePort') and args.clip == 'none' \
            and not is_dgunet(args.arch):
        parser.error('the release arithmetic needs a CLIP vector: use --clip vit-b-32 or --clip small')
    if args.compile_regions and not args.compile:
        parser.error('--compile-regions goes with --compile')
    if args.gram_chunk is not None and args.gram_chunk < 0:
        parser.error('--gram-chunk must be 0 (no chunks) or a number of pixels')
    if args.backend != 'torch' and (args.compile or args.amp != 'none' or args.arch != 'VLUNet'
                                    or args.compare_release or args.opt):
        parser.error(f'--backend {args.backend} compares float32 VLUNet in torch eager with ONNX Runtime: drop '
                     '--compile, --amp, --arch, -opt and --compare-release')
    if args.flop_rate and (args.skip_train or args.compile or args.backend != 'torch'):
        parser.error('--flop-rate counts the eager torch training step: drop --skip-train, --compile and '
                     '--backend onnxruntime')
    if args.onnx_dir and not os.path.isdir(args.onnx_dir):
        parser.error(f'--onnx-dir: no folder {args.onnx_dir}')
    if args.amp_ab and (args.amp == 'none' or args.backend != 'torch' or args.compile):
        parser.error('--amp-ab compares float32 with --amp bf16 (or fp16) in torch eager: give --amp, drop --backend '
                     'and --compile')
    if args.compare_release:
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
    net, clip = system.net, system.clip
    print(f"{system.inputs.describe(None if clip is None else type(clip).__name__)} Random weights.", flush=True)
    model = net
    if args.compile and args.compile_regions:
        net.compile_regions(mode=args.compile)
    elif args.compile:
        model = torch.compile(net, mode=args.compile)

    amp = precision.supported_dtype(AMP_DTYPES[args.amp], device, '--amp')

    def autocast():  # the amp policy (precision_scope) over the network and the encoder
        return precision.precision_scope(device, amp, net, *([clip] if clip is not None else []))

    def vector_of(images, evaluating=False):
        with autocast():
            return system.guide(images, evaluating)

    results = {}
    if args.amp_ab:
        results['amp_ab'] = precision_ab(args, system, device)
    elif args.backend != 'torch':
        results[args.backend] = onnxruntime_comparison(args, system, device)
    elif not args.skip_inference:
        net.eval()
        image = torch.rand(1, 3, args.infer_size, args.infer_size, device=device)
        for name, tile in (('whole', None), ('tiled', args.tile or None)):
            if (name == 'tiled' and tile is None) or (name == 'whole' and args.skip_whole and args.tile):
                continue

            def infer():
                with torch.no_grad(), autocast():
                    return system.restore(model, image, vector_of(image, True), tile, args.tile_overlap)

            with PeakMemory(device) as memory:
                seconds, first_call = timed(infer, device, args.warmup, args.repeat)
            results[f'inference_{name}'] = {'seconds': seconds, 'first_call_s': first_call,
                                            'peak_memory_mb': memory.mb, 'tile': tile, 'size': args.infer_size}
            if args.profile:
                print_profile(f'inference_{name}', infer, device, args.profile)

    if not args.skip_train and args.backend == 'torch' and not args.amp_ab:
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
        lq = torch.rand(args.batch, 3, args.size, args.size, device=device)
        gt = torch.rand_like(lq)

        def train_step():
            vector = vector_of(lq)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = system.losses(model, lq, gt, vector)  # multi-stage archs: summed over the stages
            loss.backward()
            optimizer.step()

        with PeakMemory(device) as memory:
            step, first_step = timed(train_step, device, args.warmup, args.repeat)
        clip_time = timed(lambda: vector_of(lq), device, args.warmup, args.repeat)[0] if clip is not None else 0.0
        results['train'] = {'step_s': step, 'first_step_s': first_step, 'clip_s': clip_time,
                            'clip_share': clip_time / step, 'peak_memory_mb': memory.mb}
        if args.flop_rate:
            from vlunet_basicsr.utils.timing import count_macs
            flops = 2 * count_macs(train_step)  # the step runs once more, counted
            peak = matmul_rate(device)
            results['train'].update(flops=flops, gflop_per_s=flops / step / 1e9, matmul_gflop_per_s=peak,
                                    share_of_matmul_rate=flops / step / 1e9 / peak)
        if args.profile:
            print_profile('train', train_step, device, args.profile)

    machine = {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
               'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
               'load_processes': args.load, 'omp_wait_policy': os.environ.get('OMP_WAIT_POLICY'),
               'device': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}
    if device.type == 'cuda':  # "float32" convolutions run in TF32 under torch's default
        machine.update(cudnn_allow_tf32=torch.backends.cudnn.allow_tf32,
                       matmul_allow_tf32=torch.backends.cuda.matmul.allow_tf32)
    report = {'machine': machine, 'config': vars(args), 'system': system.describe(), 'results': results}
    print(f"{'measure':<22}{'seconds':>10}{'peak MB':>10}  notes")
    for name, values in results.items():
        if name in ('onnxruntime', 'openvino', 'amp_ab'):
            continue
        seconds = values.get('step_s', values.get('seconds'))
        note = f"CLIP {values['clip_s']:.3f} s = {100 * values['clip_share']:.1f}% of the step" if 'clip_s' in values \
            else f"{values['size']}x{values['size']}" + (f", tiles {values['tile']}" if values['tile'] else '')
        first = values.get('first_step_s', values.get('first_call_s'))
        print(f"{name:<22}{seconds:>10.3f}{values['peak_memory_mb']:>10.0f}  {note}; first run {first:.1f} s")
        if 'flops' in values:
            print(describe_flop_rate(values))
    _write_json(args.json, report)
    return 0


if __name__ == '__main__':
    sys.exit(main())
