"""The published DGUNet's arithmetic, operation for operation: the reference DGUNet's speed is measured against.

``DGUNetReleasePort`` and ``DGUNetPlusReleasePort`` have the modules and parameter names of `DGUNet` and
`DGUNetPlus` (one state dict loads into both); each block's forward is replaced by the published code's sequence
of operations, on NCHW features and with autograd's own backward:

- gradient-step residual block: ``body(x).mul(1)`` then ``+= x`` (the published ``res_scale``);
- channel attention: ``AdaptiveAvgPool2d(1)``, then the 1x1 convolutions, ``x * y`` and ``+= x``;
- U-Net level: ``torch.chunk`` into halves, instance norm on the first, ``torch.cat`` back, leaky ReLUs,
  ``+= identity(x)``, and the cross-stage fusion ``out * sigmoid(phi(s)) + gamma(s) + out``;
- subspace projection: the basis as a (B, 16, H*W) view of NCHW maps, the features as a transposed view of the
  NCHW bridge, and the published order of products.

Use `DGUNet` / `DGUNetPlus` for work: these classes are reference code (the published arithmetic) for
``scripts/benchmark.py --compare-release`` and the equivalence tests, and are not in ARCH_REGISTRY.
"""
import torch
from torch.nn import functional as F

from vlunet_basicsr.archs.dgunet_arch import DGUNet, DGUNetPlus
from vlunet_basicsr.archs.dgunet_blocks import CAB, SAM, SUBSPACE_DIM, CALayer, MergeBlock, ResBlock, UNetConvBlock


class _ReleaseResBlock(ResBlock):

    def forward(self, x):
        res = self.body(x).mul(1)
        res += x
        return res


class _ReleaseCALayer(CALayer):

    def forward(self, x):
        return x * self.conv_du(F.adaptive_avg_pool2d(x, 1))


class _ReleaseCAB(CAB):

    def forward(self, x):
        res = self.CA(self.body(x))
        res += x
        return res


class _ReleaseSAM(SAM):

    def forward(self, feats, image):
        x1 = self.conv1(feats)
        img = self.conv2(feats) + image
        return x1 + feats, img


class _ReleaseMergeBlock(MergeBlock):

    def forward(self, x, bridge):
        b, c, h, w = bridge.shape
        basis = self.subnet(torch.cat([x, bridge], 1))
        v_t = basis.view(b, SUBSPACE_DIM, h * w)
        v_t = v_t / (1e-6 + torch.abs(v_t).sum(axis=2, keepdims=True))
        v = v_t.permute(0, 2, 1)
        projection = torch.matmul(torch.inverse(torch.matmul(v_t, v)), v_t)
        features = torch.matmul(projection, bridge.view(b, c, h * w).permute(0, 2, 1))
        bridge = torch.matmul(v, features).permute(0, 2, 1).view(b, c, h, w)
        return self.conv_block(torch.cat([x, bridge], 1)) + x


class _ReleaseUNetConvBlock(UNetConvBlock):

    def forward(self, x, enc=None, dec=None):
        out = self.conv_1(x)
        if self.half:
            first, second = torch.chunk(out, 2, dim=1)
            out = torch.cat([self.norm(first), second], dim=1)
        out = F.leaky_relu(out, self.relu_slope)
        out = F.leaky_relu(self.conv_2(out), self.relu_slope)
        out += self.identity(x)
        if enc is not None and dec is not None:
            skip = F.leaky_relu(self.csff_enc(enc) + self.csff_dec(dec), 0.1, inplace=True)
            out = out * torch.sigmoid(self.phi(skip)) + self.gamma(skip) + out
        if self.downsample is None:
            return out
        return self.downsample(out), out


_RELEASE_FORWARDS = {
    ResBlock: _ReleaseResBlock,
    CALayer: _ReleaseCALayer,
    CAB: _ReleaseCAB,
    SAM: _ReleaseSAM,
    MergeBlock: _ReleaseMergeBlock,
    UNetConvBlock: _ReleaseUNetConvBlock,
}


def _use_release_forwards(net):
    for module in net.modules():
        release_class = _RELEASE_FORWARDS.get(type(module))
        if release_class is not None:
            module.__class__ = release_class


class DGUNetReleasePort(DGUNet):
    """`DGUNet` computed with the published code's operations (a reference for speed and equivalence).

    Args: as `DGUNet`; ``channels_last`` is always off.
    """

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, 'channels_last': False})
        _use_release_forwards(self)


class DGUNetPlusReleasePort(DGUNetPlus):
    """`DGUNetPlus` computed with the published code's operations (a reference for speed and equivalence).

    Args: as `DGUNetPlus`; ``channels_last`` is always off.
    """

    def __init__(self, **kwargs):
        super().__init__(**{**kwargs, 'channels_last': False})
        _use_release_forwards(self)


#: The release ports of this module (`vlunet_basicsr.tools.reference` collects them by name).
RELEASE_PORTS = (DGUNetReleasePort, DGUNetPlusReleasePort)
