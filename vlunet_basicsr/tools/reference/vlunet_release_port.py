"""The released VLU-Net's arithmetic, operation for operation: the reference VLUNet's speed is measured against.

``VLUNetReleasePort`` has VLUNet's modules and parameter names (one state dict loads into both); only the
forward passes that VLUNet computes differently are replaced by the release's sequence of operations:

- layer norm: a (B, H*W, C) copy of the features, mean and variance as separate reductions, then
  ``(x - mean) / sqrt(var + 1e-5) * weight + bias`` as separate element-wise operations;
- D-GDM keys: the key database repeated over the batch, multiplied by the mixture weights and summed, then
  resized bilinearly on every call;
- transposed attention: q and k normalised as full tensors, then the release's order of products and scaling;
- autograd's own backward everywhere (no hand-written backward passes).

It needs a degradation vector (the release has no "w/o CLIP" path). Use VLUNet for work: this is reference code
(the published arithmetic) for ``scripts/benchmark.py --arch VLUNetReleasePort`` and the equivalence tests, and is
not in ARCH_REGISTRY.
"""
import torch
from torch.nn import functional as F

from vlunet_basicsr.archs.restormer_blocks import MDTA, _ChannelNorm
from vlunet_basicsr.archs.vlunet_arch import DGDM, KeyCrossAttention, VLUNet


def _release_attention(q, k, v, num_heads, temperature):
    b, c, h, w = q.shape
    q = F.normalize(q.reshape(b, num_heads, c // num_heads, h * w), dim=-1)
    k = F.normalize(k.reshape(b, num_heads, c // num_heads, h * w), dim=-1)
    v = v.reshape(b, num_heads, c // num_heads, h * w)
    attn = (q @ k.transpose(-2, -1)) * temperature
    attn = attn.softmax(dim=-1)
    return (attn @ v).reshape(b, c, h, w)


class _ReleaseChannelNorm(_ChannelNorm):

    def forward(self, x):
        b, c, h, w = x.shape
        tokens = x.permute(0, 2, 3, 1).reshape(b, h * w, c)  # a copy, as the release's rearrange makes
        variance = tokens.var(-1, keepdim=True, unbiased=False)
        if self.bias is None:
            out = tokens / torch.sqrt(variance + 1e-5) * self.weight
        else:
            mean = tokens.mean(-1, keepdim=True)
            out = (tokens - mean) / torch.sqrt(variance + 1e-5) * self.weight + self.bias
        return out.reshape(b, h, w, c).permute(0, 3, 1, 2)


class _ReleaseMDTA(MDTA):

    def forward(self, x):
        q, k, v = self.qkv_dwconv(self.qkv(x)).chunk(3, dim=1)
        return self.project_out(_release_attention(q, k, v, self.num_heads, self.temperature))


class _ReleaseKeyCrossAttention(KeyCrossAttention):

    def forward(self, x, key_map):
        q, v = self.qv_dwconv(self.qv(x)).chunk(2, dim=1)
        k = self.k_dwconv(self.k(key_map))
        return self.project_out(_release_attention(q, k, v, self.num_heads, self.temperature))


class _ReleaseDGDM(DGDM):

    def forward(self, x, y, degradation_vector, trace=None):
        if degradation_vector is None:
            raise ValueError('VLUNetReleasePort needs a degradation vector (the release has no "w/o CLIP" path)')
        b, _, h, w = x.shape
        weights = F.softmax(self.linear(degradation_vector), dim=1)
        keys = (weights.view(b, self.de_dim, 1, 1, 1) * self.prompt_param.repeat(b, 1, 1, 1, 1)).sum(dim=1)
        keys = F.interpolate(keys, (h, w), mode='bilinear')
        residual = self.phi(x, keys) - y
        if trace is not None:
            trace.append({'mixture_weights': weights.detach(), 'residual': residual.detach()})
        return x - self.r * self.phit(residual)


_RELEASE_FORWARDS = {
    _ChannelNorm: _ReleaseChannelNorm,
    MDTA: _ReleaseMDTA,
    KeyCrossAttention: _ReleaseKeyCrossAttention,
    DGDM: _ReleaseDGDM,
}


class VLUNetReleasePort(VLUNet):
    """VLUNet computed with the released code's operations (a reference for speed and equivalence).

    Args: as :class:`VLUNet`; ``channels_last`` and ``fused_backward`` are always off.
    """

    def __init__(self, **kwargs):
        # NCHW input and autograd's own backward (the GDFN gate then takes restormer_ops' plain path,
        # which is the release's gelu(gate) * value).
        super().__init__(**{**kwargs, 'channels_last': False, 'fused_backward': False})
        for module in self.modules():
            release_class = _RELEASE_FORWARDS.get(type(module))
            if release_class is not None:
                module.__class__ = release_class


#: The release ports of this module (`vlunet_basicsr.tools.reference` collects them by name).
RELEASE_PORTS = (VLUNetReleasePort,)
