"""Composite degradation restoration loss (CDRL; VL-UR paper Eq. 10, OneRestore's contrast loss)."""
import os.path as osp
import warnings

import torch
from torch import nn

from basicsr.utils import get_root_logger
from basicsr.losses.loss_util import reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.utils.checkpoint_util import load_weights
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: VGG-16's convolutional layers up to relu3_3: output channels, or 'M' for a 2x2 max-pool.
VGG16_UP_TO_RELU3_3 = (64, 64, 'M', 128, 128, 'M', 256, 256, 256)
#: Index of each ReLU in torchvision's ``vgg16().features``.
VGG16_RELU_INDEX = {'relu1_1': 1, 'relu1_2': 3, 'relu2_1': 6, 'relu2_2': 8, 'relu3_1': 11, 'relu3_2': 13, 'relu3_3': 15}
#: OneRestore's layers.
CDRL_LAYERS = ('relu1_2', 'relu2_2', 'relu3_3')
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def torchvision_vgg16_cache_path():
    """Where torchvision keeps its ImageNet VGG-16 weights once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    from torchvision.models import VGG16_Weights
    return osp.join(torch.hub.get_dir(), 'checkpoints', osp.basename(VGG16_Weights.IMAGENET1K_V1.url))


class VGG16Features(nn.Module):
    """Frozen VGG-16 convolutional layers (torchvision's ``features``, same indices) returning chosen ReLU outputs.

    Weights come from ``weights_path``, else from torchvision's cache (`torchvision_vgg16_cache_path`); nothing
    is downloaded. Without either, the weights are random and a warning is logged and raised: such a network
    is only for tests.

    Args:
        weights_path (str | None): A VGG-16 state dict with ``features.<i>.*`` keys (torchvision's
            vgg16-397923af.pth) or ``<i>.*`` keys. Default: None (torchvision's cache, else random).
        layers (list[str]): ReLU outputs to return, in order, from `VGG16_RELU_INDEX`. Default: relu1_2, relu2_2,
            relu3_3.
        imagenet_normalize (bool): Normalise [0, 1] RGB inputs with ImageNet's mean and std first. Default: True.
    """

    def __init__(self, weights_path=None, layers=CDRL_LAYERS, imagenet_normalize=True):
        super().__init__()
        unknown = [name for name in layers if name not in VGG16_RELU_INDEX]
        if unknown or not layers:
            raise ValueError(f'VGG-16 layers must be among {list(VGG16_RELU_INDEX)}, got {list(layers)}')
        self.indices = [VGG16_RELU_INDEX[name] for name in layers]
        modules, channels = [], 3
        for entry in VGG16_UP_TO_RELU3_3:
            if entry == 'M':
                modules.append(nn.MaxPool2d(kernel_size=2, stride=2))
            else:
                modules += [nn.Conv2d(channels, entry, kernel_size=3, padding=1), nn.ReLU()]
                channels = entry
        self.body = nn.Sequential(*modules[:max(self.indices) + 1])
        self.imagenet_normalize = imagenet_normalize
        self.register_buffer('mean', torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.weights_source = self._load(weights_path)
        self.requires_grad_(False).eval()

    def _load(self, weights_path):
        if weights_path is None:
            cached = torchvision_vgg16_cache_path()
            if not osp.isfile(cached):
                message = (f'CompositeDegradationLoss: no VGG-16 weights (vgg_path not set, and torchvision\'s cache '
                           f'{cached} is absent): the VGG-16 features are RANDOMLY INITIALISED. Fine for tests, '
                           'meaningless for training: put torchvision\'s vgg16-397923af.pth there or set vgg_path.')
                get_root_logger().warning(message)
                warnings.warn(message, stacklevel=4)
                return 'random'
            weights_path = cached
        if not osp.isfile(weights_path):
            raise FileNotFoundError(f'CompositeDegradationLoss: vgg_path {weights_path!r} is not a file (expected '
                                    "torchvision's VGG-16 ImageNet weights, vgg16-397923af.pth)")
        state = load_weights(weights_path)
        prefix = 'features.' if any(key.startswith('features.') for key in state) else ''
        wanted = {key: f'{prefix}{key}' for key in self.body.state_dict()}
        missing = [source for source in wanted.values() if source not in state]
        if missing:
            raise KeyError(f'CompositeDegradationLoss: {weights_path} is not a VGG-16 state dict (missing {missing})')
        self.body.load_state_dict({key: state[source] for key, source in wanted.items()})
        return weights_path

    def forward(self, x):
        if self.imagenet_normalize:
            x = (x - self.mean) / self.std
        features = {}
        for index, module in enumerate(self.body):
            x = module(x)
            if index in self.indices:
                features[index] = x
        return [features[index] for index in self.indices]


def _per_image_l1(a, b):
    return (a - b).abs().flatten(1).mean(1)


@LOSS_REGISTRY.register()
class CompositeDegradationLoss(WeightedLoss):
    """CDRL: per VGG-16 layer, ``L1(r, gt) / (l1 * L1(r, lq) + sum_j l2 * L1(r, neg_j) + eps)``, averaged.

    ``r`` is the restored image, ``gt`` the positive, ``lq`` the degraded input and ``neg_j`` the same scene under
    the other degradation types, all as VGG-16 features. L1 is the mean absolute difference of one image's
    features; the ratio is taken per image and layer, averaged over the layers (OneRestore's mean; the paper's
    Eq. 10 writes a sum, a constant factor), then reduced over the batch. OneRestore divides batch means instead:
    the two agree for one image; per image, no image's ratio is scaled by another's distances. Only ``r``
    carries a gradient (the VGG-16 is frozen; the references' features are computed without a graph).

    ``forward(pred, target, lq, negatives)`` with ``pred``, ``target``, ``lq`` (B, 3, H, W) and ``negatives``
    (B, N, 3, H, W), N >= 0.

    Args (YAML ``train.<name>_opt``):
        loss_weight (float): Default: 1.0 (VL-UR: 0.1).
        reduction (str): 'mean' | 'sum' | 'none' (one value per image). Default: 'mean'.
        vgg_path (str | None): VGG-16 ImageNet weights file (torchvision's vgg16-397923af.pth). Default: None
            (torchvision's cache ``$TORCH_HOME/hub/checkpoints``, else random weights with a warning).
        layers (list[str]): VGG-16 ReLU outputs compared. Default: [relu1_2, relu2_2, relu3_3] (OneRestore's).
        imagenet_normalize (bool): Normalise inputs with ImageNet's mean and std before VGG-16, as its weights
            expect (OneRestore feeds [0, 1] images unnormalised: set False to match it). Default: True.
        lambda_input (float | None): ``l1``. Default: None, meaning ``1 / (N + 1)`` (OneRestore's).
        lambda_negative (float | None): ``l2``. Default: None, meaning ``1 / (N + 1)`` (OneRestore's): the
            denominator is then the mean distance to the N + 1 degraded versions of the scene.
        eps (float): Added to the denominator (OneRestore's). Default: 1e-7.
    """

    #: The batch entries the model passes after (pred, target): ``forward(pred, target, lq, negatives)``.
    batch_inputs = ('lq', 'negatives')

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('vgg_path', arguments['vgg_path'], 'str', nullable=True),
            expect('layers', arguments['layers'], 'list[str]'),
            expect('imagenet_normalize', arguments['imagenet_normalize'], 'bool'),
            expect('lambda_input', arguments['lambda_input'], 'float', minimum=0, nullable=True),
            expect('lambda_negative', arguments['lambda_negative'], 'float', minimum=0, nullable=True),
            expect('eps', arguments['eps'], 'float', minimum=0))

    def __init__(self, loss_weight=1.0, reduction='mean', vgg_path=None, layers=CDRL_LAYERS, imagenet_normalize=True,
                 lambda_input=None, lambda_negative=None, eps=1e-7):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        self.lambda_input = lambda_input
        self.lambda_negative = lambda_negative
        self.eps = eps
        self.vgg = VGG16Features(vgg_path, layers, imagenet_normalize)

    def forward(self, pred, target, lq, negatives):
        """Loss of ``pred`` against ``target`` (positive), ``lq`` and ``negatives`` (B, N, C, H, W)."""
        batch = pred.shape[0]
        if pred.dim() != 4 or target.shape != pred.shape or lq.shape != pred.shape:
            raise ValueError(f'CompositeDegradationLoss: pred, target and lq need one (B, C, H, W) shape, got '
                             f'{tuple(pred.shape)}, {tuple(target.shape)} and {tuple(lq.shape)}')
        if negatives.dim() != 5 or negatives.shape[0] != batch or negatives.shape[2:] != pred.shape[1:]:
            raise ValueError(f'CompositeDegradationLoss: negatives need shape ({batch}, N, '
                             f'{", ".join(map(str, pred.shape[1:]))}), got {tuple(negatives.shape)}')
        num_negatives = negatives.shape[1]
        lambda_input = 1.0 / (num_negatives + 1) if self.lambda_input is None else self.lambda_input
        lambda_negative = 1.0 / (num_negatives + 1) if self.lambda_negative is None else self.lambda_negative
        with torch.no_grad():
            references = self.vgg(torch.cat([target, lq, negatives.flatten(0, 1)]))
        ratios = []
        for restored, reference in zip(self.vgg(pred), references):
            positive = _per_image_l1(restored, reference[:batch])
            denominator = lambda_input * _per_image_l1(restored, reference[batch:2 * batch])
            negative_features = reference[2 * batch:].unflatten(0, (batch, num_negatives))
            for j in range(num_negatives):
                denominator = denominator + lambda_negative * _per_image_l1(restored, negative_features[:, j])
            ratios.append(positive / (denominator + self.eps))
        loss = torch.stack(ratios).mean(0)  # (B,)
        return self.loss_weight * reduce_loss(loss, self.reduction)
