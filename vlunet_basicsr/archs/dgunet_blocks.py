"""Building blocks of DGUNet / DGUNet+ (Mou, Wang, Zhang, CVPR 2022), named as in the published code.

Attribute names follow the published modules so that published checkpoints load with ``strict=True``: the
gradient-step residual block (``body.0/1/2``), the channel-attention block (``CA``, ``body``), the U-Net encoder
and decoder (``body.<level>``, ``skip_conv``), the supervised attention module (``conv1``, ``conv2``) and the
subspace-projection merge (``conv_block``, ``subnet``).
"""
import contextlib

import torch
from torch import nn
from torch.nn import functional as F

#: The U-Net has four levels: three down-samplings by 2 (hence inputs with sides divisible by 8).
UNET_LEVELS = 4
#: Hidden channels of the gradient-step residual blocks, fixed in the published code.
GRADIENT_HIDDEN = 64
#: Basis vectors of the merge block's subspace projection, fixed in the published code.
SUBSPACE_DIM = 16


def conv(in_channels, out_channels, kernel_size, bias=False, stride=1):
    """A 'same'-padded convolution (odd ``kernel_size``)."""
    return nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias)


class ResBlock(nn.Module):
    """A gradient-step operator (the paper's F_A or F_A^T): ``x + conv(act(conv(x)))``, 3x3 convs with bias.

    Args:
        channels (int): Image channels.
        act (nn.Module): The activation (a PReLU shared by every gradient-step block of one network).
        kernel_size (int): Convolution size. Default: 3.
    """

    def __init__(self, channels, act, kernel_size=3):
        super().__init__()
        self.body = nn.Sequential(conv(channels, GRADIENT_HIDDEN, kernel_size, bias=True), act,
                                  conv(GRADIENT_HIDDEN, channels, kernel_size, bias=True))

    def forward(self, x):
        return self.body(x) + x


def gradient_step(phi, phit, step, x, y):
    """The flexible gradient-descent step ``x - step * phit(phi(x) - y)``."""
    return x - step * phit(phi(x) - y)


class CALayer(nn.Module):
    """Channel attention: ``x * sigmoid(conv(relu(conv(mean_hw(x)))))`` (1x1 convs, ``channel // reduction``)."""

    def __init__(self, channel, reduction, bias):
        super().__init__()
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1, bias=bias), nn.ReLU(inplace=True),
            nn.Conv2d(channel // reduction, channel, 1, bias=bias), nn.Sigmoid())

    def forward(self, x):
        return x * self.conv_du(x.mean(dim=(2, 3), keepdim=True))


class CAB(nn.Module):
    """Channel-attention block: ``x + CA(conv(act(conv(x))))``.

    Args:
        n_feat (int): Channels.
        kernel_size (int): Convolution size.
        reduction (int): Channel reduction of the attention.
        bias (bool): Bias in the convolutions.
        act (nn.Module): The activation (a PReLU shared within one network constructor, as published).
    """

    def __init__(self, n_feat, kernel_size, reduction, bias, act):
        super().__init__()
        self.CA = CALayer(n_feat, reduction, bias)  # noqa: N815  (the published key)
        self.body = nn.Sequential(conv(n_feat, n_feat, kernel_size, bias=bias), act,
                                  conv(n_feat, n_feat, kernel_size, bias=bias))

    def forward(self, x):
        return self.CA(self.body(x)) + x


def shallow_features(in_c, n_feat, kernel_size, reduction, bias, act):
    """A stage's shallow feature extractor: conv to ``n_feat`` then a CAB (keys ``0.*`` and ``1.*``)."""
    return nn.Sequential(conv(in_c, n_feat, kernel_size, bias=bias), CAB(n_feat, kernel_size, reduction, bias, act))


class SAM(nn.Module):
    """Supervised attention between stages (1x1 convs): features ``conv1(f) + f``, image ``conv2(f) + image``."""

    def __init__(self, n_feat, image_channels, bias):
        super().__init__()
        self.conv1 = conv(n_feat, n_feat, 1, bias=bias)
        self.conv2 = conv(n_feat, image_channels, 1, bias=bias)

    def forward(self, feats, image):
        return self.conv1(feats) + feats, self.conv2(feats) + image


def _at_least_float32(dtype):
    """float32 for half-precision types, else ``dtype`` itself (float64 stays float64)."""
    return torch.promote_types(dtype, torch.float32)


def _float32_region(tensor):
    """Autocast off on the tensor's device (the Gram inverse needs float32), or nothing to do."""
    device_type = tensor.device.type
    if device_type in ('cpu', 'cuda') and torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _inverse(matrix):
    """``torch.linalg.inv``; while torch.export traces (ONNX export), ``inv_ex`` (the same inverse without the
    singularity check, whose side effect has no ONNX translation)."""
    if torch.compiler.is_exporting():
        return torch.linalg.inv_ex(matrix).inverse
    return torch.linalg.inv(matrix)


class MergeBlock(nn.Module):
    """Merge a stage's shallow features ``x`` with the previous stage's SAM features by a subspace projection.

    ``subnet`` maps ``[x, bridge]`` to 16 basis maps, each L1-normalised over the pixels (V, N x 16); ``bridge``
    (N x C) is replaced by its projection ``V (V^T V)^-1 V^T bridge`` and the output is
    ``x + conv_block([x, projection])``. The projection runs in float32 at least (also under autocast) and in the
    pixels-by-channels layout, which channels_last features already have.

    Args:
        n_feat (int): Channels of ``x`` and ``bridge``.
        kernel_size (int): Convolution size. Default: 3.
    """

    def __init__(self, n_feat, kernel_size=3):
        super().__init__()
        self.conv_block = conv(n_feat * 2, n_feat, kernel_size, bias=True)
        self.subnet = conv(n_feat * 2, SUBSPACE_DIM, kernel_size, bias=True)

    def forward(self, x, bridge):
        b, c, h, w = bridge.shape
        basis = self.subnet(torch.cat([x, bridge], 1))
        with _float32_region(basis):
            v = basis.to(_at_least_float32(basis.dtype)).permute(0, 2, 3, 1).reshape(b, h * w, SUBSPACE_DIM)
            v = v / (1e-6 + v.abs().sum(dim=1, keepdim=True))
            v_t = v.transpose(1, 2)
            feats = bridge.to(v.dtype).permute(0, 2, 3, 1).reshape(b, h * w, c)
            projection = _inverse(v_t @ v) @ v_t
            projected = (v @ (projection @ feats)).reshape(b, h, w, c).permute(0, 3, 1, 2).to(bridge.dtype)
        return self.conv_block(torch.cat([x, projected], 1)) + x


def _half_norm_affine(x, weight, bias, half, eps):
    """Per-channel ``scale``, ``shift`` (B, C, 1, 1) of the half-instance norm, and the first half's ``mean``
    and ``rstd`` (B, half, 1, 1); statistics in float32 at least."""
    b, c = x.shape[:2]
    variance, mean = torch.var_mean(x[:, :half].to(_at_least_float32(x.dtype)), dim=(2, 3), unbiased=False,
                                    keepdim=True)
    rstd = torch.rsqrt(variance + eps)
    scale = rstd * weight.view(1, half, 1, 1)
    shift = bias.view(1, half, 1, 1) - mean * scale
    scale = torch.cat([scale, scale.new_ones(b, c - half, 1, 1)], 1)
    shift = torch.cat([shift, shift.new_zeros(b, c - half, 1, 1)], 1)
    return scale, shift, mean, rstd


def half_instance_norm(x, half, norm):
    """``norm`` (an affine InstanceNorm2d) on the first ``half`` channels of ``x``, the others unchanged.

    Computed as one per-channel affine map ``x * scale + shift`` with the statistics in float32 at least: scale
    1 and shift 0 leave the other channels exactly as they are, and the output keeps ``x``'s memory layout, so
    channels_last features are neither split, copied to NCHW for the norm, nor concatenated again (the published
    ``chunk``, ``InstanceNorm2d``, ``cat``). The same map as InstanceNorm2d's CPU kernel, to float rounding.
    """
    scale, shift, _, _ = _half_norm_affine(x, norm.weight, norm.bias, half, norm.eps)
    return torch.addcmul(shift, x, scale)


class _HalfInstanceNormLeakyReLU(torch.autograd.Function):
    """``leaky_relu(half_instance_norm(x))`` with a hand-written backward.

    Autograd's backward of the composition makes a full-size tensor per step (the slice's zero-filled gradient,
    the products with ``x`` and ``scale``, the accumulation); here the input gradient is one affine map of the
    activation's gradient and ``x`` per channel, ``g * A + x * C + D`` (A 1, C and D 0 beyond ``half``, which
    pass those channels' gradient through unchanged), the instance-norm backward written out:
    ``rstd * w * (g - mean(g) - xhat * mean(g * xhat))`` on the normalised channels.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, half, eps, slope):
        scale, shift, mean, rstd = _half_norm_affine(x, weight, bias, half, eps)
        out = F.leaky_relu_(torch.addcmul(shift, x, scale), slope)
        ctx.save_for_backward(x, out, weight, mean, rstd)
        ctx.half, ctx.slope = half, slope
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad):
        x, out, weight, mean, rstd = ctx.saved_tensors
        half = ctx.half
        grad = torch.ops.aten.leaky_relu_backward(grad, out, ctx.slope, True)
        g_half = grad[:, :half].to(mean.dtype)
        sum_g = g_half.sum(dim=(2, 3), keepdim=True)
        sum_g_centred = (g_half * (x[:, :half].to(mean.dtype) - mean)).sum(dim=(2, 3), keepdim=True)
        pixels = x.shape[2] * x.shape[3]
        a = rstd * weight.view(1, half, 1, 1)
        c = -a * (sum_g_centred * rstd / pixels) * rstd  # - rstd * w * mean(g * xhat) * rstd
        d = -a * (sum_g / pixels) - c * mean
        b, channels = x.shape[:2]
        a = torch.cat([a, a.new_ones(b, channels - half, 1, 1)], 1)
        c = torch.cat([c, c.new_zeros(b, channels - half, 1, 1)], 1)
        d = torch.cat([d, d.new_zeros(b, channels - half, 1, 1)], 1)
        grad_x = torch.addcmul(torch.addcmul(d, grad, a), x, c).to(x.dtype)
        grad_weight = (sum_g_centred * rstd).sum(dim=(0, 2, 3)).to(weight.dtype)
        grad_bias = sum_g.sum(dim=(0, 2, 3)).to(weight.dtype)
        return grad_x, grad_weight, grad_bias, None, None, None


def half_instance_norm_leaky_relu(x, half, norm, slope):
    """``leaky_relu(half_instance_norm(x, half, norm), slope)``; with the hand-written backward when a gradient
    is needed (`_HalfInstanceNormLeakyReLU`), else the plain operations (inference, export)."""
    if torch.is_grad_enabled() and (x.requires_grad or norm.weight.requires_grad or norm.bias.requires_grad):
        return _HalfInstanceNormLeakyReLU.apply(x, norm.weight, norm.bias, half, norm.eps, slope)
    return F.leaky_relu(half_instance_norm(x, half, norm), slope)


class UNetConvBlock(nn.Module):
    """One U-Net level: two 3x3 convs (leaky ReLU), a 1x1 identity conv added, optional down-sampling.

    Args:
        in_size (int): Input channels.
        out_size (int): Output channels.
        downsample (bool): Also return the output down-sampled by a 4x4 stride-2 conv (no bias).
        relu_slope (float): Leaky ReLU slope.
        use_csff (bool): Build the cross-stage feature fusion (only on down-sampling levels).
        use_hin (bool): Half-instance-norm (affine) on the first ``out_size // 2`` channels of the first conv.
    """

    def __init__(self, in_size, out_size, downsample, relu_slope, use_csff=False, use_hin=False):
        super().__init__()
        self.relu_slope = relu_slope
        self.identity = nn.Conv2d(in_size, out_size, 1)
        self.conv_1 = nn.Conv2d(in_size, out_size, 3, padding=1)
        self.conv_2 = nn.Conv2d(out_size, out_size, 3, padding=1)
        self.use_csff = downsample and use_csff
        if self.use_csff:
            self.csff_enc = nn.Conv2d(out_size, out_size, 3, padding=1)
            self.csff_dec = nn.Conv2d(in_size, out_size, 3, padding=1)
            self.phi = nn.Conv2d(out_size, out_size, 3, padding=1)
            self.gamma = nn.Conv2d(out_size, out_size, 3, padding=1)
        self.half = out_size // 2 if use_hin else 0
        if use_hin:
            self.norm = nn.InstanceNorm2d(self.half, affine=True)
        self.downsample = nn.Conv2d(out_size, out_size, 4, stride=2, padding=1, bias=False) if downsample else None

    def forward(self, x, enc=None, dec=None):
        out = self.conv_1(x)
        if self.half:
            out = half_instance_norm_leaky_relu(out, self.half, self.norm, self.relu_slope)
        else:
            out = F.leaky_relu(out, self.relu_slope)
        out = F.leaky_relu(self.conv_2(out), self.relu_slope) + self.identity(x)
        if enc is not None:
            if not self.use_csff:
                raise ValueError('this level has no cross-stage fusion (csff) to take encoder/decoder features')
            skip = F.leaky_relu(self.csff_enc(enc) + self.csff_dec(dec), 0.1)
            out = out * torch.sigmoid(self.phi(skip)) + self.gamma(skip) + out
        if self.downsample is None:
            return out
        return self.downsample(out), out


class UNetUpBlock(nn.Module):
    """Decoder level: 2x2 transposed conv up, concatenated with the (conv'd) skip, then a plain UNetConvBlock."""

    def __init__(self, in_size, out_size, relu_slope):
        super().__init__()
        self.up = nn.ConvTranspose2d(in_size, out_size, kernel_size=2, stride=2)
        self.conv_block = UNetConvBlock(out_size * 2, out_size, False, relu_slope)

    def forward(self, x, bridge):
        return self.conv_block(torch.cat([self.up(x), bridge], 1))


class Encoder(nn.Module):
    """U-Net encoder, level ``i`` with ``n_feat + (i + 1) * scale_unetfeats`` channels (the last level keeps its
    input's ``n_feat + 3 * scale_unetfeats``).

    ``forward(x, encoder_outs=None, decoder_outs=None)`` returns the full-resolution outputs of the three
    down-sampling levels (the skips) and the bottom features; with the previous stage's encoder skips and decoder
    outputs (``use_csff``) each down-sampling level fuses them in.
    """

    def __init__(self, n_feat, scale_unetfeats, use_csff):
        super().__init__()
        widths = [n_feat + scale_unetfeats * i for i in range(UNET_LEVELS)]
        self.body = nn.ModuleList(
            UNetConvBlock(widths[i], widths[i + 1], True, 0.2, use_csff=use_csff, use_hin=True)
            for i in range(UNET_LEVELS - 1))
        self.body.append(UNetConvBlock(widths[-1], widths[-1], False, 0.2, use_csff=use_csff, use_hin=True))

    def forward(self, x, encoder_outs=None, decoder_outs=None):
        skips = []
        for i, level in enumerate(self.body[:-1]):
            if encoder_outs is None:
                x, skip = level(x)
            else:
                x, skip = level(x, encoder_outs[i], decoder_outs[-i - 1])
            skips.append(skip)
        return skips, self.body[-1](x)


class Decoder(nn.Module):
    """U-Net decoder: three up-sampling levels, each skip passed through a 3x3 conv first.

    ``forward(x, skips)`` returns the outputs of every level, coarsest first (the last one is full resolution
    with ``n_feat`` channels).
    """

    def __init__(self, n_feat, scale_unetfeats):
        super().__init__()
        widths = [n_feat + scale_unetfeats * i for i in range(UNET_LEVELS)]
        self.body = nn.ModuleList(UNetUpBlock(widths[-i - 1], widths[-i - 2], 0.2) for i in range(UNET_LEVELS - 1))
        self.skip_conv = nn.ModuleList(
            nn.Conv2d(widths[-i - 1], widths[-i - 2], 3, padding=1) for i in range(UNET_LEVELS - 1))

    def forward(self, x, skips):
        outs = []
        for i, (up, skip_conv) in enumerate(zip(self.body, self.skip_conv)):
            x = up(x, skip_conv(skips[-i - 1]))
            outs.append(x)
        return outs
