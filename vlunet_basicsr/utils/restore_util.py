"""Restoring one batch the way validation, testing and inference all do: optional tiles and x8 self-ensemble."""
import torch

from vlunet_basicsr.utils.precision import accumulation_dtype
from vlunet_basicsr.utils.tiling import tiled_restore


def dihedral(x, k):
    """The k-th of the 8 flips/rotations (k in 0..7) of an NCHW tensor."""
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))


def undo_dihedral(x, k):
    """Inverse of `dihedral`."""
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def compile_arguments(option, where='val.compile'):
    """torch.compile's keyword arguments for a ``compile`` option: None when it is false or None, {} when true,
    the mapping itself (``mode``, ``dynamic``, ``backend``, ...) when it is one."""
    if option is None or option is False:
        return None
    if option is True:
        return {}
    if not isinstance(option, dict):
        raise ValueError(f'{where} must be true, false or a mapping of torch.compile arguments; got {option!r}')
    return dict(option)


def compiled(net, option, where='val.compile'):
    """``net`` under ``torch.compile`` as the ``compile`` option asks (see `compile_arguments`), else ``net``."""
    arguments = compile_arguments(option, where)
    return net if arguments is None else torch.compile(net, **arguments)


def restore(net, lq, vector=None, tile=None, tile_overlap=32, self_ensemble=False):
    """``net(lq, vector)`` at any size (the net pads to a multiple of 8 itself), tiled when ``tile`` is set
    (the vector comes from the whole image), averaged over the 8 flips/rotations with ``self_ensemble``."""

    def run(image):
        if tile:
            return tiled_restore(lambda patch: net(patch, vector), image, tile, tile_overlap)
        return net(image, vector)

    if not self_ensemble:
        return run(lq)
    total = None
    for k in range(8):
        output = undo_dihedral(run(dihedral(lq, k)), k)
        total = output.to(accumulation_dtype(output.dtype)) if total is None else total + output
    return total / 8
