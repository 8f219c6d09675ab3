"""DGUNet and DGUNet+: deep generalized unfolding networks (Mou, Wang, Zhang, CVPR 2022).

Seven unfolding stages of proximal gradient descent. Each stage takes a gradient step on the image,
``v = x - r * phit(phi(x) - y)`` with learned residual blocks ``phi``/``phit`` and step ``r``, then a proximal
step on features (shallow features, a U-Net with cross-stage fusion, a supervised attention module whose image
is the stage output). DGUNet shares one module for stages 2-6; DGUNet+ has seven independent stages.

Parameter names, wiring and weight tying follow the published code, so its checkpoints (converted by
``scripts/convert_official_checkpoint.py``) load with ``strict=True`` and reproduce its outputs. See
``shared/reference/README.md`` for the facts this relies on.
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.dgunet_blocks import (SAM, UNET_LEVELS, Decoder, Encoder, MergeBlock, ResBlock,
                                                gradient_step, shallow_features)
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems
from vlunet_basicsr.utils.padding import crop_to, pad_to_multiple

#: Stages of both networks (and images returned by ``forward(x, return_stages=True)`` at ``depth=5``).
NUM_STAGES = 7
#: The U-Net down-samples three times by 2.
SIZE_MULTIPLE = 2**(UNET_LEVELS - 1)
#: The bottom U-Net level applies instance norm, which needs more than one pixel: sides of at least 16.
MIN_SIZE = 2 * SIZE_MULTIPLE


def pad_for_dgunet(x):
    """Pad an NCHW tensor on the bottom and right to sides that are multiples of 8 and at least 16
    (`vlunet_basicsr.utils.padding.pad_to_multiple`: reflection, the published test scripts' padding, where the image
    is large enough, else edge replication).

    Returns:
        tuple[Tensor, tuple[int, int]]: The padded tensor and the original (H, W), for `crop_to`.
    """
    return pad_to_multiple(x, SIZE_MULTIPLE, MIN_SIZE)


def _argument_problems(arguments):
    """Problems of the keyword arguments both networks take."""
    in_c, out_c = arguments['in_c'], arguments['out_c']
    return problems_of(
        expect('in_c', in_c, 'int', minimum=1),
        expect('out_c', out_c, 'int', minimum=1),
        expect('n_feat', arguments['n_feat'], 'int', minimum=1),
        expect('scale_unetfeats', arguments['scale_unetfeats'], 'int', minimum=0),
        expect('scale_orsnetfeats', arguments['scale_orsnetfeats'], 'int', minimum=0),
        expect('num_cab', arguments['num_cab'], 'int', minimum=0),
        expect('kernel_size', arguments['kernel_size'], 'int', choices=(1, 3, 5, 7)),
        expect('reduction', arguments['reduction'], 'int', minimum=1),
        expect('bias', arguments['bias'], 'bool'),
        expect('channels_last', arguments['channels_last'], 'bool'),
        None if in_c == out_c else (f'out_c: DGUNet adds its correction to the input image, so in_c and out_c must '
                                    f'be equal, got {in_c} and {out_c}'))


class _DGUNetBase(nn.Module):
    """What both networks share: the declarations for the model layer, padding, channels_last and outputs."""

    #: The model layer passes no guidance vector (DGUNet takes the image only).
    guidance_input = None
    #: ``forward(x, return_stages=True)`` returns the stage images (final first); the loss sums over them.
    multi_stage_output = True
    # No size rule for the protocol: the network pads itself (`pad_for_dgunet`), so the input is padded in one place.

    def forward(self, x, return_stages=False):
        """Restore ``x`` (B, C, H, W), any H and W.

        Args:
            x (Tensor): Degraded images.
            return_stages (bool): Return every stage's image, as the published network does. Default: False.

        Returns:
            Tensor | list[Tensor]: The final image, or the stage images in the published order (final first,
            stage 1 last), each (B, C, H, W).
        """
        image, size = pad_for_dgunet(x)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        stages = self._stages(image)
        if not return_stages:
            return crop_to(stages[0], size).contiguous()
        return [crop_to(stage, size).contiguous() for stage in stages]


class DGUNetMiddleStage(nn.Module):
    """DGUNet's stages 2-6 (the published ``Basic_block``, key prefix ``basic.``), one module applied ``depth`` times.

    ``concat12`` is kept only because published checkpoints hold it; no stage uses it (frozen).
    """

    def __init__(self, in_c, n_feat, scale_unetfeats, kernel_size, reduction, bias, gradient_act):
        super().__init__()
        act = nn.PReLU()  # one PReLU for this module's CAB, as published
        self.phi_1 = ResBlock(in_c, gradient_act)
        self.phit_1 = ResBlock(in_c, gradient_act)
        self.shallow_feat2 = shallow_features(in_c, n_feat, kernel_size, reduction, bias, act)
        self.stage2_encoder = Encoder(n_feat, scale_unetfeats, use_csff=True)
        self.stage2_decoder = Decoder(n_feat, scale_unetfeats)
        self.sam23 = SAM(n_feat, in_c, bias)
        self.r1 = nn.Parameter(torch.tensor([0.5]))
        self.concat12 = nn.Conv2d(n_feat * 2, n_feat, kernel_size, padding=kernel_size // 2,
                                  bias=bias).requires_grad_(False)
        self.merge12 = MergeBlock(n_feat)

    def forward(self, y, image, encoder_outs, decoder_outs, sam_feats):
        image = gradient_step(self.phi_1, self.phit_1, self.r1, image, y)
        feats = self.merge12(self.shallow_feat2(image), sam_feats)
        encoder_outs, bottom = self.stage2_encoder(feats, encoder_outs, decoder_outs)
        decoder_outs = self.stage2_decoder(bottom, encoder_outs)
        sam_feats, image = self.sam23(decoder_outs[-1], image)
        return sam_feats, image, encoder_outs, decoder_outs


@ARCH_REGISTRY.register()
class DGUNet(_DGUNetBase):
    """DGUNet: stage 1, one shared middle stage run ``depth`` times, stage 7 (17,331,512 parameters at the defaults).

    Any input size works: the image is padded (reflect) to sides that are multiples of 8 and at least 16, and
    the outputs are cropped back. ``net(x)`` returns the final image; ``net(x, return_stages=True)`` the
    ``depth + 2`` stage images, final first. Weight tying as published, within one network only: every
    gradient-step block uses one PReLU, and the CABs of stages 1 and 7 share one PReLU (the middle stage has its
    own), so ``state_dict()`` has 216 keys for 210 tensors.

    Args (YAML ``network_g``):
        in_c (int): Image channels. Default: 3.
        out_c (int): Output channels; must equal ``in_c`` (the output corrects the input). Default: 3.
        n_feat (int): Channels of the stage features and the U-Net's first level. Default: 80.
        scale_unetfeats (int): Channels added per U-Net level. Default: 48.
        scale_orsnetfeats (int): Extra channels of stage 7's fusion convolution. Default: 32.
        num_cab (int): Accepted for the published signature; unused (as in the published network). Default: 8.
        kernel_size (int): Size of the shallow, CAB and tail convolutions. Default: 3.
        reduction (int): Channel reduction in the channel attention. Default: 4.
        bias (bool): Bias in the shallow, CAB, SAM and tail convolutions. Default: False.
        depth (int): How many times the shared middle stage runs. Default: 5.
        channels_last (bool): Compute on channels_last (NHWC) features, which oneDNN's convolutions run faster on
            CPU; outputs agree with NCHW to float rounding. Parameters and returned tensors stay NCHW.
            Default: True.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return _argument_problems(arguments) + problems_of(expect('depth', arguments['depth'], 'int', minimum=0))

    def __init__(self,
                 in_c=3,
                 out_c=3,
                 n_feat=80,
                 scale_unetfeats=48,
                 scale_orsnetfeats=32,
                 num_cab=8,
                 kernel_size=3,
                 reduction=4,
                 bias=False,
                 depth=5,
                 channels_last=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.depth = depth
        self.channels_last = channels_last
        gradient_act = nn.PReLU()  # every gradient-step block of this network (published: of the process)
        act = nn.PReLU()  # the CABs of stages 1 and 7
        self.basic = DGUNetMiddleStage(in_c, n_feat, scale_unetfeats, kernel_size, reduction, bias, gradient_act)
        self.shallow_feat1 = shallow_features(in_c, n_feat, kernel_size, reduction, bias, act)
        self.shallow_feat7 = shallow_features(in_c, n_feat, kernel_size, reduction, bias, act)
        self.stage1_encoder = Encoder(n_feat, scale_unetfeats, use_csff=False)
        self.stage1_decoder = Decoder(n_feat, scale_unetfeats)
        self.sam12 = SAM(n_feat, in_c, bias)
        self.phi_0 = ResBlock(in_c, gradient_act)
        self.phit_0 = ResBlock(in_c, gradient_act)
        self.phi_6 = ResBlock(in_c, gradient_act)
        self.phit_6 = ResBlock(in_c, gradient_act)
        self.r0 = nn.Parameter(torch.tensor([0.5]))
        self.r6 = nn.Parameter(torch.tensor([0.5]))
        self.concat67 = nn.Conv2d(n_feat * 2, n_feat + scale_orsnetfeats, kernel_size, padding=kernel_size // 2,
                                  bias=bias)
        self.tail = nn.Conv2d(n_feat + scale_orsnetfeats, out_c, kernel_size, padding=kernel_size // 2, bias=bias)

    def _stages(self, y):
        image = gradient_step(self.phi_0, self.phit_0, self.r0, y, y)
        encoder_outs, bottom = self.stage1_encoder(self.shallow_feat1(image))
        decoder_outs = self.stage1_decoder(bottom, encoder_outs)
        sam_feats, image = self.sam12(decoder_outs[-1], image)
        stages = [image]
        for _ in range(self.depth):
            sam_feats, image, encoder_outs, decoder_outs = self.basic(y, image, encoder_outs, decoder_outs, sam_feats)
            stages.append(image)
        image = gradient_step(self.phi_6, self.phit_6, self.r6, image, y)
        feats = self.concat67(torch.cat([self.shallow_feat7(image), sam_feats], 1))
        stages.append(self.tail(feats) + y)
        return stages[::-1]


@ARCH_REGISTRY.register()
class DGUNetPlus(_DGUNetBase):
    """DGUNet+: seven independent stages (69,572,915 parameters at the defaults).

    Same padding and outputs as `DGUNet`. Weight tying as published, within one network only: the 14
    gradient-step blocks share one PReLU and the seven CABs share another, so ``state_dict()`` has 666 keys
    for 647 tensors.

    Args (YAML ``network_g``):
        in_c (int): Image channels. Default: 3.
        out_c (int): Output channels; must equal ``in_c``. Default: 3.
        n_feat (int): Channels of the stage features and the U-Net's first level. Default: 96.
        scale_unetfeats (int): Channels added per U-Net level. Default: 48.
        scale_orsnetfeats (int): Accepted for the published signature; unused by DGUNet+. Default: 32.
        num_cab (int): Accepted for the published signature; unused. Default: 8.
        kernel_size (int): Size of the shallow, CAB and tail convolutions. Default: 3.
        reduction (int): Channel reduction in the channel attention. Default: 4.
        bias (bool): Bias in the shallow, CAB, SAM and tail convolutions. Default: False.
        channels_last (bool): Compute on channels_last (NHWC) features (see `DGUNet`). Default: True.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return _argument_problems(arguments)

    def __init__(self,
                 in_c=3,
                 out_c=3,
                 n_feat=96,
                 scale_unetfeats=48,
                 scale_orsnetfeats=32,
                 num_cab=8,
                 kernel_size=3,
                 reduction=4,
                 bias=False,
                 channels_last=True):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.channels_last = channels_last
        act = nn.PReLU()  # the seven CABs
        gradient_act = nn.PReLU()  # the fourteen gradient-step blocks
        # Registration order = the published state_dict order: steps r*, shallow features, phi/phit, U-Nets, SAMs.
        for k in range(NUM_STAGES):
            setattr(self, f'r{k}', nn.Parameter(torch.tensor([0.5])))
        for k in range(1, NUM_STAGES + 1):
            setattr(self, f'shallow_feat{k}', shallow_features(in_c, n_feat, kernel_size, reduction, bias, act))
        for k in range(NUM_STAGES):
            setattr(self, f'phi_{k}', ResBlock(in_c, gradient_act))
            setattr(self, f'phit_{k}', ResBlock(in_c, gradient_act))
        for k in range(1, NUM_STAGES):
            setattr(self, f'stage{k}_encoder', Encoder(n_feat, scale_unetfeats, use_csff=k > 1))
            setattr(self, f'stage{k}_decoder', Decoder(n_feat, scale_unetfeats))
        for k in range(1, NUM_STAGES):
            setattr(self, f'sam{k}{k + 1}', SAM(n_feat, in_c, bias))
            setattr(self, f'merge{k}{k + 1}', MergeBlock(n_feat))
        self.tail = nn.Conv2d(n_feat, out_c, kernel_size, padding=kernel_size // 2, bias=bias)

    def _stages(self, y):
        image, sam_feats, encoder_outs, decoder_outs = y, None, None, None
        stages = []
        for k in range(1, NUM_STAGES + 1):
            image = gradient_step(getattr(self, f'phi_{k - 1}'), getattr(self, f'phit_{k - 1}'),
                                  getattr(self, f'r{k - 1}'), image, y)
            feats = getattr(self, f'shallow_feat{k}')(image)
            if k > 1:
                feats = getattr(self, f'merge{k - 1}{k}')(feats, sam_feats)
            if k == NUM_STAGES:
                stages.append(self.tail(feats) + y)
                break
            encoder_outs, bottom = getattr(self, f'stage{k}_encoder')(feats, encoder_outs, decoder_outs)
            decoder_outs = getattr(self, f'stage{k}_decoder')(bottom, encoder_outs)
            sam_feats, image = getattr(self, f'sam{k}{k + 1}')(decoder_outs[-1], image)
            stages.append(image)
        return stages[::-1]
