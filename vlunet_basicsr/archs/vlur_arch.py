"""VL-UR's scene restorer (Liu et al., ICME 2025): a text-guided U-Net of CTransAgg blocks (paper Eq. 4-7).

A 3x3 convolution to ``dim`` channels, a 4-level encoder (dim, 2dim, 4dim, 8dim; down to H/8) and a 4-level
decoder (8dim back to dim) of CTransAgg blocks, a 3x3 convolution back to the image, plus the input (Eq. 5).
CTransAgg is PGCA (prompt guidance cross-attention, Eq. 6) then the gated FFN (Eq. 7), each pre-normed and
residual. What the paper leaves open is chosen after OneRestore (Guo et al., ECCV 2024), which VL-UR builds on;
every choice and its reason is in docs/vlur.md.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.restormer_blocks import GDFN, LAYER_NORM_TYPES, LayerNorm, OverlapPatchEmbed, conv_part
from vlunet_basicsr.archs.restormer_ops import NORM_EPS, channel_attention, set_fused_backward, split_channel_attention
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems
from vlunet_basicsr.utils.padding import crop_to, pad_to_multiple


def area_pool_matrix(size, out_size, dtype=None, device=None):
    """The (out_size, size) matrix whose rows average the bins of ``F.adaptive_avg_pool1d``.

    Row ``i`` averages the inputs ``floor(i * size / out_size)`` to ``ceil((i + 1) * size / out_size) - 1``; a
    ``size`` smaller than ``out_size`` repeats inputs. ``P_h @ x @ P_w.T`` equals ``adaptive_avg_pool2d(x,
    (out_h, out_w))`` and, being two matrix products, is deterministic in both directions on every device.
    """
    rows = torch.arange(out_size, device=device)
    start = rows * size // out_size
    end = ((rows + 1) * size + out_size - 1) // out_size
    columns = torch.arange(size, device=device)
    inside = (columns >= start[:, None]) & (columns < end[:, None])
    return (inside / (end - start)[:, None]).to(dtype or torch.get_default_dtype())


def area_pool(x, out_size):
    """``adaptive_avg_pool2d(x, (out_size, out_size))`` for (..., H, W) as two matrix products."""
    pool_h = area_pool_matrix(x.shape[-2], out_size, x.dtype, x.device)
    pool_w = area_pool_matrix(x.shape[-1], out_size, x.dtype, x.device)
    return pool_h @ (x @ pool_w.t())


class PGCA(nn.Module):
    """Prompt guidance cross-attention: ``V_I (softmax(K_I Q_I / alpha) + softmax(K_I Q_T / alpha))`` (Eq. 6).

    The image term is Restormer's transposed attention (``channel_attention``): per head, each channel of
    ``Q_I`` attends over the channels of ``K_I``, with cosine similarity over the pixels. The text query
    ``Q_T = linear(text_embedding)`` is a vector of ``text_query_size ** 2`` entries; it meets the keys
    pooled to ``text_query_size`` x ``text_query_size`` (`area_pool`), so any image size works, and it is
    shared by every channel and head (OneRestore's cross-attention, whose keys are resized to its query's
    18 x 18): per head it gives one softmax over the key channels, whose mixture of the value channels every
    channel of the head receives. The two maps add before multiplying ``V_I``, which is computed as the sum of
    the two products. ``alpha`` is stored as its reciprocal, ``temperature`` (Restormer's and OneRestore's
    parametrisation, which never divides by a learned value), one per head and shared by both terms.

    Args:
        dim (int): Channels; divisible by ``num_heads``.
        num_heads (int): Heads.
        text_dim (int): Length of the text embedding. Default: 512.
        text_query_size (int): Side of the pooled key grid; ``Q_T`` has ``text_query_size ** 2`` entries.
            Default: 16.
        bias (bool): Bias in the convolutions and in the text projection. Default: False.

    Attributes:
        fused_backward (bool): Train the image term with the hand-written attention backward (`restormer_ops`).
            Default: True.
    """

    def __init__(self, dim, num_heads, text_dim=512, text_query_size=16, bias=False):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f'PGCA: {dim} channels do not split into {num_heads} heads')
        self.fused_backward = True
        self.num_heads = num_heads
        self.text_query_size = text_query_size
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Conv2d(dim, dim * 3, kernel_size=1, bias=bias)
        self.qkv_dwconv = nn.Conv2d(dim * 3, dim * 3, kernel_size=3, padding=1, groups=dim * 3, bias=bias)
        self.text_query = nn.Linear(text_dim, text_query_size**2, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x, text_embedding):
        """``x`` (B, dim, H, W), layer-normalised; ``text_embedding`` (B, text_dim)."""
        if torch.compiler.is_exporting():  # no channel split in the exported graph (`conv_part`)
            q, k, v = (conv_part(x, self.qkv, self.qkv_dwconv, i, 3) for i in range(3))
            image_term = split_channel_attention(q, k, v, self.num_heads, self.temperature)
        else:
            qkv = self.qkv_dwconv(self.qkv(x))
            image_term = channel_attention(qkv, self.num_heads, self.temperature, fused_backward=self.fused_backward)
            _, k, v = qkv.chunk(3, dim=1)
        weights = self.text_attention(k, text_embedding)  # (B, heads, C/heads)
        v = v.unflatten(1, (self.num_heads, -1))
        text_term = torch.einsum('bnc,bnchw->bnhw', weights, v).unsqueeze(2)  # the same for every channel of a head
        out = (image_term.unflatten(1, (self.num_heads, -1)) + text_term).flatten(1, 2)
        return self.project_out(out)

    def text_attention(self, k, text_embedding):
        """``softmax(K_I Q_T / alpha)`` over the key channels of each head, (B, heads, C/heads).

        Args:
            k (Tensor): Keys (B, C, H, W).
            text_embedding (Tensor): (B, text_dim).
        """
        keys = area_pool(k, self.text_query_size).flatten(2).unflatten(1, (self.num_heads, -1))
        keys = F.normalize(keys, dim=-1, eps=NORM_EPS)  # (B, heads, C/heads, S*S)
        query = F.normalize(self.text_query(text_embedding), dim=-1, eps=NORM_EPS)  # (B, S*S)
        cosine = torch.einsum('bncl,bl->bnc', keys, query.to(keys.dtype))
        return (cosine * self.temperature.view(1, self.num_heads, 1)).softmax(dim=-1)


class CTransAgg(nn.Module):
    """Cross-Transformer aggregation block (Eq. 4): ``x + PGCA(LN(x), t)``, then ``x + FFN(LN(x))``.

    The FFN is Eq. 7, ``conv1x1(GELU(x1) * x2)`` with ``x1, x2 = chunk(dwconv3x3(conv1x1(x)))``, which is
    Restormer's gated-Dconv feed-forward network (`GDFN`).

    Args:
        dim (int): Channels.
        num_heads (int): PGCA heads.
        ffn_expansion_factor (float): FFN hidden width is ``int(dim * ffn_expansion_factor)``.
        bias (bool): Bias in the convolutions.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'.
        text_dim (int): Length of the text embedding.
        text_query_size (int): Side of PGCA's pooled key grid.
    """

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type, text_dim,  # noqa: N803
                 text_query_size):
        super().__init__()
        self.norm1 = LayerNorm(dim, LayerNorm_type)
        self.attn = PGCA(dim, num_heads, text_dim, text_query_size, bias)
        self.norm2 = LayerNorm(dim, LayerNorm_type)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x, text_embedding):
        x = x + self.attn(self.norm1(x), text_embedding)
        return x + self.ffn(self.norm2(x))


class CTransAggStack(nn.Module):
    """``num_blocks`` CTransAgg blocks in sequence (stored as ``blocks.<i>``), all fed the same text embedding."""

    def __init__(self, num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type, text_dim,  # noqa: N803
                 text_query_size):
        super().__init__()
        self.blocks = nn.ModuleList([
            CTransAgg(dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type, text_dim, text_query_size)
            for _ in range(num_blocks)
        ])

    def forward(self, x, text_embedding):
        for block in self.blocks:
            x = block(x, text_embedding)
        return x


class PoolDown(nn.Module):
    """Halve the resolution and double the channels: 3x3 max-pool (stride 2), then a 1x1 conv (OneRestore's)."""

    def __init__(self, dim):
        super().__init__()
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.conv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=False)

    def forward(self, x):
        return self.conv(self.pool(x))


class BilinearUp(nn.Module):
    """Resize bilinearly to the skip's size and halve the channels with a 1x1 conv (OneRestore's)."""

    def __init__(self, dim):
        super().__init__()
        self.conv = nn.Conv2d(dim, dim // 2, kernel_size=1, bias=False)

    def forward(self, x, size):
        return self.conv(F.interpolate(x, size=size, mode='bilinear', align_corners=False))


@ARCH_REGISTRY.register()
class VLURNet(nn.Module):
    """VL-UR's scene restorer, ``net_g(lq, text_embedding)`` (5,166,844 parameters with the defaults).

    Encoder levels 1-4 and decoder levels 4-1 each hold ``num_blocks[level]`` CTransAgg blocks; a decoder
    level takes the up-sampled features of the level below plus the encoder's features of its own level
    (skips add, as in OneRestore). Any input size works: inputs are padded to a multiple of 8
    (`vlunet_basicsr.utils.padding`) and the output is cropped back.

    Args (YAML ``network_g``):
        inp_channels (int): Input channels. Default: 3.
        out_channels (int): Output channels. Default: 3.
        dim (int): Level-1 channels (C). Default: 32.
        num_blocks (list[int]): CTransAgg blocks at levels 1-4, in the encoder and again in the decoder.
            Default: [1, 1, 1, 2].
        heads (list[int]): PGCA heads at levels 1-4. Default: [8, 8, 8, 8].
        ffn_expansion_factor (float): FFN expansion. Default: 2.66.
        bias (bool): Bias in the blocks' convolutions and text projections. Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        text_dim (int): Length of the text embedding. Default: 512.
        text_query_size (int): Side of PGCA's pooled key grid (Q_T has its square entries). Default: 16.
        fused_backward (bool): Train the image attention and the FFN gate with the hand-written backward passes
            of `vlunet_basicsr.archs.restormer_ops`; same forward, gradients equal to float rounding.
            Default: True.
    """

    #: The model layer feeds the text embedding of the degradation type as the second input.
    guidance_input = 'text_features'
    #: One restored image, not one per stage.
    multi_stage_output = False
    # No size rule for the protocol: `forward` pads to a multiple of 8 itself, so the input is padded in one place.

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key; the heads must
        divide every level's channels."""
        problems = problems_of(
            expect('inp_channels', arguments['inp_channels'], 'int', minimum=1),
            expect('out_channels', arguments['out_channels'], 'int', minimum=1),
            expect('dim', arguments['dim'], 'int', minimum=1),
            expect('num_blocks', arguments['num_blocks'], 'list[int]', minimum=1, length=4),
            expect('heads', arguments['heads'], 'list[int]', minimum=1, length=4),
            expect('ffn_expansion_factor', arguments['ffn_expansion_factor'], 'float', minimum=0.1),
            expect('bias', arguments['bias'], 'bool'),
            expect('LayerNorm_type', arguments['LayerNorm_type'], 'str', choices=LAYER_NORM_TYPES),
            expect('text_dim', arguments['text_dim'], 'int', minimum=1),
            expect('text_query_size', arguments['text_query_size'], 'int', minimum=1),
            expect('fused_backward', arguments['fused_backward'], 'bool'))
        if problems:
            return problems
        dim, heads = arguments['dim'], arguments['heads']
        return [f'heads: {dim * 2**level} channels do not split into {num_heads} heads (dim={dim}, heads={heads})'
                for level, num_heads in enumerate(heads) if dim * 2**level % num_heads][:1]

    def __init__(self,
                 inp_channels=3,
                 out_channels=3,
                 dim=32,
                 num_blocks=(1, 1, 1, 2),
                 heads=(8, 8, 8, 8),
                 ffn_expansion_factor=2.66,
                 bias=False,
                 LayerNorm_type='WithBias',  # noqa: N803  (Restormer's keyword)
                 text_dim=512,
                 text_query_size=16,
                 fused_backward=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        widths = [dim * 2**level for level in range(4)]
        self.text_dim = text_dim

        def stack(level):
            return CTransAggStack(num_blocks[level], widths[level], heads[level], ffn_expansion_factor, bias,
                                  LayerNorm_type, text_dim, text_query_size)

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim, bias=bias)
        self.encoder = nn.ModuleList([stack(level) for level in range(4)])
        self.down = nn.ModuleList([PoolDown(widths[level]) for level in range(3)])
        self.decoder = nn.ModuleList([stack(level) for level in range(4)])
        self.up = nn.ModuleList([BilinearUp(widths[level + 1]) for level in range(3)])
        self.output = nn.Conv2d(dim, out_channels, kernel_size=3, padding=1, bias=bias)
        set_fused_backward(self, fused_backward)

    def forward(self, x, text_embedding):
        """Restore ``x`` (B, C, H, W) guided by ``text_embedding`` (B, text_dim); returns (B, C, H, W)."""
        if text_embedding is None or tuple(text_embedding.shape) != (x.shape[0], self.text_dim):
            got = None if text_embedding is None else tuple(text_embedding.shape)
            raise ValueError(f'VLURNet needs text_embedding of shape ({x.shape[0]}, {self.text_dim}), got {got}')
        image, size = pad_to_multiple(x)
        features = self.patch_embed(image)
        skips = []
        for level in range(4):
            features = self.encoder[level](features, text_embedding)
            skips.append(features)
            if level < 3:
                features = self.down[level](features)
        for level in range(3, -1, -1):
            if level < 3:
                features = self.up[level](features, skips[level].shape[-2:]) + skips[level]
            features = self.decoder[level](features, text_embedding)
        return crop_to(self.output(features) + image, size).contiguous()
