"""Smooth L1 loss (VL-UR paper Eq. 8; OneRestore's pixel term)."""
from torch.nn import functional as F

from basicsr.losses.loss_util import weighted_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems


@weighted_loss
def smooth_l1_loss(pred, target, beta=1.0):
    return F.smooth_l1_loss(pred, target, reduction='none', beta=beta)


@LOSS_REGISTRY.register()
class SmoothL1Loss(WeightedLoss):
    """torch's smooth L1 (Huber with slope 1): ``0.5 d^2 / beta`` where ``|d| < beta``, else ``|d| - 0.5 beta``.

    Element-wise ``weight`` and the reductions follow BasicSR's ``L1Loss`` (`basicsr.losses.loss_util`).

    Args (YAML ``train.<name>_opt``):
        loss_weight (float): Default: 1.0 (VL-UR: 0.6).
        reduction (str): 'mean' | 'sum' | 'none'. Default: 'mean'.
        beta (float): Where the loss turns from quadratic to linear; torch's default, used by OneRestore.
            Default: 1.0.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('beta', arguments['beta'], 'float', minimum=1e-12))

    def __init__(self, loss_weight=1.0, reduction='mean', beta=1.0):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        self.beta = beta

    def forward(self, pred, target, weight=None):
        """``pred``, ``target`` (B, C, H, W); ``weight`` None or element-wise (B, 1 or C, H, W)."""
        return self.loss_weight * smooth_l1_loss(pred, target, weight, reduction=self.reduction, beta=self.beta)
