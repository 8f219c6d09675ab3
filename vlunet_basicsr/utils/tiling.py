"""Tiled restoration for images too large to restore at once, with blended seams."""
import torch


def accumulation_dtype(dtype):
    """The dtype in which outputs of ``dtype`` are summed (tile blending, self-ensemble): float32 at least, as
    sums in bf16 or fp16 would add a rounding of their own at every term."""
    return torch.promote_types(dtype, torch.float32)


def _starts(length, tile, stride):
    if length <= tile:
        return [0]
    return list(range(0, length - tile, stride)) + [length - tile]


def blend_window(tile_h, tile_w, overlap, device=None):
    """Per-pixel weight of a tile: 1 inside, ramping linearly down over ``overlap`` pixels at each edge."""

    def ramp(n):
        if overlap == 0:
            return torch.ones(n, device=device)
        position = torch.arange(n, dtype=torch.float32, device=device)
        return torch.clamp(torch.minimum(position + 1, n - position) / (overlap + 1), max=1.0)

    return ramp(tile_h)[:, None] * ramp(tile_w)[None, :]


def tile_layout(height, width, tile, overlap, device=None):
    """Tiles covering a (height, width) image: ``[(top, left, weight)]`` and the tile size (th, tw).

    Neighbouring tiles overlap by at least ``overlap`` pixels; each tile's ``weight`` map is its blend window
    divided by the sum of all windows at that pixel, so the weights add up to one at every pixel.
    """
    if tile <= 0 or not 0 <= overlap < tile:
        raise ValueError(f'need tile > 0 and 0 <= tile_overlap < tile, got tile {tile}, overlap {overlap}')
    th, tw = min(tile, height), min(tile, width)
    corners = [(top, left) for top in _starts(height, th, max(1, th - overlap))
               for left in _starts(width, tw, max(1, tw - overlap))]
    window = blend_window(th, tw, overlap, device)
    total = torch.zeros(height, width, device=device)
    for top, left in corners:
        total[top:top + th, left:left + tw] += window
    return [(top, left, window / total[top:top + th, left:left + tw]) for top, left in corners], (th, tw)


def tiled_restore(restore, image, tile, overlap, progress=None):
    """Restore ``image`` (B, C, H, W) tile by tile with ``restore`` and blend the overlaps (see `tile_layout`).

    Only one tile is in memory at a time besides the output. MDTA attends over the whole tile, so the
    result differs from untiled restoration, except when one tile covers the image.

    Args:
        progress (callable | None): Called as ``progress(done, total)`` after each tile (e.g. to move a bar).
    """
    layout, (th, tw) = tile_layout(image.shape[-2], image.shape[-1], tile, overlap, image.device)
    output = None
    for done, (top, left, weight) in enumerate(layout, 1):
        patch = restore(image[..., top:top + th, left:left + tw])
        if output is None:
            output = torch.zeros(*patch.shape[:2], *image.shape[-2:], dtype=accumulation_dtype(patch.dtype),
                                 device=image.device)
        output[..., top:top + th, left:left + tw] += patch * weight
        if progress is not None:
            progress(done, len(layout))
    return output
