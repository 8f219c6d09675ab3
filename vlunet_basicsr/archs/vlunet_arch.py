"""VLU-Net: vision-language gradient-descent-driven deep unfolding network (CVPR 2025, arXiv 2503.16930).

Eight unfolding stages (encoder levels 1-3, latent, decoder levels 3-1, refinement), each one D-GDM
gradient step followed by Restormer transformer blocks. Parameter names and wiring follow the released
network, so converted release checkpoints load with ``strict=True`` and give the release's outputs.
"""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.restormer_blocks import (MDTA, Downsample, OverlapPatchEmbed, TransformerBlock, conv_part,
                                                   TransformerStack, Upsample, restormer_argument_problems)
from vlunet_basicsr.archs.restormer_ops import channel_attention, set_fused_backward, split_channel_attention
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems
from vlunet_basicsr.utils.padding import crop_to, pad_to_multiple

#: Heads of the D-GDM's two attention operators, fixed in the release.
GDM_HEADS = 2


def key_database_shape(de_dim, dim, stage, key_size=96):
    """Shape of a stage's degradation key database: (1, de_dim, (dim // 10) * stage, S, S), S = key_size // stage."""
    return (1, de_dim, (dim // 10) * stage, key_size // stage, key_size // stage)


class KeyCrossAttention(nn.Module):
    """The D-GDM's ``phi``: transposed cross-attention, queries and values from features, keys from the key map.

    Args:
        dim (int): Feature channels.
        key_channels (int): Channels of the key map.
        num_heads (int): Heads.
        bias (bool): Bias in the convolutions.

    Attributes:
        fused_backward (bool): Train with the hand-written attention backward (`restormer_ops`). Default: True.
    """

    def __init__(self, dim, key_channels, num_heads, bias):
        super().__init__()
        self.fused_backward = True
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=bias)
        self.qv_dwconv = nn.Conv2d(dim * 2, dim * 2, kernel_size=3, padding=1, groups=dim * 2, bias=bias)
        self.k = nn.Conv2d(key_channels, dim, kernel_size=1, bias=bias)
        self.k_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim, bias=bias)
        self.project_out = nn.Conv2d(dim, dim, kernel_size=1, bias=bias)

    def forward(self, x, key_map):
        k = self.k_dwconv(self.k(key_map))
        if torch.compiler.is_exporting():  # no channel split in the exported graph (`conv_part`)
            q, v = (conv_part(x, self.qv, self.qv_dwconv, i, 2) for i in (0, 1))
            return self.project_out(split_channel_attention(q, k, v, self.num_heads, self.temperature))
        qv = self.qv_dwconv(self.qv(x))
        return self.project_out(channel_attention(qv, self.num_heads, self.temperature, key=k,
                                                  fused_backward=self.fused_backward))


class DGDM(nn.Module):
    """Degradation-guided gradient descent module: ``x <- x - r * phit(phi(x, keys) - y)``.

    The keys are a learnable database of ``de_dim`` maps (``prompt_param``) mixed with weights
    ``softmax(linear(v))`` from the degradation vector ``v``, then resized bilinearly to the features' size.
    Without a vector (the paper's "w/o CLIP" ablation, which the release cannot run) the mixture is
    uniform: every key weighs ``1 / de_dim`` and ``linear`` is unused.

    Args:
        de_dim (int): Keys in the database.
        dim (int): Feature channels at this stage.
        stage (int): Stage level (1-4); sets the key channels and spatial size.
        degradation_dim (int): Length of the degradation vector.
        key_size (int): Spatial size of the level-1 keys (``key_size // stage`` at other levels).
        bias (bool): Bias in the attention convolutions.
    """

    def __init__(self, de_dim, dim, stage, degradation_dim=512, key_size=96, bias=False):
        super().__init__()
        shape = key_database_shape(de_dim, dim, stage, key_size)
        self.de_dim = de_dim
        self.phi = KeyCrossAttention(dim, shape[2], GDM_HEADS, bias)
        self.phit = MDTA(dim, GDM_HEADS, bias)
        self.r = nn.Parameter(torch.ones(1))
        self.linear = nn.Linear(degradation_dim, de_dim)
        self.prompt_param = nn.Parameter(torch.rand(shape))

    def mixture_weights(self, degradation_vector, batch):
        """Softmax weights over the keys, (B, de_dim); uniform when ``degradation_vector`` is None."""
        if degradation_vector is None:
            return self.prompt_param.new_full((batch, self.de_dim), 1.0 / self.de_dim)
        return F.softmax(self.linear(degradation_vector), dim=1)

    def forward(self, x, y, degradation_vector, trace=None):
        weights = self.mixture_weights(degradation_vector, x.shape[0])
        # Weighted sum over the de_dim axis without repeating the database over the batch.
        keys = torch.einsum('bk,kchw->bchw', weights, self.prompt_param[0])
        keys = F.interpolate(keys, size=x.shape[-2:], mode='bilinear', align_corners=False)
        if x.is_contiguous(memory_format=torch.channels_last):
            keys = keys.contiguous(memory_format=torch.channels_last)
        residual = self.phi(x, keys) - y
        if trace is not None:
            trace.append({'mixture_weights': weights.detach(), 'residual': residual.detach()})
        return x - self.r * self.phit(residual)


class UnfoldingStage(nn.Module):
    """One unfolding stage: a D-GDM step (``gradient_descent``) then transformer blocks (``denoiser``).

    Returns the updated features and the degraded-input features ``y`` unchanged.
    """

    def __init__(self, de_dim, stage, num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type,
                 degradation_dim, key_size):  # noqa: N803
        super().__init__()
        self.gradient_descent = DGDM(de_dim, dim, stage, degradation_dim, key_size, bias)
        self.denoiser = TransformerStack(num_blocks, dim, num_heads, ffn_expansion_factor, bias, LayerNorm_type)

    def forward(self, x, y, degradation_vector, trace=None):
        return self.denoiser(self.gradient_descent(x, y, degradation_vector, trace)), y


@ARCH_REGISTRY.register()
class VLUNet(nn.Module):
    """VLU-Net, with the released network's defaults (35,353,028 parameters at ``de_dim=7``).

    Any input size works: inputs are padded to a multiple of 8 (`vlunet_basicsr.utils.padding`) and the
    output is cropped back. ``forward(lq)`` without a vector runs the "w/o CLIP" ablation (uniform key
    mixture), so the arch also drops into BasicSR's plain ``SRModel``.

    Args (YAML ``network_g``):
        inp_channels (int): Input channels. Default: 3.
        out_channels (int): Output channels. Default: 3.
        dim (int): Level-1 channels (at least 10, and even). Default: 48.
        num_blocks (list[int]): Transformer blocks at levels 1-4 (decoder levels mirror 1-3). Default: [4, 6, 6, 8].
        num_refinement_blocks (int): Blocks in the refinement stage. Default: 4.
        heads (list[int]): MDTA heads at levels 1-4. Default: [1, 2, 4, 8].
        ffn_expansion_factor (float): GDFN expansion. Default: 2.66.
        bias (bool): Bias in convolutions. Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        de_dim (int): Keys in each degradation key database. Default: 7.
        degradation_dim (int): Length of the degradation (adapted CLIP) vector. Default: 512.
        key_size (int): Spatial size of the level-1 key database. Default: 96.
        channels_last (bool): Compute on channels_last (NHWC) features, which oneDNN's convolutions run
            2-4x faster on CPU; outputs agree with NCHW to float rounding. The parameters and the returned
            tensor stay NCHW either way. Default: True.
        fused_backward (bool): Train the attention and GDFN gate with hand-written backward passes that skip
            autograd's chunk concatenations and layout copies (`vlunet_basicsr.archs.restormer_ops`); same
            forward, gradients equal to float rounding. Default: True.

    Arch protocol (`vlunet_basicsr.models.network_inputs`): ``net(lq, vector)`` with the guidance encoder's
    image features; one output image; any size (it pads to a multiple of 8 itself, so it declares no size rule and
    the input is padded in one place); explains itself (`forward_with_trace`); loads from its weights alone
    (`options_from_weights`).
    """

    guidance_input = 'image_features'
    multi_stage_output = False

    @classmethod
    def options_from_weights(cls, state):
        """The keyword arguments of a VLU-Net state dict (from its shapes); None for another arch's weights."""
        from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError
        from vlunet_basicsr.archs.vlunet_weights import infer_network_options
        try:
            return infer_network_options(state)
        except CheckpointFormatError:
            return None

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key. Key channels
        are (channels // 10) * stage, and the D-GDM splits them into 2 heads: ``dim`` is at least 10 and even."""
        return restormer_argument_problems(arguments, 10, GDM_HEADS) + problems_of(
            expect('de_dim', arguments['de_dim'], 'int', minimum=1),
            expect('degradation_dim', arguments['degradation_dim'], 'int', minimum=1),
            expect('key_size', arguments['key_size'], 'int', minimum=8),
            expect('channels_last', arguments['channels_last'], 'bool'),
            expect('fused_backward', arguments['fused_backward'], 'bool'))

    def __init__(self,
                 inp_channels=3,
                 out_channels=3,
                 dim=48,
                 num_blocks=(4, 6, 6, 8),
                 num_refinement_blocks=4,
                 heads=(1, 2, 4, 8),
                 ffn_expansion_factor=2.66,
                 bias=False,
                 LayerNorm_type='WithBias',  # noqa: N803  (the release's keyword)
                 de_dim=7,
                 degradation_dim=512,
                 key_size=96,
                 channels_last=True,
                 fused_backward=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.degradation_dim = degradation_dim
        self.channels_last = channels_last

        def stage(level, width, blocks, num_heads):
            return UnfoldingStage(de_dim, level, blocks, width, num_heads, ffn_expansion_factor, bias, LayerNorm_type,
                                  degradation_dim, key_size)

        d1, d2, d3, d4 = dim, dim * 2, dim * 4, dim * 8
        self.patch_embed = OverlapPatchEmbed(inp_channels, d1)
        self.patch_embed_i = OverlapPatchEmbed(inp_channels, d1)
        self.encoder_level1 = stage(1, d1, num_blocks[0], heads[0])
        self.down1_2 = Downsample(d1)
        # Present in the release's checkpoints but never used: the release down-samples the degraded-input
        # path from level 1 with down1_2 (frozen here so it neither trains nor trips DDP).
        self.down1_2_i = Downsample(d1).requires_grad_(False)
        self.encoder_level2 = stage(2, d2, num_blocks[1], heads[1])
        self.down2_3 = Downsample(d2)
        self.down2_3_i = Downsample(d2)
        self.encoder_level3 = stage(3, d3, num_blocks[2], heads[2])
        self.down3_4 = Downsample(d3)
        self.down3_4_i = Downsample(d3)
        self.latent = stage(4, d4, num_blocks[3], heads[3])

        self.up4_3 = Upsample(d4)
        self.up4_3_i = Upsample(d4)
        self.reduce_chan_level3 = nn.Conv2d(d4, d3, kernel_size=1, bias=bias)
        self.reduce_chan_level3_img = nn.Conv2d(d4, d3, kernel_size=1, bias=bias)
        self.decoder_level3 = stage(3, d3, num_blocks[2], heads[2])
        self.up3_2 = Upsample(d3)
        self.up3_2_i = Upsample(d3)
        self.reduce_chan_level2 = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        self.reduce_chan_level2_img = nn.Conv2d(d3, d2, kernel_size=1, bias=bias)
        self.decoder_level2 = stage(2, d2, num_blocks[1], heads[1])
        self.up2_1 = Upsample(d2)
        self.up2_1_i = Upsample(d2)
        # Level 1 of the decoder and the refinement keep 2*dim channels (no reduction, as in Restormer).
        self.decoder_level1 = stage(1, d2, num_blocks[0], heads[0])
        self.refinement = stage(1, d2, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(d2, out_channels, kernel_size=3, padding=1, bias=bias)
        set_fused_backward(self, fused_backward)

    def freeze_guidance_layers(self):
        """Freeze every D-GDM's ``linear`` (vector -> key weights), for the "w/o CLIP" ablation.

        Without a vector the key mixture is uniform and these layers get no gradient; frozen, they are not
        trained and DDP needs no ``find_unused_parameters``. The model calls this when ``network_clip`` is empty.

        Returns:
            VLUNet: self.
        """
        for module in self.modules():
            if isinstance(module, DGDM):
                module.linear.requires_grad_(False)
        return self

    def forward(self, lq, degradation_vector=None):
        """Restore ``lq`` (B, C, H, W) guided by ``degradation_vector`` (B, degradation_dim) or None."""
        return self._restore(lq, degradation_vector, trace=None)

    def forward_with_trace(self, lq, degradation_vector=None):
        """Restore and report, per stage, the key mixture weights and the gradient-step residual.

        Returns:
            tuple[Tensor, list[dict]]: The output, and for each of the 8 stages in order a dict with
            ``stage`` (name), ``mixture_weights`` (B, de_dim) and ``residual`` = phi(x, keys) - y
            (B, C_stage, H_stage, W_stage, at the padded size).
        """
        trace = []
        output = self._restore(lq, degradation_vector, trace)
        for name, record in zip(self.stage_names(), trace):
            record['stage'] = name
        return output, trace

    def compile_regions(self, **compile_args):
        """``torch.compile`` each transformer block and D-GDM in place (regional compilation), the rest eager.

        Blocks of one width and size share their compiled code, so a cold compile takes about half as long as
        compiling the whole network (on CPU, default network, restoring 64x64: first run 50 s against 113 s, then
        equally fast; docs/benchmarks/cpu_infer64_compile_*.json); fusion across region boundaries is lost. Each
        region is compiled for static shapes (``dynamic=False`` unless given), so every new input size compiles
        them again.

        Args:
            **compile_args: torch.compile's keyword arguments (``mode``, ``backend``, ...).

        Returns:
            VLUNet: self.
        """
        compile_args.setdefault('dynamic', False)
        for module in self.modules():
            if isinstance(module, (TransformerBlock, DGDM)):
                module.compile(**compile_args)
        return self

    @staticmethod
    def stage_names():
        return ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent', 'decoder_level3', 'decoder_level2',
                'decoder_level1', 'refinement')

    def _restore(self, lq, v, trace):
        if v is not None and v.shape != (lq.shape[0], self.degradation_dim):
            raise ValueError(f'degradation_vector must have shape ({lq.shape[0]}, {self.degradation_dim}), '
                             f'got {tuple(v.shape)}')
        image, size = pad_to_multiple(lq)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        enc1, y1 = self.encoder_level1(self.patch_embed(image), self.patch_embed_i(image), v, trace)
        enc2, y2 = self.encoder_level2(self.down1_2(enc1), self.down1_2(y1), v, trace)
        enc3, y3 = self.encoder_level3(self.down2_3(enc2), self.down2_3_i(y2), v, trace)
        lat, y4 = self.latent(self.down3_4(enc3), self.down3_4_i(y3), v, trace)

        x = self.reduce_chan_level3(torch.cat([self.up4_3(lat), enc3], 1))
        y = self.reduce_chan_level3_img(torch.cat([self.up4_3_i(y4), y3], 1))
        x, y = self.decoder_level3(x, y, v, trace)
        x = self.reduce_chan_level2(torch.cat([self.up3_2(x), enc2], 1))
        y = self.reduce_chan_level2_img(torch.cat([self.up3_2_i(y), y2], 1))
        x, y = self.decoder_level2(x, y, v, trace)
        x = torch.cat([self.up2_1(x), enc1], 1)
        y = torch.cat([self.up2_1_i(y), y1], 1)
        x, y = self.decoder_level1(x, y, v, trace)
        x, _ = self.refinement(x, y, v, trace)
        return crop_to(self.output(x) + image, size).contiguous()
