"""Keep freed CPU memory for reuse instead of handing it back to the kernel (glibc only).

By default glibc serves allocations above its mmap threshold (at most 32 MiB) with a fresh ``mmap`` and
unmaps them on free, so each
training step on CPU faults in, and the kernel zeroes, every large activation again. On the 2-core machine in
docs/benchmarks that is about 5 CPU-seconds of kernel time per default VLUNet step (128 px, batch 2).
``tune_cpu_allocator('tuned')`` makes glibc serve all allocations from its heap and never trim it, so a
steady training loop reuses the same pages (measured step times: README, "Speed and memory"). The price: the
process keeps its peak heap until it exits, and a heap that is never trimmed fragments under one-off
allocations of very different sizes (restoring a whole 1024x1024 image took almost twice the memory).

Selected by the top-level YAML key ``cpu_allocator`` (applied when the run has no GPU; default ``tuned`` for
``basicsr train``, ``system`` for ``basicsr test``), ``basicsr restore --cpu-allocator`` (default ``system``)
and ``scripts/benchmark.py --cpu-allocator`` (default ``tuned``).
"""
import ctypes
import ctypes.util
import platform

CHOICES = ('tuned', 'system')
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def check_mode(mode, where='cpu_allocator'):
    """Raise a ValueError naming ``where`` unless ``mode`` is one of CHOICES."""
    if mode not in CHOICES:
        raise ValueError(f"{where} must be one of {', '.join(CHOICES)}, got {mode!r}")


def tune_cpu_allocator(mode='tuned'):
    """Apply ``mode`` to this process (and workers forked later).

    Args:
        mode (str): 'tuned' (heap only, never trimmed) or 'system' (leave glibc's defaults).

    Returns:
        bool: True when the tuning was applied; False for 'system' or where glibc is not the C library.
    """
    check_mode(mode)
    if mode == 'system' or platform.system() != 'Linux' or platform.libc_ver()[0] != 'glibc':
        return False
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6')
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
