"""PromptIR: prompting for all-in-one blind image restoration (Potlapalli et al., NeurIPS 2023, arXiv 2306.13090).

Restormer's encoder-decoder with three prompt blocks on the decoder side: each mixes learned prompt components
with weights predicted from the features, and a transformer block fuses the prompt with the features. The prompts
are learned inside the network, so it takes the image alone. Module names and wiring follow the published
network (github va1shn9v/PromptIR, ``net/model.py``), so its Lightning checkpoints, converted by
``scripts/convert_official_checkpoint.py``, load with ``strict=True`` and give its outputs (docs/promptir.md).
"""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.restormer_blocks import (Downsample, OverlapPatchEmbed, TransformerBlock, Upsample,
                                                   refuse_unpadded, restormer_argument_problems, transformer_blocks)
from vlunet_basicsr.archs.restormer_ops import set_fused_backward
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: The published network's prompt channels are 64, 128 and 320 at dim=48 (decoder levels 1, 2 and the latent):
#: 4/3, 8/3 and 20/3 of dim. Its unused encoder-side layers are sized for 64, 128 and 256 (16/3 of dim).
PROMPT_THIRDS = (4, 8, 20)
ENCODER_PROMPT_THIRDS = (4, 8, 16)


def prompt_channels(dim, thirds=PROMPT_THIRDS):
    """Prompt channels at levels 1-3 for level-1 width ``dim`` (a multiple of 3): (64, 128, 320) at 48."""
    return tuple(dim * t // 3 for t in thirds)


class PromptGenBlock(nn.Module):
    """A prompt from ``prompt_len`` learned components, weighted by ``softmax(linear(mean over H, W of x))``.

    The weighted sum is resized bilinearly to the size of ``x`` and passed through a 3x3 convolution.

    Args:
        prompt_dim (int): Prompt channels.
        prompt_len (int): Learned components.
        prompt_size (int): Spatial size of the components.
        lin_dim (int): Channels of the features the weights are predicted from.
    """

    def __init__(self, prompt_dim, prompt_len, prompt_size, lin_dim):
        super().__init__()
        self.prompt_param = nn.Parameter(torch.rand(1, prompt_len, prompt_dim, prompt_size, prompt_size))
        self.linear_layer = nn.Linear(lin_dim, prompt_len)
        self.conv3x3 = nn.Conv2d(prompt_dim, prompt_dim, kernel_size=3, padding=1, bias=False)

    def forward(self, x):
        weights = F.softmax(self.linear_layer(x.mean(dim=(-2, -1))), dim=1)
        # Products and a sum, as published (no batched product: the MAC count stays the published one).
        prompt = (weights[:, :, None, None, None] * self.prompt_param).sum(dim=1)
        prompt = F.interpolate(prompt, size=x.shape[-2:], mode='bilinear', align_corners=False)
        if x.is_contiguous(memory_format=torch.channels_last):
            prompt = prompt.contiguous(memory_format=torch.channels_last)
        return self.conv3x3(prompt)


@ARCH_REGISTRY.register()
class PromptIR(nn.Module):
    """PromptIR, with the published training configuration (``PromptIR(decoder=True)``): 35,592,263 parameters.

    The published constructor's default ``decoder=False`` is not offered: without the prompt blocks its network
    cannot run (the latent has 8*dim channels where ``up4_3`` expects 4*dim). The prompt channels follow ``dim``
    (the published constants at 48). No padding inside: the arch declares ``size_multiple`` and the shared model,
    restore, export and serve pad to it.

    Args (YAML ``network_g``):
        inp_channels (int): Input channels. Default: 3.
        out_channels (int): Output channels. Default: 3.
        dim (int): Level-1 channels, a multiple of 3 (prompt channels 4/3, 8/3 and 20/3 of it). Default: 48.
        num_blocks (list[int]): Transformer blocks at levels 1-4 (decoder levels mirror 1-3). Default: [4, 6, 6, 8].
        num_refinement_blocks (int): Blocks in the refinement stage. Default: 4.
        heads (list[int]): MDTA heads at levels 1-4 (the prompt blocks use level 3's). Default: [1, 2, 4, 8].
        ffn_expansion_factor (float): GDFN expansion. Default: 2.66.
        bias (bool): Bias in convolutions. Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        prompt_len (int): Learned components of each prompt block. Default: 5.
        prompt_size (int): Spatial size of the level-1 prompt components (levels 2 and 3: 1/2 and 1/4). Default: 64.
        channels_last (bool): Compute on channels_last (NHWC) features (faster convolutions on CPU); outputs
            agree with NCHW to float rounding. Default: True.
        fused_backward (bool): Hand-written backward passes for attention and the GDFN gate
            (`vlunet_basicsr.archs.restormer_ops`). Default: True.

    Arch protocol (`vlunet_basicsr.models.network_inputs`): ``net(lq)``, one output image; sides multiples of 8.
    """

    guidance_input = None
    multi_stage_output = False
    #: Three 2x down-samplings.
    size_multiple = 8

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key. ``dim`` is a
        multiple of 3 (the prompt channels are 4/3, 8/3 and 20/3 of it, 64, 128 and 320 at 48), ``prompt_size`` of 4
        (levels 2 and 3 use 1/2 and 1/4), and the heads divide every level's channels."""
        problems = restormer_argument_problems(arguments, 3, 3) + problems_of(
            expect('prompt_len', arguments['prompt_len'], 'int', minimum=1),
            expect('prompt_size', arguments['prompt_size'], 'int', minimum=4, multiple=4),
            expect('channels_last', arguments['channels_last'], 'bool'),
            expect('fused_backward', arguments['fused_backward'], 'bool'))
        return problems or _head_problems(arguments['dim'], arguments['heads'])

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_refinement_blocks=4,
                 heads=(1, 2, 4, 8), ffn_expansion_factor=2.66, bias=False, LayerNorm_type='WithBias',  # noqa: N803
                 prompt_len=5, prompt_size=64, channels_last=True, fused_backward=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.channels_last = channels_last
        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        p1, p2, p3 = prompt_channels(dim)

        def blocks(count, width, num_heads):
            return transformer_blocks(count, width, num_heads, ffn_expansion_factor, bias, LayerNorm_type)

        def conv1x1(cin, cout):
            return nn.Conv2d(cin, cout, kernel_size=1, bias=bias)

        self.patch_embed = OverlapPatchEmbed(inp_channels, d1)
        self.prompt1 = PromptGenBlock(p1, prompt_len, prompt_size, d2)
        self.prompt2 = PromptGenBlock(p2, prompt_len, prompt_size // 2, d3)
        self.prompt3 = PromptGenBlock(p3, prompt_len, prompt_size // 4, d4)
        # In the published checkpoints but used by no forward (sized for encoder-side prompts that the published
        # network does not have): frozen, so that they neither train nor need DDP's find_unused_parameters.
        e1, e2, e3 = prompt_channels(dim, ENCODER_PROMPT_THIRDS)
        self.chnl_reduce1 = conv1x1(p1, p1).requires_grad_(False)
        self.chnl_reduce2 = conv1x1(p2, p2).requires_grad_(False)
        self.chnl_reduce3 = conv1x1(p3, e3).requires_grad_(False)
        self.reduce_noise_channel_1 = conv1x1(d1 + e1, d1).requires_grad_(False)

        self.encoder_level1 = blocks(num_blocks[0], d1, heads[0])
        self.down1_2 = Downsample(d1)
        self.reduce_noise_channel_2 = conv1x1(d2 + e2, d2).requires_grad_(False)  # unused, as above
        self.encoder_level2 = blocks(num_blocks[1], d2, heads[1])
        self.down2_3 = Downsample(d2)
        self.reduce_noise_channel_3 = conv1x1(d3 + e3, d3).requires_grad_(False)  # unused, as above
        self.encoder_level3 = blocks(num_blocks[2], d3, heads[2])
        self.down3_4 = Downsample(d3)
        self.latent = blocks(num_blocks[3], d4, heads[3])

        # The latent's prompt fusion ends at 4*dim channels, so up4_3 goes from 4*dim to 2*dim (Restormer: 8 -> 4).
        self.up4_3 = Upsample(d3)
        self.reduce_chan_level3 = conv1x1(d2 + d3, d3)
        self.noise_level3 = TransformerBlock(d4 + p3, heads[2], ffn_expansion_factor, bias, LayerNorm_type)
        self.reduce_noise_level3 = conv1x1(d4 + p3, d3)
        self.decoder_level3 = blocks(num_blocks[2], d3, heads[2])

        self.up3_2 = Upsample(d3)
        self.reduce_chan_level2 = conv1x1(d3, d2)
        self.noise_level2 = TransformerBlock(d3 + p2, heads[2], ffn_expansion_factor, bias, LayerNorm_type)
        self.reduce_noise_level2 = conv1x1(d3 + p2, d3)
        self.decoder_level2 = blocks(num_blocks[1], d2, heads[1])

        self.up2_1 = Upsample(d2)
        self.noise_level1 = TransformerBlock(d2 + p1, heads[2], ffn_expansion_factor, bias, LayerNorm_type)
        self.reduce_noise_level1 = conv1x1(d2 + p1, d2)
        # Level 1 of the decoder and the refinement keep 2*dim channels (no reduction, as in Restormer).
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
        x = self.latent(self.down3_4(enc3))
        x = self._with_prompt(x, self.prompt3, self.noise_level3, self.reduce_noise_level3)
        x = self.decoder_level3(self.reduce_chan_level3(torch.cat([self.up4_3(x), enc3], 1)))
        x = self._with_prompt(x, self.prompt2, self.noise_level2, self.reduce_noise_level2)
        x = self.decoder_level2(self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1)))
        x = self._with_prompt(x, self.prompt1, self.noise_level1, self.reduce_noise_level1)
        x = self.decoder_level1(torch.cat([self.up2_1(x), enc1], 1))
        return (self.output(self.refinement(x)) + image).contiguous()

    @staticmethod
    def _with_prompt(x, prompt, fuse, reduce):
        """The prompt interaction: the prompt concatenated to the features, a transformer block, a 1x1 conv."""
        return reduce(fuse(torch.cat([x, prompt(x)], 1)))


def _head_problems(dim, heads):
    """The heads must divide the channels of every level and of the prompt blocks."""
    p1, p2, p3 = prompt_channels(dim)
    widths = {'encoder/decoder level 1 (dim, 2*dim)': (dim, heads[0]), 'level 2 (2*dim)': (2 * dim, heads[1]),
              'level 3 (4*dim)': (4 * dim, heads[2]), 'latent (8*dim)': (8 * dim, heads[3]),
              'prompt blocks (heads[2])': (math.gcd(8 * dim + p3, 4 * dim + p2, 2 * dim + p1), heads[2])}
    return [f'heads: {list(heads)} do not divide the channels of {where} for dim {dim}'
            for where, (channels, num_heads) in widths.items() if channels % num_heads][:1]
