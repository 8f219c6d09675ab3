"""What every loss of this package shares: the ``loss_weight`` and ``reduction`` keys (BasicSR's convention)."""
from torch import nn

from vlunet_basicsr.tools.options.spec import Option

REDUCTIONS = ('mean', 'sum', 'none')


def weight_and_reduction(over):
    """The declarations of ``loss_weight`` and ``reduction`` (a reduction ``over`` images, pixels, ...)."""
    return (Option('loss_weight', 'float', 1.0, 'Weight of the loss.', minimum=0),
            Option('reduction', 'str', 'mean', f'Reduction over {over}.', choices=REDUCTIONS))


def check_reduction(reduction):
    """Raise a ValueError unless ``reduction`` is one of `REDUCTIONS` (also for losses built in Python)."""
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


class WeightedLoss(nn.Module):
    """Base of this package's losses: keeps a checked ``loss_weight`` and ``reduction``.

    Args:
        loss_weight (float): Weight of the loss. Default: 1.0.
        reduction (str): One of `REDUCTIONS`. Default: 'mean'.
    """

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        check_reduction(reduction)
        self.loss_weight = loss_weight
        self.reduction = reduction
