"""--amp-ab: float32 against a lower precision, alternating run by run in one process."""
import torch

from vlunet_basicsr.utils import precision
from vlunet_basicsr.utils.precision import AMP_DTYPES
from vlunet_basicsr.utils.timing import alternating


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
        medians = alternating({'float32': lambda: run(None), args.amp: lambda: run(low)}, device, args.warmup,
                              args.repeat)
        row['float32_s'], row[f'{args.amp}_s'] = medians['float32'], medians[args.amp]
        row['speedup'] = row['float32_s'] / row[f'{args.amp}_s']
        print(f"{name}: float32 {row['float32_s']:.3f} s, {args.amp} {row[f'{args.amp}_s']:.3f} s "
              f"({row['speedup']:.2f}x)" + (f", max |diff| {row['max_abs_diff']:.2e}" if 'max_abs_diff' in row else ''),
              flush=True)
    return results
