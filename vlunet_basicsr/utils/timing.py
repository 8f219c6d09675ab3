"""The one timing harness of ``basicsr compare`` and ``scripts/benchmark.py``: device sync, seconds of a call,
the median of repeats, parameter and MAC counts, peak memory, and the CPU's model name."""
import platform
import re
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def cpu_model():
    """The CPU's model name as lscpu prints it (/proc/cpuinfo), else the machine type: speed figures name it."""
    try:
        with open('/proc/cpuinfo') as f:
            return next(line.split(':', 1)[1].strip() for line in f if line.startswith('model name'))
    except (OSError, StopIteration):
        return platform.machine()


def sync(device):
    """Wait for ``device``'s queued work (CUDA); nothing on the CPU."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def seconds(fn, device):
    """Wall-clock seconds of ``fn()``, the device synchronised before and after."""
    sync(device)
    start = time.perf_counter()
    fn()
    sync(device)
    return time.perf_counter() - start


def timed(fn, device, warmup, repeat):
    """Seconds of ``fn``: the median of ``repeat`` runs after ``warmup`` runs, and the first run's (which includes
    torch.compile's compilation)."""
    times = [seconds(fn, device) for _ in range(warmup + repeat)]
    return statistics.median(times[warmup:]), times[0]


def alternating(runs, device, warmup, repeat):
    """Median seconds of each of ``runs`` ({name: fn}), timed in turn round by round so that a drift of the
    machine's speed weighs on all alike: ``warmup`` untimed rounds, then ``repeat`` timed ones."""
    for _ in range(warmup):
        for fn in runs.values():
            fn()
    times = {name: [] for name in runs}
    for _ in range(repeat):
        for name, fn in runs.items():
            times[name].append(seconds(fn, device))
    return {name: statistics.median(values) for name, values in times.items()}


def count_parameters(module):
    """Number of parameters of ``module`` (0 for None)."""
    return 0 if module is None else sum(p.numel() for p in module.parameters())


def count_macs(fn):
    """Multiply-accumulates of ``fn()``: half the FLOPs that ``torch.utils.flop_counter`` counts (convolutions,
    matrix products and attention; element-wise operations are not counted)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops() // 2


def _vm_kb(field):
    with open('/proc/self/status') as f:
        match = re.search(rf'{field}:\s+(\d+)', f.read())
    return int(match.group(1)) if match else 0


class PeakMemory:
    """Peak memory of a ``with`` block in MB (``mb``): the CUDA allocator's peak, or on the CPU the growth of the
    process's peak resident set (VmHWM, reset on entry where the kernel allows it)."""

    def __init__(self, device):
        self.device = device

    def __enter__(self):
        if self.device.type == 'cuda':
            sync(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.base = torch.cuda.memory_allocated(self.device)
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
            sync(self.device)
            self.mb = (torch.cuda.max_memory_allocated(self.device) - self.base) / 2**20
        else:
            self.mb = (_vm_kb('VmHWM') * 1024 - self.base) / 2**20
