"""Restoring one batch the way validation, testing and inference all do: optional tiles and x8 self-ensemble."""
import torch

from vlunet_basicsr.utils.tiling import tiled_restore


def dihedral(x, k):
    """The k-th of the 8 flips/rotations (k in 0..7) of an NCHW tensor."""
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))


def undo_dihedral(x, k):
    """Inverse of `dihedral`."""
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def restore(net, lq, vector=None, tile=None, tile_overlap=32, self_ensemble=False):
    """``net(lq, vector)`` at any size (the net pads to a multiple of 8 itself), tiled when ``tile`` is set
    (the vector comes from the whole image), averaged over the 8 flips/rotations with ``self_ensemble``."""

    def run(image):
        if tile:
            return tiled_restore(lambda patch: net(patch, vector), image, tile, tile_overlap)
        return net(image, vector)

    if not self_ensemble:
        return run(lq)
    return torch.stack([undo_dihedral(run(dihedral(lq, k)), k) for k in range(8)]).mean(dim=0)
