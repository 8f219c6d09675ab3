"""What every loss of this package shares: the ``loss_weight`` and ``reduction`` keys (BasicSR's convention)."""
from torch import nn

from vlunet_basicsr.utils.option_values import expect, problems_of

REDUCTIONS = ('mean', 'sum', 'none')


class WeightedLoss(nn.Module):
    """Base of this package's losses: keeps a checked ``loss_weight`` and ``reduction``.

    Args:
        loss_weight (float): Weight of the loss. Default: 1.0.
        reduction (str): One of `REDUCTIONS`. Default: 'mean'.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of ``loss_weight`` and ``reduction`` in a mapping of the constructor's keyword arguments; each
        loss adds its own keys' and calls `raise_problems` on them first thing in its constructor."""
        return problems_of(expect('loss_weight', arguments['loss_weight'], 'float', minimum=0),
                           expect('reduction', arguments['reduction'], 'str', choices=REDUCTIONS))

    def __init__(self, loss_weight=1.0, reduction='mean'):
        super().__init__()
        self.loss_weight = loss_weight
        self.reduction = reduction
