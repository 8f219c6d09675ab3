"""Negative log mean squared error per image: a loss that weighs every image by how close it already is."""
import torch

from basicsr.losses.loss_util import reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems


@LOSS_REGISTRY.register()
class PSNRLoss(WeightedLoss):
    """``10 log10(MSE + eps)`` per image (minus its PSNR for images in [0, 1]), reduced over the batch.

    Its gradient for one image is the MSE gradient divided by that image's MSE, so an image restored to 30 dB
    pulls as hard as one at 10 dB. In an all-in-one mix this keeps tasks whose inputs are already close to the
    target (mild blur, light noise) from being drowned by the ones with large, global errors (low light, haze),
    which an L1 or MSE over the batch lets dominate.

    Args (YAML ``train.<name>_opt``):
        loss_weight (float): Default: 1.0.
        reduction (str): 'mean' | 'sum' | 'none' over the images of the batch. Default: 'mean'.
        eps (float): Added to each image's MSE before the logarithm (bounds the weight of a perfect image).
            Default: 1e-8.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('eps', arguments['eps'], 'float', minimum=1e-20))

    def __init__(self, loss_weight=1.0, reduction='mean', eps=1e-8):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def forward(self, pred, target):
        """``pred``, ``target`` (B, C, H, W); returns a scalar, or (B,) with ``reduction: none``."""
        loss = 10 * torch.log10((pred - target).pow(2).flatten(1).mean(1) + self.eps)
        return self.loss_weight * reduce_loss(loss, self.reduction)
