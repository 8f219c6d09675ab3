"""The one padding rule: pad the bottom/right edges up to a multiple of the network's down-sampling factor."""
from torch.nn import functional as F

#: VLU-Net down-samples three times by 2, so feature maps need sides divisible by 8.
SIZE_MULTIPLE = 8


def pad_to_multiple(x, multiple=SIZE_MULTIPLE):
    """Pad an NCHW tensor on the bottom and right so H and W are multiples of ``multiple``.

    Reflection is used where the image is large enough (it is for any side longer than the padding,
    i.e. > 7 px for 8); tinier sides fall back to edge replication.

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original (H, W), for `crop_to`.
    """
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h == 0 and pad_w == 0:
        return x, (h, w)
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode), (h, w)


def crop_to(x, size):
    """Undo `pad_to_multiple`: keep the top-left ``size`` = (H, W)."""
    return x[..., :size[0], :size[1]]
