"""AdaIR: adaptive all-in-one image restoration via frequency mining and modulation (Cui et al., ICLR 2025).

PromptIR's Restormer U-Net with its prompt blocks replaced by three frequency modules (`FreModule`): each splits the
input image, resized to the features, into a low- and a high-frequency part and lets them modulate the features.
Module names and wiring follow the published network (github c-yn/AdaIR, ``net/model.py``), so its Lightning
checkpoints, converted by ``scripts/convert_official_checkpoint.py``, load with ``strict=True`` and give its
outputs (docs/adair.md). The published quirks that its numbers depend on are kept and named where they happen.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.restormer_blocks import (CrossMDTA, Downsample, OverlapPatchEmbed, Upsample, refuse_unpadded,
                                                   restormer_argument_problems, transformer_blocks)
from vlunet_basicsr.archs.restormer_ops import set_fused_backward
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: The frequency mask's half sizes are ``(side // MASK_UNIT) * threshold``, truncated (the published constant).
MASK_UNIT = 128


class ChannelGate(nn.Module):
    """``sigmoid(mlp(avgpool(x)) + mlp(maxpool(x)))``, one weight per channel (mlp: C -> C/16 -> C, no biases)."""

    def __init__(self, dim):
        super().__init__()
        self.mlp = nn.Sequential(nn.Conv2d(dim, dim // 16, 1, bias=False), nn.ReLU(),
                                 nn.Conv2d(dim // 16, dim, 1, bias=False))

    def forward(self, x):
        return torch.sigmoid(self.mlp(F.adaptive_avg_pool2d(x, 1)) + self.mlp(F.adaptive_max_pool2d(x, 1)))


class SpatialGate(nn.Module):
    """``sigmoid(conv7x7([max over channels, mean over channels]))``, one weight per pixel."""

    def __init__(self):
        super().__init__()
        self.spatial = nn.Conv2d(2, 1, 7, padding=3, bias=False)

    def forward(self, x):
        pooled = torch.cat([x.amax(dim=1, keepdim=True), x.mean(dim=1, keepdim=True)], dim=1)
        return torch.sigmoid(self.spatial(pooled))


class FrequencyRefine(nn.Module):
    """``proj(low * SpatialGate(high) + high * ChannelGate(low))`` (proj: 1x1 with bias)."""

    def __init__(self, dim):
        super().__init__()
        self.SpatialGate = SpatialGate()  # noqa: N815  (the published names, in the checkpoints)
        self.ChannelGate = ChannelGate(dim)  # noqa: N815
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, low, high):
        return self.proj(low * self.SpatialGate(high) + high * self.ChannelGate(low))


class FreModule(nn.Module):
    """The frequency module: ``fre(image, y)`` modulates the features ``y`` (B, C, h, w) by the image's bands.

    Args:
        dim (int): Channels C of the features.
        num_heads (int): Heads of the three cross-attentions.
        bias (bool): Bias in the cross-attentions.
    """

    def __init__(self, dim, num_heads, bias):
        super().__init__()
        self.para1 = nn.Parameter(torch.zeros(dim, 1, 1))
        self.para2 = nn.Parameter(torch.ones(dim, 1, 1))
        # In the published checkpoints but used by no forward: frozen, so that they neither train nor need DDP's
        # find_unused_parameters.
        self.conv = nn.Conv2d(3, dim, 3, padding=1, bias=False).requires_grad_(False)
        self.conv1 = nn.Conv2d(3, dim, 3, padding=1, bias=False)
        self.score_gen = nn.Conv2d(2, 2, 7, padding=3).requires_grad_(False)  # unused, as above
        # Crossed as published: channel_cross_l takes the high band, channel_cross_h the low one.
        self.channel_cross_l = CrossMDTA(dim, num_heads, bias)
        self.channel_cross_h = CrossMDTA(dim, num_heads, bias)
        self.channel_cross_agg = CrossMDTA(dim, num_heads, bias)
        self.frequency_refine = FrequencyRefine(dim)
        self.rate_conv = nn.Sequential(nn.Conv2d(dim, dim // 8, 1, bias=False), nn.GELU(),
                                       nn.Conv2d(dim // 8, 2, 1, bias=False))

    def forward(self, image, y):
        x = F.interpolate(image, size=y.shape[-2:], mode='bilinear', align_corners=False)
        high, low = self.fft(x)
        high = self.channel_cross_l(high, y)
        low = self.channel_cross_h(low, y)
        out = self.channel_cross_agg(y, self.frequency_refine(low, high))
        return out * self.para1 + y * self.para2

    def mask_half_sizes(self, x):
        """The learned thresholds (B, 2) and each sample's mask half sizes ``(h_, w_)``, for features ``x``."""
        h, w = x.shape[-2:]
        threshold = torch.sigmoid(self.rate_conv(F.adaptive_avg_pool2d(x, 1)))[:, :, 0, 0]
        # The published int() truncates, so the mask is empty below 256 pixels and gives rate_conv no gradient.
        sizes = [(int(((h // MASK_UNIT) * t[0]).int()), int(((w // MASK_UNIT) * t[1]).int())) for t in threshold]
        return threshold, sizes

    def fft(self, x):
        """The high and low bands (magnitudes) of ``conv1(x)``, split by the learned centred frequency window.

        The window keeps frequencies -h_ .. h_-1 (and -w_ .. w_-1): not symmetric, as published. With an empty
        window (every side under 256 pixels, so every training crop) the low band is 0 and the high band is
        ``|conv1(x)|``, which is what the FFT round trip gives up to float round-off; it is computed directly then.
        """
        x = self.conv1(x)
        _, sizes = self.mask_half_sizes(x)
        if not any(h_ and w_ for h_, w_ in sizes):
            return x.abs(), torch.zeros_like(x)
        h, w = x.shape[-2:]
        mask = torch.zeros_like(x)
        for i, (h_, w_) in enumerate(sizes):
            mask[i, :, h // 2 - h_:h // 2 + h_, w // 2 - w_:w // 2 + w_] = 1
        shift = (int(h / 2), int(w / 2))
        spectrum = torch.roll(torch.fft.fft2(x, norm='forward', dim=(-2, -1)), shifts=shift, dims=(2, 3))

        def band(window):
            centred = torch.roll(spectrum * window, shifts=(-shift[0], -shift[1]), dims=(2, 3))
            return torch.abs(torch.fft.ifft2(centred, norm='forward', dim=(-2, -1)))

        return band(1 - mask), band(mask)


@ARCH_REGISTRY.register()
class AdaIR(nn.Module):
    """AdaIR, with the published training configuration (``AdaIR(decoder=True)``): 28,784,824 parameters.

    Each frequency module gets the raw input image and uses level 3's heads: ``fre1`` after the latent (8*dim
    channels), ``fre2`` after decoder level 3 (4*dim), ``fre3`` after decoder level 2 (2*dim). Decoder level 1 and
    the refinement work at 2*dim; the output is ``output(refined) + input``. No padding inside: the arch declares
    ``size_multiple`` and the shared model, restore, export and serve pad to it (the published test crops to
    multiples of 16 instead, docs/adair.md).

    Args:
        inp_channels (int): Input channels. Default: 3.
        out_channels (int): Output channels. Default: 3.
        dim (int): Level-1 channels, even; 2*dim must be a multiple of 16 and of heads[2] (the frequency modules'
            gates). Default: 48.
        num_blocks (list[int]): Transformer blocks at levels 1-4 (decoder levels mirror 1-3). Default: [4, 6, 6, 8].
        num_refinement_blocks (int): Blocks in the refinement stage. Default: 4.
        heads (list[int]): MDTA heads at levels 1-4 (the frequency modules use level 3's). Default: [1, 2, 4, 8].
        ffn_expansion_factor (float): GDFN expansion. Default: 2.66.
        bias (bool): Bias in the transformer blocks and the cross-attentions. Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        channels_last (bool): Compute on channels_last (NHWC) features (faster convolutions on CPU); outputs
            agree with NCHW to float rounding. Default: True.
        fused_backward (bool): Hand-written backward passes for the transformer blocks' attention and GDFN gate
            (`vlunet_basicsr.archs.restormer_ops`). Default: True.

    Arch protocol (`vlunet_basicsr.models.network_inputs`): ``net(lq)``, one output image; sides multiples of 8.
    """

    guidance_input = None
    multi_stage_output = False
    #: Three 2x down-samplings.
    size_multiple = 8
    export_unsupported = ('its frequency modules shift the spectrum (torch.fft.fft2 / ifft2, ONNX DFT) with '
                          'torch.roll by half the feature size, which torch\'s ONNX exporter cannot write for '
                          'dynamic sizes (aten::roll with symbolic shifts); run it with the torch backend')

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key: ``dim`` a
        multiple of 8 (the frequency gates divide 2*dim by 16), and the heads divide every level's channels."""
        problems = restormer_argument_problems(arguments, 8, 8) + problems_of(
            expect('channels_last', arguments['channels_last'], 'bool'),
            expect('fused_backward', arguments['fused_backward'], 'bool'))
        if problems:
            return problems
        dim, heads = arguments['dim'], arguments['heads']
        widths = {'level 1': (dim, heads[0]), 'level 2': (2 * dim, heads[1]), 'level 3': (4 * dim, heads[2]),
                  'the latent': (8 * dim, heads[3]), 'the frequency modules (heads[2])': (2 * dim, heads[2])}
        return [f'heads: {list(heads)} do not divide the {channels} channels of {where} at dim {dim}'
                for where, (channels, num_heads) in widths.items() if channels % num_heads][:1]

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',  # noqa: N803
                 channels_last=True, fused_backward=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.channels_last = channels_last
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8

        def blocks(count, width, num_heads):
            return transformer_blocks(count, width, num_heads, ffn_expansion_factor, bias, LayerNorm_type)

        # Registration order is the published state_dict order (fre1..3 right after patch_embed).
        self.patch_embed = OverlapPatchEmbed(inp_channels, d1)
        self.fre1 = FreModule(d4, heads[2], bias)
        self.fre2 = FreModule(d3, heads[2], bias)
        self.fre3 = FreModule(d2, heads[2], bias)
        self.encoder_level1 = blocks(num_blocks[0], d1, heads[0])
        self.down1_2 = Downsample(d1)
        self.encoder_level2 = blocks(num_blocks[1], d2, heads[1])
        self.down2_3 = Downsample(d2)
        self.encoder_level3 = blocks(num_blocks[2], d3, heads[2])
        self.down3_4 = Downsample(d3)
        self.latent = blocks(num_blocks[3], d4, heads[3])
        self.up4_3 = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, kernel_size=1, bias=bias)
        self.decoder_level3 = blocks(num_blocks[2], d3, heads[2])
        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        self.decoder_level2 = blocks(num_blocks[1], d2, heads[1])
        self.up2_1 = Upsample(d2)
        self.decoder_level1 = blocks(num_blocks[0], d2, heads[0])
        self.refinement = blocks(num_refinement_blocks, d2, heads[0])
        self.output = nn.Conv2d(d2, out_channels, kernel_size=3, padding=1, bias=bias)
        set_fused_backward(self, fused_backward)

    def forward(self, lq):
        """Restore ``lq`` (B, C, H, W), H and W multiples of `size_multiple` (the callers pad)."""
        refuse_unpadded(type(self).__name__, lq, self.size_multiple)
        image = lq.contiguous(memory_format=torch.channels_last) if self.channels_last else lq
        enc1 = self.encoder_level1(self.patch_embed(image))
        enc2 = self.encoder_level2(self.down1_2(enc1))
        enc3 = self.encoder_level3(self.down2_3(enc2))
        x = self.fre1(image, self.latent(self.down3_4(enc3)))
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], 1)))
        x = self.fre2(image, x)
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self.fre3(image, x)
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1))
        return (self.output(self.refinement(x)) + image).contiguous()

