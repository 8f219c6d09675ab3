"""Speed and memory of VLU-Net: a training step with CLIP guidance, and inference with and without tiles.

    python scripts/benchmark.py                                  # default VLUNet, 128x128, batch 2, CPU
    python scripts/benchmark.py --device cuda --batch 32 --amp bf16 --json docs/benchmarks/h100.json
    python scripts/benchmark.py --infer-size 1024 --tile 256 --skip-train

Training step = CLIP vector (one batched no-grad call) + forward + backward + AdamW; the CLIP share of the
step is reported. Warm-up runs, then the median of --repeat runs. Peak memory: CUDA's allocator peak, or on
CPU the growth of the process's peak resident set (VmHWM, reset before each measurement). Inference is measured
before training because the CPU allocator keeps freed memory resident; for exact CPU figures measure one thing
per process (--skip-train / --skip-inference). Not a test: a tool.
"""
import argparse
import json
import os
import platform
import re
import statistics
import sys
import time

import torch

PRESETS = {
    'default': {},  # the released network
    'small': {'dim': 24, 'num_blocks': [1, 2, 2, 2], 'num_refinement_blocks': 1},
    'tiny': {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
}
CLIPS = {
    'vit-b-32': None,  # open_clip ViT-B-32 (random weights: speed does not depend on them)
    'small': {'embed_dim': 128, 'vision_cfg': {'image_size': 128, 'layers': 2, 'width': 128, 'patch_size': 16,
                                               'head_width': 32},
              'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 128, 'heads': 2, 'layers': 2}},
}


def _vm_kb(field):
    match = re.search(rf'{field}:\s+(\d+)', open('/proc/self/status').read())
    return int(match.group(1)) if match else 0


class PeakMemory:
    """Peak memory of a block in MB: CUDA allocator peak, or growth of VmHWM on CPU (after resetting it)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.base = torch.cuda.memory_allocated()
        else:
            try:
                with open('/proc/self/clear_refs', 'w') as f:
                    f.write('5')  # resets VmHWM to the current RSS
            except OSError:
                pass
            self.base = _vm_kb('VmRSS') * 1024
        return self

    def __exit__(self, *exc):
        if self.device.type == 'cuda':
            torch.cuda.synchronize()
            self.mb = (torch.cuda.max_memory_allocated() - self.base) / 2**20
        else:
            self.mb = (_vm_kb('VmHWM') * 1024 - self.base) / 2**20


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize()


def timed(fn, device, warmup, repeat):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def build(args, device):
    import vlunet_basicsr  # noqa: F401
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    clip = None
    if args.clip != 'none':
        clip = DegradationCLIP(pretrained=None, model_cfg=CLIPS[args.clip]).to(device).eval()
    vector_dim = clip.backbone.visual.output_dim if clip is not None else 512
    net = VLUNet(**PRESETS[args.preset], degradation_dim=vector_dim).to(device)
    if args.channels_last:
        for param in net.parameters():
            if param.dim() == 4:
                param.data = param.data.contiguous(memory_format=torch.channels_last)
    return net, clip


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--preset', choices=sorted(PRESETS), default='default')
    parser.add_argument('--clip', choices=[*CLIPS, 'none'], default='vit-b-32')
    parser.add_argument('--size', type=int, default=128, help='training patch size')
    parser.add_argument('--batch', type=int, default=2)
    parser.add_argument('--device', choices=['cpu', 'cuda'], default='cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none')
    parser.add_argument('--channels-last', action='store_true')
    parser.add_argument('--compile', action='store_true')
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=3)
    parser.add_argument('--infer-size', type=int, default=256)
    parser.add_argument('--tile', type=int, default=0, help='also measure tiled inference with this tile size')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--skip-train', action='store_true')
    parser.add_argument('--skip-inference', action='store_true')
    parser.add_argument('--json', help='write the results here')
    args = parser.parse_args(argv)

    from vlunet_basicsr.utils.restore_util import restore
    device = torch.device(args.device)
    torch.manual_seed(0)
    net, clip = build(args, device)
    amp_dtype = {'bf16': torch.bfloat16, 'fp16': torch.float16}.get(args.amp)
    model = torch.compile(net) if args.compile else net
    memory_format = torch.channels_last if args.channels_last else torch.contiguous_format

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None)

    def vector_of(images):
        if clip is None:
            return None
        with torch.no_grad(), autocast():
            return clip.encode_image(clip.preprocess(images)).float()

    results = {}
    if not args.skip_inference:
        net.eval()
        image = torch.rand(1, 3, args.infer_size, args.infer_size, device=device).contiguous(
            memory_format=memory_format)
        for name, tile in (('whole', None), ('tiled', args.tile or None)):
            if name == 'tiled' and tile is None:
                continue

            def infer():
                with torch.no_grad(), autocast():
                    return restore(model, image, vector_of(image), tile, args.tile_overlap)

            with PeakMemory(device) as memory:
                seconds = timed(infer, device, args.warmup, args.repeat)
            results[f'inference_{name}'] = {'seconds': seconds, 'peak_memory_mb': memory.mb, 'tile': tile,
                                            'size': args.infer_size}

    if not args.skip_train:
        net.train()
        optimizer = torch.optim.AdamW(net.parameters(), lr=2e-4)
        lq = torch.rand(args.batch, 3, args.size, args.size, device=device).contiguous(memory_format=memory_format)
        gt = torch.rand_like(lq)

        def train_step():
            vector = vector_of(lq)
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                loss = (model(lq, vector).float() - gt).abs().mean()
            loss.backward()
            optimizer.step()

        with PeakMemory(device) as memory:
            step = timed(train_step, device, args.warmup, args.repeat)
        clip_time = timed(lambda: vector_of(lq), device, args.warmup, args.repeat) if clip is not None else 0.0
        results['train'] = {'step_s': step, 'clip_s': clip_time, 'clip_share': clip_time / step,
                            'peak_memory_mb': memory.mb}

    machine = {'platform': platform.platform(), 'processor': platform.processor() or platform.machine(),
               'cpu_count': os.cpu_count(), 'torch_threads': torch.get_num_threads(), 'torch': torch.__version__,
               'device': torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}
    report = {'machine': machine, 'config': vars(args), 'results': results}
    print(f"{'measure':<22}{'seconds':>10}{'peak MB':>10}  notes")
    for name, values in results.items():
        seconds = values.get('step_s', values.get('seconds'))
        note = f"CLIP {values['clip_s']:.3f} s = {100 * values['clip_share']:.1f}% of the step" if 'clip_s' in values \
            else f"{values['size']}x{values['size']}" + (f", tiles {values['tile']}" if values['tile'] else '')
        print(f"{name:<22}{seconds:>10.3f}{values['peak_memory_mb']:>10.0f}  {note}")
    if args.json:
        os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
        with open(args.json, 'w') as f:
            json.dump(report, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
