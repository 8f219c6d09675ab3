"""Restormer building blocks (Zamir et al., CVPR 2022) shared by VLU-Net.

Module and parameter names follow the released checkpoints (``norm1.body.weight``, ``attn.qkv_dwconv``,
``ffn.project_in``, ``body.0.weight``, ...), so released weights load with ``strict=True``.
"""
import torch
from torch import nn
from torch.nn import functional as F

from vlunet_basicsr.archs.restormer_ops import channel_attention, gated_gelu, split_channel_attention
from vlunet_basicsr.utils.option_values import expect, problems_of


def conv_part(x, pointwise, depthwise, index, parts):
    """Part ``index`` of ``parts`` of ``depthwise(pointwise(x))`` along the channels, computed by those rows of the
    two convolutions' weights only (the same numbers as slicing the whole output).

    Exported graphs use it instead of a channel split: OpenVINO's CPU plugin runs such splits with its reference
    kernel (39% of the default VLUNet graph's time at 256x256, measured with its PERF_COUNT profile).
    """
    rows = slice(index * pointwise.out_channels // parts, (index + 1) * pointwise.out_channels // parts)
    y = F.conv2d(x, pointwise.weight[rows], None if pointwise.bias is None else pointwise.bias[rows])
    return F.conv2d(y, depthwise.weight[rows], None if depthwise.bias is None else depthwise.bias[rows],
                    padding=depthwise.padding, groups=rows.stop - rows.start)


LAYER_NORM_TYPES = ('WithBias', 'BiasFree')


class _ChannelNorm(nn.Module):
    """Layer norm over the channel axis of an NCHW tensor (eps 1e-5, biased variance).

    Args:
        num_channels (int): Number of channels.
        with_bias (bool): 'WithBias' subtracts the mean and adds a bias; 'BiasFree' only rescales.
    """

    def __init__(self, num_channels, with_bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels)) if with_bias else None

    def forward(self, x):
        if torch.compiler.is_exporting():  # reductions over the channels: no transposes in the exported graph
            centred = x - x.mean(dim=1, keepdim=True)
            scale = torch.rsqrt(centred.square().mean(dim=1, keepdim=True) + 1e-5) * self.weight[:, None, None]
            return x * scale if self.bias is None else centred * scale + self.bias[:, None, None]
        if self.bias is not None:
            return F.layer_norm(x.permute(0, 2, 3, 1), self.weight.shape, self.weight, self.bias,
                                1e-5).permute(0, 3, 1, 2)
        variance = x.var(dim=1, keepdim=True, unbiased=False)
        return x * torch.rsqrt(variance + 1e-5) * self.weight[:, None, None]


class LayerNorm(nn.Module):
    """Restormer's per-pixel layer norm; ``LayerNorm_type`` is 'WithBias' (default) or 'BiasFree'."""

    def __init__(self, dim, LayerNorm_type='WithBias'):  # noqa: N803  (the release's keyword)
        super().__init__()
        if LayerNorm_type not in LAYER_NORM_TYPES:  # building blocks are also used without an arch's checks
            raise ValueError(f"LayerNorm_type must be 'WithBias' or 'BiasFree', got {LayerNorm_type!r}")
        self.body = _ChannelNorm(dim, with_bias=LayerNorm_type == 'WithBias')

    def forward(self, x):
        return self.body(x)


class MDTA(nn.Module):
    """Multi-Dconv head transposed self-attention.

    Args:
        dim (int): Channels.
        num_heads (int): Heads.
        bias (bool): Bias in the convolutions.

    Attributes:
        fused_backward (bool): Train with the hand-written attention backward (`restormer_ops`). Default: True.
    """

    def __init__(self, dim, num_heads, bias):
        super().__init__()
        self.fused_backward = True
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x):
        if torch.compiler.is_exporting():
            q, k, v = (conv_part(x, self.qkv, self.qkv_dwconv, i, 3) for i in range(3))
            return self.project_out(split_channel_attention(q, k, v, self.num_heads, self.temperature))
        qkv = self.qkv_dwconv(self.qkv(x))
        return self.project_out(channel_attention(qkv, self.num_heads, self.temperature,
                                                  fused_backward=self.fused_backward))


def refuse_unpadded(arch, lq, multiple):
    """Refuse ``lq`` unless its sides are multiples of ``multiple``: for archs that do not pad themselves but declare
    ``size_multiple``, which the shared model, restore, export and serve pad to."""
    if not torch.compiler.is_compiling() and (lq.shape[-2] % multiple or lq.shape[-1] % multiple):
        raise ValueError(f'{arch} needs height and width multiples of {multiple}, got {tuple(lq.shape[-2:])}: pad '
                         'the input (val.size_multiple, or the arch protocol)')


class CrossMDTA(nn.Module):
    """MDTA's transposed attention with queries from ``first`` and keys and values from ``second`` (AdaIR's
    ``ChannelCrossAttention``, MoCE-IR's ``CrossAttention``: the published module names).

    Args:
        dim (int): Channels.
        num_heads (int): Heads.
        bias (bool): Bias in the convolutions.
        kv_kernel_size (int): The depthwise kernel of the keys and values (the queries' is 3). Default: 3.
    """

    def __init__(self, dim, num_heads, bias, kv_kernel_size=3):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=bias)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, kernel_size=kv_kernel_size, padding=kv_kernel_size // 2,
                                   groups=dim * 2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, first, second):
        k, v = self.kv_dwconv(self.kv(second)).chunk(2, dim=1)
        q = self.q_dwconv(self.q(first))
        return self.project_out(split_channel_attention(q, k, v, self.num_heads, self.temperature))


class GDFN(nn.Module):
    """Gated-Dconv feed-forward network.

    Args:
        dim (int): Channels.
        ffn_expansion_factor (float): Hidden width is ``int(dim * ffn_expansion_factor)``.
        bias (bool): Bias in the convolutions.

    Attributes:
        fused_backward (bool): Train with the hand-written gate backward (`restormer_ops`; used on GPUs and
            for NCHW inputs). Default: True.
    """

    def __init__(self, dim, ffn_expansion_factor, bias):
        super().__init__()
        self.fused_backward = True
        hidden = int(dim * ffn_expansion_factor)
        self.project_in = nn.Conv2d(dim, hidden * 2, kernel_size=1, bias=bias)
        self.dwconv = nn.Conv2d(hidden * 2, hidden * 2, kernel_size=3, padding=1, groups=hidden * 2, bias=bias)
        self.project_out = nn.Conv2d(hidden, dim, kernel_size=1, bias=bias)

    def forward(self, x):
        channels_last = x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last)
        if torch.compiler.is_exporting() or (x.device.type == 'cpu' and channels_last):
            # On CPU, GELU and the product run 3-4x slower on channel slices of a channels_last tensor than on
            # whole tensors (measured), and exported graphs avoid channel splits (`conv_part`): the gate and the
            # value are computed as two tensors from the halves of the same weights, which gives the same numbers.
            gate, value = (conv_part(x, self.project_in, self.dwconv, i, 2) for i in (0, 1))
            return self.project_out(F.gelu(gate) * value)
        return self.project_out(gated_gelu(self.dwconv(self.project_in(x)), self.fused_backward))


class TransformerBlock(nn.Module):
    """Pre-norm MDTA + GDFN block with residuals."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type):  # noqa: N803
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = MDTA(dim, num_heads, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.attn(self.norm1(x))
        return x + self.ffn(self.norm2(x))


def transformer_blocks(num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type):  # noqa: N803
    """``num_blocks`` transformer blocks (`TransformerBlock`) in an ``nn.Sequential`` (stored as ``<i>``)."""
    return nn.Sequential(*[
        TransformerBlock(dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type) for _ in range(num_blocks)
    ])


class TransformerStack(nn.Module):
    """`transformer_blocks` stored as ``blocks.<i>`` (VLU-Net's layout)."""

    def __init__(self, num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type):  # noqa: N803
        super().__init__()
        self.blocks = transformer_blocks(num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type)

    def forward(self, x):
        return self.blocks(x)


class OverlapPatchEmbed(nn.Module):
    """3x3 convolution from image channels to ``embed_dim`` features."""

    def __init__(self, in_c=3, embed_dim=48, bias=False):
        super().__init__()
        self.proj = nn.Conv2d(in_c, embed_dim, kernel_size=3, padding=1, bias=bias)

    def forward(self, x):
        return self.proj(x)


class Downsample(nn.Module):
    """Halve the resolution, double the channels: 3x3 conv to C/2 then pixel-unshuffle by 2."""

    def __init__(self, n_feat):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat // 2, kernel_size=3, padding=1, bias=False), nn.PixelUnshuffle(2))

    def forward(self, x):
        return self.body(x)


class Upsample(nn.Module):
    """Double the resolution, halve the channels: 3x3 conv to 2C then pixel-shuffle by 2."""

    def __init__(self, n_feat):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(n_feat, n_feat * 2, kernel_size=3, padding=1, bias=False), nn.PixelShuffle(2))

    def forward(self, x):
        return self.body(x)


def restormer_argument_problems(arguments, dim_minimum, dim_multiple=None):
    """Problems of the Restormer keyword arguments that the archs built on these blocks share (channels, depth,
    heads, GDFN, bias, layer norm); each arch sets the smallest ``dim`` and the multiple it must be of."""
    return problems_of(
        expect('inp_channels', arguments['inp_channels'], 'int', minimum=1),
        expect('out_channels', arguments['out_channels'], 'int', minimum=1),
        expect('dim', arguments['dim'], 'int', minimum=dim_minimum, multiple=dim_multiple),
        expect('num_blocks', arguments['num_blocks'], 'list[int]', minimum=1, length=4),
        expect('num_refinement_blocks', arguments['num_refinement_blocks'], 'int', minimum=1),
        expect('heads', arguments['heads'], 'list[int]', minimum=1, length=4),
        expect('ffn_expansion_factor', arguments['ffn_expansion_factor'], 'float', minimum=0.1),
        expect('bias', arguments['bias'], 'bool'),
        expect('LayerNorm_type', arguments['LayerNorm_type'], 'str', choices=LAYER_NORM_TYPES),
    )
