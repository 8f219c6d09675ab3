"""MoCE-IR: a mixture of complexity experts for all-in-one image restoration (Zamfir et al., CVPR 2025).

A Restormer-style U-Net whose decoder blocks route each image to one of four experts of growing complexity (rank
C/8 .. C, FFT tile 4 .. 32), chosen from the features and a frequency embedding of the latent. Module names follow
the published network (github eduardzamfir/MoCE-IR, ``src/net/moce_ir.py``), so its Lightning checkpoints,
converted by ``scripts/convert_official_checkpoint.py``, load with ``strict=True`` (docs/moceir.md).

Where this port differs from the published code, on purpose:
- a batch is routed per sample in evaluation too (the published eval path passes every sample through the experts
  chosen by all samples of the batch, which is right only at batch size 1, the size its numbers come from);
- ``routing_noise=False`` turns off the routing noise that the published eval forward draws, for deterministic
  restoration of your own images. With the default (on) the draws are the published ones, in the same order.
"""
import torch
from torch import nn
from torch.distributions import Normal
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.restormer_blocks import (GDFN, LAYER_NORM_TYPES, MDTA, CrossMDTA, Downsample, LayerNorm,
                                                   OverlapPatchEmbed, Upsample, refuse_unpadded)
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: The published routing noise: ``randn * (1 / num_experts)``, in training and in evaluation.
NOISE_SCALE = 1.0
#: Each expert's FFT tile side: 4, 8, 16, 32 for experts 0-3.
FIRST_TILE = 4


class EncoderBlock(nn.Module):
    """Pre-norm MDTA + GDFN with residuals (``norms``, ``mixer``, ``ffn``: the published names)."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, layer_norm_type):
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm(dim, layer_norm_type), LayerNorm(dim, layer_norm_type)])
        self.mixer = MDTA(dim, num_heads, bias)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)

    def forward(self, x):
        x = x + self.mixer(self.norms[0](x))
        return x + self.ffn(self.norms[1](x))


class ResidualGroup(nn.Module):
    """Blocks in sequence, stored as ``layers.<i>``; decoder blocks also get the frequency embedding."""

    def __init__(self, blocks):
        super().__init__()
        self.layers = nn.ModuleList(blocks)

    def forward(self, x, *context):
        for layer in self.layers:
            x = layer(x, *context)
        return x


class FFTAttention(nn.Module):
    """The experts' operator: per ``tile`` x ``tile`` tile, the circular convolution of q and k (``irfft2(rfft2(q)
    * rfft2(k))``, no conjugate, as published), layer-normed over channels, times v, then a 1x1 projection.

    Args:
        dim (int): Channels (the expert's rank).
        tile (int): Tile side; q and k are zero-padded at the bottom and right to multiples of it.
    """

    def __init__(self, dim, tile):
        super().__init__()
        self.tile = tile
        self.q = nn.Conv2d(dim, dim, kernel_size=1, bias=False)
        self.q_dwconv = nn.Conv2d(dim, dim, kernel_size=3, padding=1, groups=dim)
        self.kv = nn.Conv2d(dim, dim * 2, kernel_size=1, bias=False)
        self.kv_dwconv = nn.Conv2d(dim * 2, dim * 2, kernel_size=7, padding=3, groups=dim * 2)
        self.norm = LayerNorm(dim, 'WithBias')
        self.proj_out = nn.Conv2d(dim, dim, kernel_size=1)

    def _tiles(self, x):
        b, c, h, w = x.shape
        p = self.tile
        x = F.pad(x, (0, (p - w % p) % p, 0, (p - h % p) % p))
        return x.reshape(b, c, x.shape[2] // p, p, x.shape[3] // p, p).permute(0, 1, 2, 4, 3, 5)

    def forward(self, x):
        b, c, h, w = x.shape
        q = self.q_dwconv(self.q(x))
        k, v = self.kv_dwconv(self.kv(x)).chunk(2, dim=1)
        p = self.tile
        product = torch.fft.rfft2(self._tiles(q).float()) * torch.fft.rfft2(self._tiles(k).float())
        tiles = torch.fft.irfft2(product, s=(p, p))
        out = tiles.permute(0, 1, 2, 4, 3, 5).reshape(b, c, tiles.shape[2] * p, tiles.shape[3] * p)[:, :, :h, :w]
        return self.proj_out(self.norm(out) * v)


class ModExpert(nn.Module):
    """One expert: ``proj[2](FFTAttention(proj[0](x)) * silu(proj[1](shared))) + x`` at rank ``rank``."""

    def __init__(self, dim, rank, tile):
        super().__init__()
        self.proj = nn.ModuleList([nn.Conv2d(dim, rank, 1, bias=False), nn.Conv2d(dim, rank, 1, bias=False),
                                   nn.Conv2d(rank, dim, 1, bias=False)])
        self.body = FFTAttention(rank, tile)

    def forward(self, x, shared):
        return self.proj[2](self.body(self.proj[0](x)) * F.silu(self.proj[1](shared))) + x


class Routing(nn.Module):
    """The router's logits (B, E): ``gate(x) + freq_gate(freq_emb)`` (no biases).

    ``complexity`` (each expert's parameter count over the largest) is the published buffer: kept in the state
    dict, read by the balance loss only with ``with_complexity``.
    """

    def __init__(self, dim, freq_dim, complexity):
        super().__init__()
        num_experts = len(complexity)
        self.gate = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(dim, num_experts, bias=False))
        self.freq_gate = nn.Linear(freq_dim, num_experts, bias=False)
        self.register_buffer('complexity', complexity / complexity.max())

    def forward(self, x, freq_emb):
        return self.gate(x) + self.freq_gate(freq_emb)


def _cv_squared(values):
    """The squared coefficient of variation (torch's unbiased std), as the published balance terms take it."""
    return (values.std() / (values.mean() + 1e-8))**2


class AdapterLayer(nn.Module):
    """The mixture: each image goes through the expert its (noisy) router picks, scaled by the expert's probability.

    Args:
        dim (int): Channels.
        freq_dim (int): Channels of the frequency embedding.
        num_experts (int): Experts; expert ``e`` has rank ``dim / 2^(E-1-e)`` and FFT tile ``4 * 2^e``.
        topk (int): Experts per image.
        routing_noise (bool): Draw the routing noise in evaluation too, as published.
        with_complexity (bool): Weigh the importance term by the experts' complexity.
    """

    def __init__(self, dim, freq_dim, num_experts, topk, routing_noise, with_complexity):
        super().__init__()
        self.topk = topk
        self.routing_noise = routing_noise
        self.with_complexity = with_complexity
        self.noise_std = NOISE_SCALE / num_experts
        ranks = [dim // 2**i for i in range(num_experts)][::-1]
        self.experts = nn.ModuleList(
            nn.Sequential(ModExpert(dim, rank, FIRST_TILE * 2**e)) for e, rank in enumerate(ranks))
        self.proj_out = nn.Conv2d(dim, dim, 1, bias=False)
        sizes = torch.tensor([float(sum(p.numel() for p in expert.parameters())) for expert in self.experts])
        self.routing = Routing(dim, freq_dim, sizes)
        #: The last forward's routing: logits (before the noise), noise, chosen experts and their probabilities.
        self.last_routing = None
        #: The last training forward's balance term (importance and load, half each), or None.
        self.balance = None

    def forward(self, x, freq_emb, shared):
        logits = self.routing(x, freq_emb)
        noise = torch.randn_like(logits) * self.noise_std if self.training or self.routing_noise else \
            torch.zeros_like(logits)
        noisy = logits + noise
        values, indices = torch.topk(noisy.softmax(dim=-1), self.topk, dim=-1)
        self.last_routing = {'logits': logits, 'noise': noise, 'top_k_indices': indices, 'top_k_values': values}
        self.balance = self._balance(logits, noisy) if self.training else None
        out = torch.zeros_like(x)
        for e, expert in enumerate(self.experts):  # each image through its own experts (the published training path)
            rows, slot = (indices == e).nonzero(as_tuple=True)
            if len(rows):
                gate = values[rows, slot].to(x.dtype)[:, None, None, None]
                out = out.index_add(0, rows, gate * expert[0](x[rows], shared[rows]))
        return self.proj_out(out)

    def _balance(self, logits, noisy):
        """The published auxiliary loss: importance CV^2 (clean softmax) and load CV^2 (probability of winning
        under the noise), half each."""
        importance = logits.softmax(dim=-1).sum(dim=0)
        if self.with_complexity:
            importance = importance * self.routing.complexity
        kth = torch.gather(noisy, 1, torch.topk(noisy, self.topk, dim=-1).indices[:, -1:])
        winning = 1 - Normal(0.0, 1.0).cdf((kth - logits) / self.noise_std)
        return 0.5 * _cv_squared(importance) + 0.5 * _cv_squared(winning.mean(dim=0))


class DecoderBlock(nn.Module):
    """The decoder block: a shared MDTA path, the expert path, their cross-attention, then GDFN."""

    def __init__(self, dim, num_heads, ffn_expansion_factor, bias, layer_norm_type, adapter):
        super().__init__()
        self.norms = nn.ModuleList([LayerNorm(dim, layer_norm_type), LayerNorm(dim, layer_norm_type)])
        self.proj = nn.ModuleList([nn.Conv2d(dim, dim, 1), nn.Conv2d(dim, dim, 1)])
        self.shared = MDTA(dim, num_heads, bias)
        self.mixer = CrossMDTA(dim, num_heads, bias, kv_kernel_size=7)
        self.ffn = GDFN(dim, ffn_expansion_factor, bias)
        self.adapter = adapter

    def forward(self, x, freq_emb):
        normed = self.norms[0](x)
        shared = self.shared(self.proj[0](normed))
        adapted = self.adapter(self.proj[1](normed), freq_emb, shared)
        x = self.mixer(adapted, shared) + x
        return x + self.ffn(self.norms[1](x))


class HighPassConv2d(nn.Module):
    """A depthwise 3x3 convolution initialised to the Laplacian (trained: the published freeze does nothing)."""

    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False)
        laplacian = torch.full((3, 3), -1.0)
        laplacian[1, 1] = 8.0
        with torch.no_grad():
            self.conv.weight.copy_(laplacian.expand(channels, 1, 3, 3))

    def forward(self, x):
        return self.conv(x)


class FrequencyEmbedding(nn.Module):
    """``mlp(mean over H, W of gelu(laplacian(x)))``: the latent's high frequencies, one vector per image."""

    def __init__(self, dim):
        super().__init__()
        self.high_conv = nn.Sequential(HighPassConv2d(dim), nn.GELU())
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))

    def forward(self, x):
        return self.mlp(self.high_conv(x).mean(dim=(-2, -1)))


@ARCH_REGISTRY.register()
class MoCEIR(nn.Module):
    """MoCE-IR; the defaults are the published ``--model MoCE_IR`` (25,353,796 parameters); ``dim=32`` is MoCE-IR-S.

    Encoder, latent and refinement blocks always have biases (as published); the decoder's follow ``bias``.
    Level 1 of the decoder and the refinement work at ``dim`` channels. The output is ``output(refined) + input``.

    Args:
        inp_channels (int): Input channels. Default: 3.
        out_channels (int): Output channels. Default: 3.
        dim (int): Level-1 channels, a multiple of 8 (the smallest expert has rank dim/8). Default: 48.
        num_blocks (list[int]): Encoder blocks at levels 1-3 and the latent's. Default: [4, 6, 6, 8].
        num_dec_blocks (list[int]): Decoder blocks at levels 1-3 (level 3 runs first). Default: [2, 4, 4].
        heads (list[int]): Attention heads at levels 1-4. Default: [1, 2, 4, 8].
        num_refinement_blocks (int): Refinement blocks. Default: 4.
        ffn_expansion_factor (float): GDFN expansion. Default: 2.
        bias (bool): Bias in the decoder's attention, GDFN and fusion and in the output convolution.
            Default: False.
        LayerNorm_type (str): 'WithBias' or 'BiasFree'. Default: 'WithBias'.
        num_experts (int): Experts per decoder block. Default: 4.
        topk (int): Experts per image. Default: 1.
        routing_noise (bool): Add the published routing noise in evaluation too (its results are then random, and
            reproducible after ``torch.manual_seed``); false: route by the clean logits, deterministically.
            Training always draws it. Default: True.
        balance_loss_weight (float): Weight of the balance loss (importance and load CV^2, averaged over the
            decoder blocks) that training adds to the pixel loss. Default: 0.01.
        with_complexity (bool): Weigh the importance term by the experts' complexity. Default: False.

    Arch protocol (`vlunet_basicsr.models.network_inputs`): ``net(lq)``, one output image; sides multiples of 8;
    its own training loss (`training_losses`).
    """

    guidance_input = None
    multi_stage_output = False
    #: Three 2x down-samplings.
    size_multiple = 8
    export_unsupported = ('each image runs the expert its router picks (torch.topk indices choose the sub-network, '
                          'control flow on tensor values), which torch.export cannot trace; run it with the torch '
                          'backend')

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key: ``dim`` a
        multiple of 2^(num_experts-1) (the smallest expert's rank), ``topk`` at most ``num_experts``, and the heads
        divide every level's channels."""
        a = arguments
        problems = problems_of(
            expect('inp_channels', a['inp_channels'], 'int', minimum=1),
            expect('out_channels', a['out_channels'], 'int', minimum=1),
            expect('num_blocks', a['num_blocks'], 'list[int]', minimum=1, length=4),
            expect('num_dec_blocks', a['num_dec_blocks'], 'list[int]', minimum=1, length=3),
            expect('heads', a['heads'], 'list[int]', minimum=1, length=4),
            expect('num_refinement_blocks', a['num_refinement_blocks'], 'int', minimum=1),
            expect('ffn_expansion_factor', a['ffn_expansion_factor'], 'float', minimum=0.1),
            expect('bias', a['bias'], 'bool'),
            expect('LayerNorm_type', a['LayerNorm_type'], 'str', choices=LAYER_NORM_TYPES),
            expect('num_experts', a['num_experts'], 'int', minimum=1),
            expect('routing_noise', a['routing_noise'], 'bool'),
            expect('balance_loss_weight', a['balance_loss_weight'], 'float', minimum=0),
            expect('with_complexity', a['with_complexity'], 'bool'))
        if problems:
            return problems
        problems = problems_of(
            expect('dim', a['dim'], 'int', minimum=2**(a['num_experts'] - 1), multiple=2**(a['num_experts'] - 1)),
            expect('topk', a['topk'], 'int', minimum=1, maximum=a['num_experts']))
        return problems or [f"heads: {list(a['heads'])} do not divide the {a['dim'] * 2**level} channels of level "
                            f'{level + 1}' for level, num_heads in enumerate(a['heads'])
                            if (a['dim'] * 2**level) % num_heads][:1]

    def __init__(self, inp_channels=3, out_channels=3, dim=48, num_blocks=(4, 6, 6, 8), num_dec_blocks=(2, 4, 4),
                 heads=(1, 2, 4, 8), num_refinement_blocks=4, ffn_expansion_factor=2, bias=False,
                 LayerNorm_type='WithBias', num_experts=4, topk=1, routing_noise=True,  # noqa: N803
                 balance_loss_weight=0.01, with_complexity=False):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.balance_loss_weight = balance_loss_weight
        dims = [dim * 2**i for i in range(4)]

        def encoder(width, count, num_heads):
            return ResidualGroup(EncoderBlock(width, num_heads, ffn_expansion_factor, True, LayerNorm_type)
                                 for _ in range(count))

        def decoder(width, count, num_heads):
            return ResidualGroup(
                DecoderBlock(width, num_heads, ffn_expansion_factor, bias, LayerNorm_type,
                             AdapterLayer(width, dims[-1], num_experts, topk, routing_noise, with_complexity))
                for _ in range(count))

        self.patch_embed = OverlapPatchEmbed(inp_channels, dim)
        self.freq_embed = FrequencyEmbedding(dims[-1])
        self.enc = nn.ModuleList(nn.ModuleList([encoder(dims[i], num_blocks[i], heads[i]), Downsample(dims[i])])
                                 for i in range(3))
        self.latent = encoder(dims[3], num_blocks[3], heads[3])
        self.dec = nn.ModuleList(
            nn.ModuleList([Upsample(dims[i + 1]), nn.Conv2d(dims[i + 1], dims[i], 1, bias=bias),
                           decoder(dims[i], num_dec_blocks[i], heads[i])]) for i in (2, 1, 0))
        self.refinement = encoder(dim, num_refinement_blocks, heads[0])
        self.output = nn.Conv2d(dim, out_channels, kernel_size=3, padding=1, bias=bias)

    def forward(self, lq):
        """Restore ``lq`` (B, C, H, W), H and W multiples of `size_multiple` (the callers pad)."""
        refuse_unpadded(type(self).__name__, lq, self.size_multiple)
        feats = self.patch_embed(lq)
        skips = []
        for block, down in self.enc:
            feats = block(feats)
            skips.append(feats)
            feats = down(feats)
        feats = self.latent(feats)
        freq_emb = self.freq_embed(feats)
        for up, fusion, block in self.dec:
            feats = block(fusion(torch.cat([up(feats), skips.pop()], 1)), freq_emb)
        return self.output(self.refinement(feats)) + lq

    def adapters(self):
        """The decoder's adapters in call order (level 3's first)."""
        return [layer.adapter for _, _, block in self.dec for layer in block.layers]

    def training_losses(self):
        """The arch's own loss terms of the last training forward: ``{'l_balance': weight * mean balance}``."""
        terms = [adapter.balance for adapter in self.adapters() if adapter.balance is not None]
        if not terms or not self.balance_loss_weight:
            return {}
        return {'l_balance': self.balance_loss_weight * torch.stack(terms).mean()}

