"""Torch eager measurements: whole and tiled inference, the training step (guidance, forward, backward, AdamW),
its FLOP rate against the device's matrix-product rate, and operator profiles."""
import torch

from vlunet_basicsr.utils.timing import PeakMemory, sync, timed

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


def describe_flop_rate(train):
    """One line: the step's FLOPs, its rate and that rate's share of the matrix product's."""
    return (f"  {train['flops'] / 1e12:.3f} TFLOP per step, {train['gflop_per_s']:.0f} GFLOP/s = "
            f"{100 * train['share_of_matmul_rate']:.0f}% of a float32 {MATMUL_SIDE}x{MATMUL_SIDE} matrix "
            f"product's {train['matmul_gflop_per_s']:.0f} GFLOP/s")


class Policy:
    """The --amp policy (`precision.precision_scope`) over a system's network and guidance encoder."""

    def __init__(self, system, device, dtype):
        from vlunet_basicsr.utils import precision
        self.system, self.device, self.dtype, self._precision = system, device, dtype, precision
        self.modules = [system.net] + ([system.clip] if system.clip is not None else [])

    def scope(self):
        return self._precision.precision_scope(self.device, self.dtype, *self.modules)

    def guide(self, images, evaluating=False):
        with self.scope():
            return self.system.guide(images, evaluating)


def measure_inference(args, system, model, policy):
    """Whole-image (and with --tile, tiled) inference of one --infer-size image: guidance + network, median
    seconds, the first call's seconds and the peak memory, by ``inference_whole`` / ``inference_tiled``."""
    device = policy.device
    system.net.eval()
    image = torch.rand(1, 3, args.infer_size, args.infer_size, device=device)
    results = {}
    for name, tile in (('whole', None), ('tiled', args.tile or None)):
        if (name == 'tiled' and tile is None) or (name == 'whole' and args.skip_whole and args.tile):
            continue

        def infer():
            with torch.no_grad(), policy.scope():
                return system.restore(model, image, policy.guide(image, True), tile, args.tile_overlap)

        with PeakMemory(device) as memory:
            seconds, first_call = timed(infer, device, args.warmup, args.repeat)
        results[f'inference_{name}'] = {'seconds': seconds, 'first_call_s': first_call,
                                        'peak_memory_mb': memory.mb, 'tile': tile, 'size': args.infer_size}
        if args.profile:
            print_profile(f'inference_{name}', infer, device, args.profile)
    return results


def measure_training(args, system, model, policy):
    """The training step on a random --batch of --size patches: median seconds, the first step's, the guidance
    vector's seconds and share, the peak memory, and with --flop-rate the step's FLOPs against the matrix-product
    rate."""
    device = policy.device
    system.net.train()
    optimizer = torch.optim.AdamW(system.net.parameters(), lr=2e-4)
    lq = torch.rand(args.batch, 3, args.size, args.size, device=device)
    gt = torch.rand_like(lq)

    def train_step():
        vector = policy.guide(lq)
        optimizer.zero_grad(set_to_none=True)
        with policy.scope():
            loss = system.losses(model, lq, gt, vector)  # multi-stage archs: summed over the stages
        loss.backward()
        optimizer.step()

    with PeakMemory(device) as memory:
        step, first_step = timed(train_step, device, args.warmup, args.repeat)
    clip_time = timed(lambda: policy.guide(lq), device, args.warmup, args.repeat)[0] if system.clip is not None else 0.0
    result = {'step_s': step, 'first_step_s': first_step, 'clip_s': clip_time, 'clip_share': clip_time / step,
              'peak_memory_mb': memory.mb}
    if args.flop_rate:
        from vlunet_basicsr.utils.timing import count_macs
        flops = 2 * count_macs(train_step)  # the step runs once more, counted
        peak = matmul_rate(device)
        result.update(flops=flops, gflop_per_s=flops / step / 1e9, matmul_gflop_per_s=peak,
                      share_of_matmul_rate=flops / step / 1e9 / peak)
    if args.profile:
        print_profile('train', train_step, device, args.profile)
    return result
