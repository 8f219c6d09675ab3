"""MS-SSIM loss, ``1 - MS-SSIM`` (VL-UR paper Eq. 9), computed by the pytorch-msssim library."""
import torch

from basicsr.losses.loss_util import reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: Wang et al.'s scale weights (coarsest last), the paper's and pytorch-msssim's default.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_min_side(win_size):
    """The shortest image side pytorch-msssim accepts: more than ``(win_size - 1) * 2**4`` (four halvings)."""
    return (win_size - 1) * 2**4 + 1


@LOSS_REGISTRY.register()
class MSSSIMLoss(WeightedLoss):
    """``1 - MS-SSIM(pred, target)`` per image, by ``pytorch_msssim.ms_ssim``, then reduced over the batch.

    MS-SSIM is computed per image and channel (Gaussian window, five scales halved by 2x2 average pooling,
    negative contrast terms clipped at 0 as the library does) and averaged over the channels. It runs in
    float32 whatever the input precision. Images whose shorter side is below `ms_ssim_min_side` (161 pixels
    for the 11-pixel window) raise a ValueError naming the minimum: train on crops at least that large (VL-UR
    and OneRestore use 256) or choose a smaller ``win_size``.

    Args (YAML ``train.<name>_opt``):
        loss_weight (float): Default: 1.0 (VL-UR: 0.3).
        reduction (str): 'mean' | 'sum' | 'none' (one value per image). Default: 'mean'.
        data_range (float): Value range of the images. Default: 1.0.
        win_size (int): Side of the Gaussian window (odd). Default: 11.
        win_sigma (float): Standard deviation of the window. Default: 1.5.
        weights (list[float]): Scale weights, finest first. Default: [0.0448, 0.2856, 0.3001, 0.2363, 0.1333].
        K (list[float]): SSIM's stabilising constants (K1, K2). Default: [0.01, 0.03].
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('data_range', arguments['data_range'], 'float', minimum=0),
            expect('win_size', arguments['win_size'], 'int', minimum=1),
            None if not isinstance(arguments['win_size'], int) or arguments['win_size'] % 2 else
            f"win_size: must be odd, got {arguments['win_size']}",
            expect('win_sigma', arguments['win_sigma'], 'float', minimum=0),
            expect('weights', arguments['weights'], 'list[float]', minimum=0),
            expect('K', arguments['K'], 'list[float]', minimum=0, length=2))

    def __init__(self, loss_weight=1.0, reduction='mean', data_range=1.0, win_size=11, win_sigma=1.5,
                 weights=MS_SSIM_WEIGHTS, K=(0.01, 0.03)):  # noqa: N803  (the library's keyword)
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        try:
            from pytorch_msssim import ms_ssim
        except ImportError as error:
            raise ImportError('MSSSIMLoss needs the pytorch-msssim package: pip install pytorch-msssim') from error
        self._ms_ssim = ms_ssim
        self.data_range = data_range
        self.win_size = win_size
        self.win_sigma = win_sigma
        self.weights = [float(w) for w in weights]
        self.k_constants = tuple(K)

    def forward(self, pred, target, weight=None):
        """``pred``, ``target`` (B, C, H, W). MS-SSIM has no element-wise form: ``weight`` must be None."""
        if weight is not None:
            raise ValueError('MSSSIMLoss takes no element-wise weight (MS-SSIM is one value per image)')
        if pred.dim() != 4 or pred.shape != target.shape:
            raise ValueError(f'MSSSIMLoss needs two (B, C, H, W) tensors of one shape, got {tuple(pred.shape)} '
                             f'and {tuple(target.shape)}')
        minimum = ms_ssim_min_side(self.win_size)
        if min(pred.shape[-2:]) < minimum:
            raise ValueError(f'MSSSIMLoss needs images at least {minimum}x{minimum} pixels ({self.win_size}-pixel '
                             f'window over 5 scales), got {pred.shape[-2]}x{pred.shape[-1]}: train on larger crops '
                             '(gt_size) or set a smaller win_size')
        with torch.autocast(pred.device.type, enabled=False):
            value = self._ms_ssim(pred.float(), target.float(), data_range=self.data_range, size_average=False,
                                  win_size=self.win_size, win_sigma=self.win_sigma, weights=self.weights,
                                  K=self.k_constants)
        loss = 1 - value  # (B,)
        return self.loss_weight * reduce_loss(loss, self.reduction)
