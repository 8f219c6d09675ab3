"""PSNRLoss: 10 log10(MSE) per image (minus the float protocol's PSNR), its reductions and its per-image weighting."""
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.losses import build_loss
from vlunet_basicsr.metrics.protocol_metric import calculate_psnr_float


def test_psnr_loss_is_minus_the_protocol_psnr_per_image():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 16, 12) * 0.8 + 0.1
    pred = target + torch.stack([torch.full((3, 16, 12), 0.1), 0.01 * torch.randn(3, 16, 12)])
    per_image = build_loss({'type': 'PSNRLoss', 'reduction': 'none', 'eps': 1e-12})(pred, target)
    psnr = [calculate_psnr_float(p.permute(1, 2, 0).numpy(), t.permute(1, 2, 0).numpy())
            for p, t in zip(pred.clamp(0, 1), target)]
    assert per_image.shape == (2,)
    assert torch.allclose(per_image, -torch.tensor(psnr, dtype=torch.float32), atol=1e-3)
    assert torch.isclose(per_image[0], torch.tensor(-20.0), atol=1e-4)  # MSE 0.01
    assert torch.isclose(build_loss({'type': 'PSNRLoss', 'loss_weight': 0.5})(pred, target), 0.5 * per_image.mean())
    assert torch.isclose(build_loss({'type': 'PSNRLoss', 'reduction': 'sum'})(pred, target), per_image.sum())


def test_psnr_loss_pulls_as_hard_on_a_close_image_as_on_a_far_one():
    """An image's gradient is its MSE gradient over its MSE: ten times the error, a tenth of the gradient."""
    target = torch.zeros(2, 1, 4, 4)
    pred = torch.stack([torch.full((1, 4, 4), 0.2), torch.full((1, 4, 4), 0.02)]).requires_grad_()
    build_loss({'type': 'PSNRLoss'})(pred, target).backward()
    far, close = pred.grad[0].abs().mean(), pred.grad[1].abs().mean()
    assert torch.isclose(close / far, torch.tensor(10.0), rtol=1e-4)


@pytest.mark.parametrize('options, message', [({'eps': 0}, 'PSNRLoss: eps: 0 is out of range'),
                                              ({'reduction': 'max'}, "PSNRLoss: reduction: 'max' is not one of")])
def test_psnr_loss_refuses_bad_options(options, message):
    with pytest.raises(ValueError, match=message):
        build_loss({'type': 'PSNRLoss', **options})
