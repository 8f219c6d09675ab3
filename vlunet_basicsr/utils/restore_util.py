"""Restoring one batch the way validation, testing and inference all do: optional tiles and x8 self-ensemble."""
import torch

from vlunet_basicsr.utils.padding import SizeRule
from vlunet_basicsr.utils.tiling import accumulation_dtype, tiled_restore


def dihedral(x, k):
    """The k-th of the 8 flips/rotations (k in 0..7) of an NCHW tensor."""
    return torch.rot90(x.flip(-1) if k >= 4 else x, k % 4, dims=(-2, -1))


def undo_dihedral(x, k):
    """Inverse of `dihedral`."""
    x = torch.rot90(x, -(k % 4), dims=(-2, -1))
    return x.flip(-1) if k >= 4 else x


def padded(run, rule):
    """``run`` (image -> image) on inputs padded (bottom/right, `SizeRule.pad`) by ``rule`` (a `SizeRule`, or a
    multiple) and outputs cropped back (an up-scaling network's by its factor); ``run`` itself when every size
    fits."""
    rule = SizeRule.of(rule)
    if rule.multiple < 1:
        raise ValueError(f'size multiple must be at least 1, got {rule.multiple}')
    if rule.trivial:
        return run

    def run_padded(image):
        image, size = rule.pad(image)
        return rule.crop(run(image), image, size)

    return run_padded


def restore_image(run, lq, tile=None, tile_overlap=32, self_ensemble=False, size_rule=1, progress=None):
    """``run(lq)`` for a one-argument network call ``run`` (image -> restored image of the same size).

    Every call of ``run`` (every tile's too) gets an input padded by ``size_rule`` (a `SizeRule` or a multiple,
    see `padded`); with ``tile`` the image is restored tile by tile with blended seams (`tiled_restore`); with
    ``self_ensemble`` the outputs of the 8 flips/rotations are averaged (in float32 at least,
    `accumulation_dtype`); ``progress(done, total)`` is called after each tile.
    """
    run = padded(run, size_rule)

    def once(image):
        return tiled_restore(run, image, tile, tile_overlap, progress) if tile else run(image)

    if not self_ensemble:
        return once(lq)
    total = None
    for k in range(8):
        output = undo_dihedral(once(dihedral(lq, k)), k)
        total = output.to(accumulation_dtype(output.dtype)) if total is None else total + output
    return total / 8

