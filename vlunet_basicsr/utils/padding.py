"""The one padding rule: pad the bottom/right edges up to a multiple of the network's down-sampling factor."""
from dataclasses import dataclass

import torch
from torch.nn import functional as F

#: VLU-Net down-samples three times by 2, so feature maps need sides divisible by 8.
SIZE_MULTIPLE = 8


def pad_bottom_right(x, pad_h, pad_w):
    """Pad an NCHW tensor by ``pad_h`` rows at the bottom and ``pad_w`` columns at the right.

    Reflection where both pads are shorter than their sides, else edge replication (for tiny images).

    While ``torch.export`` traces (ONNX export), the same values are gathered by index instead, with the mode
    chosen in tensor arithmetic, so one exported graph pads every size as this function does (F.pad's mode is
    fixed at trace time, and the branches on the sizes would pin the traced sizes).
    """
    if torch.compiler.is_exporting():
        return _gather_pad(x, pad_h, pad_w)
    if pad_h == 0 and pad_w == 0:
        return x
    h, w = x.shape[-2:]
    mode = 'reflect' if pad_h < h and pad_w < w else 'replicate'
    return F.pad(x, (0, pad_w, 0, pad_h), mode=mode)


def _gather_pad(x, pad_h, pad_w):
    """`pad_bottom_right` as index gathers, without Python branches on the (symbolic) sizes."""
    h, w = x.shape[-2:]
    zero = torch.zeros((), dtype=torch.int64, device=x.device)
    reflect = (zero + pad_h < h) & (zero + pad_w < w)

    def indices(size, pad):
        position = torch.arange(size + pad, device=x.device)
        inside = position < size
        mirrored = torch.where(inside, position, 2 * (size - 1) - position)
        replicated = torch.where(inside, position, zero + (size - 1))
        return torch.where(reflect, mirrored, replicated)

    return x.index_select(-2, indices(h, pad_h)).index_select(-1, indices(w, pad_w))


def padding_of(size, multiple, min_size=1):
    """How many rows (columns) pad a side ``size`` to the smallest multiple of ``multiple`` that is at least
    ``min_size`` (symbolic sizes too, while exporting)."""
    # The padded side written as multiple * ((size + multiple - 1) // multiple), not size + (-size % multiple): the
    # same integer, but while exporting the symbolic sides below it simplify (8k // 2 = 4k), where the modulo form
    # nests in every shape and slowed torch.export down by a third. Non-negative operands only: ONNX's integer Div
    # truncates where Python's // floors, so -(-size // multiple) would pad wrongly in an exported graph.
    def round_up(n):
        return (n + multiple - 1) // multiple * multiple

    if min_size <= 1:
        return round_up(size) - size
    return torch.sym_max(round_up(size), round_up(min_size)) - size


def pad_to_multiple(x, multiple=SIZE_MULTIPLE, min_size=1):
    """Pad an NCHW tensor on the bottom and right so H and W are multiples of ``multiple`` (and at least
    ``min_size``).

    Reflection is used where the image is large enough (it is for any side longer than the padding,
    i.e. > 7 px for 8); tinier sides fall back to edge replication (`pad_bottom_right`).

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original (H, W), for `crop_to`.
    """
    h, w = x.shape[-2:]
    return pad_bottom_right(x, padding_of(h, multiple, min_size), padding_of(w, multiple, min_size)), (h, w)


@dataclass(frozen=True)
class SizeRule:
    """What a network's input sides must be: multiples of ``multiple``, at least ``min_size`` (the arch
    protocol's ``size_multiple`` and ``min_size``, `vlunet_basicsr.models.network_inputs.size_rule`)."""

    multiple: int = 1
    min_size: int = 1

    @classmethod
    def of(cls, value):
        """A `SizeRule` from a rule or a bare multiple (int)."""
        return value if isinstance(value, SizeRule) else cls(int(value))

    @property
    def trivial(self):
        """Whether every size fits (nothing is ever padded)."""
        return self.multiple == 1 and self.min_size <= 1

    def pad(self, x):
        """`pad_to_multiple` by this rule: (padded tensor, original (H, W))."""
        return pad_to_multiple(x, self.multiple, self.min_size)

    @staticmethod
    def crop(output, padded, size):
        """Undo `pad` on a network's ``output`` for the ``padded`` input of original ``size``: an up-scaling
        network's output is cropped by its factor (output width / input width)."""
        return crop_to(output, size, output.shape[-1] // padded.shape[-1])

    def __str__(self):
        return f"sides a multiple of {self.multiple}" + (f', at least {self.min_size}' if self.min_size > 1 else '')


def crop_to(x, size, scale=1):
    """Undo `pad_to_multiple`: keep the top-left ``size`` = (H, W), times ``scale`` for an up-scaled output."""
    return x[..., :size[0] * scale, :size[1] * scale]
