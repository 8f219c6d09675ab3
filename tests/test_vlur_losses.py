"""VL-UR's losses: smooth L1 and 1 - MS-SSIM on known values, CDRL's ratio on constructed features, its VGG-16
(layers, weights from a file or torchvision's cache, random only with a warning), and the paper's weighted total."""
import os

import pytest
import torch
from pytorch_msssim import ms_ssim
from torch import nn
from torch.nn import functional as F
from torchvision.models.vgg import cfgs, make_layers

import vlunet_basicsr  # noqa: F401
from basicsr.losses import build_loss
from vlunet_basicsr.losses.composite_degradation_loss import (IMAGENET_MEAN, IMAGENET_STD, CompositeDegradationLoss,
                                                              torchvision_vgg16_cache_path)
from vlunet_basicsr.losses.msssim_loss import MSSSIMLoss


@pytest.fixture(autouse=True)
def empty_torch_home(tmp_path, monkeypatch):
    """No torchvision cache unless a test writes one: the VGG-16 is random (and warns) by default."""
    monkeypatch.setenv('TORCH_HOME', str(tmp_path / 'torch_home'))


class ScaledCopies(nn.Module):
    """A stand-in feature extractor with two "layers": the image and twice the image."""

    def forward(self, x):
        return [x, 2 * x]


def _cdrl(**options):
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        loss = build_loss({'type': 'CompositeDegradationLoss', **options})
    return loss


def test_smooth_l1_on_known_values():
    pred = torch.tensor([0.5, 2.0, -0.2, 0.0]).view(1, 1, 2, 2)
    target = torch.zeros_like(pred)
    # |d| < 1: d^2 / 2 (0.125, 0.02); else |d| - 0.5 (1.5).
    loss = build_loss({'type': 'SmoothL1Loss', 'loss_weight': 0.6})
    assert torch.isclose(loss(pred, target), torch.tensor(0.6 * (0.125 + 1.5 + 0.02 + 0) / 4))
    # beta 0.5: |d| < 0.5: d^2 / (2 * 0.5) (0.04); else |d| - 0.25 (0.25, 1.75).
    loss = build_loss({'type': 'SmoothL1Loss', 'beta': 0.5})
    assert torch.isclose(loss(pred, target), torch.tensor((0.25 + 1.75 + 0.04) / 4))
    weight = torch.tensor([1.0, 0.0, 1.0, 1.0]).view(1, 1, 2, 2)
    assert torch.isclose(build_loss({'type': 'SmoothL1Loss'})(pred, target, weight), torch.tensor(0.145 / 3))
    assert build_loss({'type': 'SmoothL1Loss', 'reduction': 'none'})(pred, target).shape == pred.shape
    x, y = torch.randn(2, 3, 5, 4), torch.randn(2, 3, 5, 4)
    assert torch.isclose(build_loss({'type': 'SmoothL1Loss'})(x, y), F.smooth_l1_loss(x, y))


def test_msssim_loss_equals_one_minus_the_library_value():
    torch.manual_seed(0)
    target = torch.rand(2, 3, 176, 168)
    pred = (target + 0.1 * torch.randn_like(target)).clamp(0, 1).requires_grad_(True)
    loss = build_loss({'type': 'MSSSIMLoss', 'loss_weight': 0.3})
    expected = 1 - ms_ssim(pred, target, data_range=1.0, size_average=False, win_size=11, win_sigma=1.5,
                           weights=[0.0448, 0.2856, 0.3001, 0.2363, 0.1333])
    value = loss(pred, target)
    assert 0.01 < expected.mean() < 0.99
    assert torch.isclose(value, 0.3 * expected.mean())
    value.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    per_image = build_loss({'type': 'MSSSIMLoss', 'reduction': 'none'})(pred, target)
    assert torch.allclose(per_image, expected) and per_image[0] != per_image[1]
    assert build_loss({'type': 'MSSSIMLoss'})(target, target).abs() < 1e-6


def test_msssim_loss_names_the_minimum_size_and_refuses_weights():
    loss = MSSSIMLoss()
    with pytest.raises(ValueError, match='at least 161x161 pixels'):
        loss(torch.rand(1, 3, 160, 200), torch.rand(1, 3, 160, 200))
    assert loss(torch.rand(1, 3, 161, 161), torch.rand(1, 3, 161, 161)).isfinite()
    with pytest.raises(ValueError, match='at least 97x97'):
        MSSSIMLoss(win_size=7)(torch.rand(1, 3, 96, 120), torch.rand(1, 3, 96, 120))
    with pytest.raises(ValueError, match='no element-wise weight'):
        loss(torch.rand(1, 3, 161, 161), torch.rand(1, 3, 161, 161), torch.ones(1, 1, 161, 161))


def _constant(values, n=None, shape=(3, 4, 4)):
    """A batch (B, *shape) whose image b is the constant values[b]; with ``n``, values[b][j] over (B, n, ...)."""
    tensor = torch.tensor(values, dtype=torch.float32)
    return tensor.view(*tensor.shape, 1, 1, 1).expand(*tensor.shape, *shape).contiguous()


def test_cdrl_ratio_on_constructed_tensors():
    loss = _cdrl(loss_weight=0.1, reduction='none')
    loss.vgg = ScaledCopies()
    # Image 0: r = 0, gt = 1, lq = 3, negatives 2 and 4: lambdas 1/3, ratio 1 / ((3 + 2 + 4) / 3) = 1/3 on both
    # "layers". Image 1: r = 1, gt = 1.5, lq = 0, negatives 3 and 1: 0.5 / ((1 + 2 + 0) / 3) = 0.5.
    pred = _constant([0.0, 1.0]).requires_grad_(True)
    target, lq = _constant([1.0, 1.5]), _constant([3.0, 0.0])
    negatives = _constant([[2.0, 4.0], [3.0, 1.0]])
    value = loss(pred, target, lq, negatives)
    assert torch.allclose(value, 0.1 * torch.tensor([1 / 3, 0.5]))
    loss.reduction = 'mean'
    assert torch.isclose(loss(pred, target, lq, negatives), torch.tensor(0.1 * (1 / 3 + 0.5) / 2))
    loss(pred, target, lq, negatives).backward()
    assert pred.grad.abs().sum() > 0

    # Explicit lambdas: image 0, 1 / (1.0 * 3 + 0.5 * (2 + 4)) = 1/6.
    loss = _cdrl(lambda_input=1.0, lambda_negative=0.5)
    loss.vgg = ScaledCopies()
    assert torch.isclose(loss(pred[:1], target[:1], lq[:1], negatives[:1]), torch.tensor(1 / 6))
    # No negatives: lambda_input = 1, the ratio of the distances to gt and to lq: 1/3 and 0.5 / 1.
    loss = _cdrl()
    loss.vgg = ScaledCopies()
    assert torch.isclose(loss(pred, target, lq, negatives[:, :0]), torch.tensor((1 / 3 + 0.5) / 2))
    # Restored = ground truth: zero.
    assert loss(target, target, lq, negatives) == 0


def test_cdrl_on_vgg_features_is_zero_at_the_ground_truth_and_grows_towards_a_negative():
    torch.manual_seed(0)
    loss = _cdrl()
    assert loss.vgg.weights_source == 'random'
    gt, lq = torch.rand(2, 3, 32, 32), torch.rand(2, 3, 32, 32)
    negatives = torch.rand(2, 3, 3, 32, 32)
    assert loss(gt, gt, lq, negatives) == 0
    pred = (0.7 * gt + 0.3 * negatives[:, 0]).requires_grad_(True)
    closer = loss(pred, gt, lq, negatives)
    farther = loss(0.3 * gt + 0.7 * negatives[:, 0], gt, lq, negatives)
    assert 0 < closer < farther
    closer.backward()
    assert torch.isfinite(pred.grad).all() and pred.grad.abs().sum() > 0
    assert all(param.grad is None and not param.requires_grad for param in loss.parameters())
    with pytest.raises(ValueError, match=r'negatives need shape \(2, N, 3, 32, 32\)'):
        loss(gt, gt, lq, negatives[:, :, :, :16])


def _torchvision_vgg16_features(seed=0):
    torch.manual_seed(seed)
    return make_layers(cfgs['D']).eval()  # torchvision's vgg16().features


def _save_features_state(features, path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    torch.save({f'features.{key}': value for key, value in features.state_dict().items()
                if int(key.split('.')[0]) <= 14}, path)


@pytest.mark.parametrize('imagenet_normalize', [True, False])
def test_cdrl_vgg_layers_and_weights_file_match_torchvision(tmp_path, imagenet_normalize):
    features = _torchvision_vgg16_features()
    path = str(tmp_path / 'vgg16.pth')
    _save_features_state(features, path)
    loss = build_loss({'type': 'CompositeDegradationLoss', 'vgg_path': path, 'imagenet_normalize': imagenet_normalize})
    assert loss.vgg.weights_source == path
    x = torch.rand(1, 3, 24, 24)
    inputs = (x - torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) \
        if imagenet_normalize else x
    expected, h = [], inputs
    with torch.no_grad():
        for index, module in enumerate(features[:16]):
            h = module(h)
            if index in (3, 8, 15):  # relu1_2, relu2_2, relu3_3
                expected.append(h.clone())
        actual = loss.vgg(x)
    assert [a.shape[1] for a in actual] == [64, 128, 256]
    for a, e in zip(actual, expected):
        assert torch.allclose(a, e, atol=1e-5)


def test_cdrl_vgg_weights_come_from_torchvision_cache_else_random_with_a_warning(tmp_path):
    cached = torchvision_vgg16_cache_path()
    assert cached == str(tmp_path / 'torch_home' / 'hub' / 'checkpoints' / 'vgg16-397923af.pth')
    with pytest.warns(UserWarning, match='RANDOMLY INITIALISED'):
        assert CompositeDegradationLoss().vgg.weights_source == 'random'
    features = _torchvision_vgg16_features(seed=3)
    _save_features_state(features, cached)
    loss = CompositeDegradationLoss()
    assert loss.vgg.weights_source == cached
    assert torch.equal(loss.vgg.body[14].weight, features[14].weight)
    with pytest.raises(FileNotFoundError, match='is not a file'):
        CompositeDegradationLoss(vgg_path=str(tmp_path / 'missing.pth'))
    torch.save({'features.0.weight': features[0].weight}, tmp_path / 'partial.pth')
    with pytest.raises(KeyError, match='not a VGG-16 state dict'):
        CompositeDegradationLoss(vgg_path=str(tmp_path / 'partial.pth'))


def test_the_papers_total_from_loss_weights():
    torch.manual_seed(0)
    gt = torch.rand(1, 3, 168, 168)
    pred, lq = (gt + 0.05 * torch.randn_like(gt)).clamp(0, 1), torch.rand(1, 3, 168, 168)
    negatives = torch.rand(1, 2, 3, 168, 168)
    smooth = build_loss({'type': 'SmoothL1Loss', 'loss_weight': 0.6})
    structural = build_loss({'type': 'MSSSIMLoss', 'loss_weight': 0.3})
    composite = _cdrl(loss_weight=0.1)
    total = smooth(pred, gt) + structural(pred, gt) + composite(pred, gt, lq, negatives)
    unweighted = _cdrl()
    unweighted.vgg = composite.vgg
    expected = (0.6 * F.smooth_l1_loss(pred, gt) + 0.3 * (1 - ms_ssim(pred, gt, data_range=1.0))
                + 0.1 * unweighted(pred, gt, lq, negatives))
    assert torch.isclose(total, expected, rtol=1e-5)
