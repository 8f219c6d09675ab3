"""DGUNet's edge loss: Charbonnier distance between Laplacian-pyramid residuals (published with DGUNet/MPRNet)."""
import torch
from torch.nn import functional as F

from basicsr.losses.basic_loss import charbonnier_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: The 1-D binomial-like filter; the 2-D Gaussian kernel is its outer product.
GAUSS_1D = (0.05, 0.25, 0.4, 0.25, 0.05)


def gaussian_kernel(channels, dtype=torch.float32, device=None):
    """The depthwise 5x5 Gaussian kernel, (channels, 1, 5, 5)."""
    k = torch.tensor(GAUSS_1D, dtype=dtype, device=device)
    return torch.outer(k, k).expand(channels, 1, 5, 5).contiguous()


def conv_gauss(img, kernel):
    """Depthwise Gaussian filtering with replicate padding (same size)."""
    pad = kernel.shape[-1] // 2
    return F.conv2d(F.pad(img, (pad, pad, pad, pad), mode='replicate'), kernel, groups=img.shape[1])


def laplacian_residual(img, kernel):
    """``img`` minus its blurred, 2x down-sampled, zero-insert up-sampled (x4), re-blurred version."""
    filtered = conv_gauss(img, kernel)
    upsampled = torch.zeros_like(filtered)
    upsampled[..., ::2, ::2] = filtered[..., ::2, ::2] * 4
    return img - conv_gauss(upsampled, kernel)


@LOSS_REGISTRY.register()
class EdgeLoss(WeightedLoss):
    """Charbonnier loss ``sqrt(d^2 + eps)`` between the Laplacian residuals of ``pred`` and ``target``.

    The published training adds ``0.05 x`` this loss to the Charbonnier loss at every stage output (the sum over
    stages is the model's job). The published Charbonnier uses ``sqrt(d^2 + 1e-3^2)``, i.e. ``eps=1e-6`` here
    (basicsr's convention: eps inside the square root, not squared).

    Args (YAML ``train.edge_opt``):
        loss_weight (float): Default: 1.0.
        reduction (str): 'none' | 'mean' | 'sum'. Default: 'mean'.
        eps (float): Added to ``d^2`` inside the square root. Default: 1e-6.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('eps', arguments['eps'], 'float', minimum=0))

    def __init__(self, loss_weight=1.0, reduction='mean', eps=1e-6):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        self.eps = eps

    def forward(self, pred, target, weight=None, **kwargs):
        """
        Args:
            pred (Tensor): (N, C, H, W) prediction.
            target (Tensor): (N, C, H, W) ground truth.
            weight (Tensor, optional): (N, C or 1, H, W) element-wise weights on the residual distance.

        Returns:
            Tensor: The weighted loss.
        """
        kernel = gaussian_kernel(pred.shape[1], pred.dtype, pred.device)
        return self.loss_weight * charbonnier_loss(laplacian_residual(pred, kernel), laplacian_residual(target, kernel),
                                                   weight, eps=self.eps, reduction=self.reduction)
