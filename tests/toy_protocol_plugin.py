"""Test plugin (YAML `plugins`): tiny archs and a loss that exercise the protocols of GuidedRestorationModel."""
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY, LOSS_REGISTRY


def _conv_stage(channels):
    return nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.ReLU(), nn.Conv2d(channels, 3, 3, padding=1))


@ARCH_REGISTRY.register()
class ToyStagesNet(nn.Module):
    """Residual conv stages, as an unfolding network: ``return_stages=True`` gives every stage's image, final
    first; ``net(x)`` the final one. ``nan_steps``: the first that many training forwards return NaN."""

    multi_stage_output = True

    def __init__(self, channels=8, stages=2, nan_steps=0):
        super().__init__()
        self.stages = nn.ModuleList(_conv_stage(channels) for _ in range(stages))
        self.nan_steps = nan_steps
        self.training_forwards = 0

    def forward(self, x, return_stages=False):
        images = []
        for stage in self.stages:
            x = x + stage(x)
            images.append(x)
        if self.training:
            self.training_forwards += 1
            if self.training_forwards <= self.nan_steps:
                images = [image * float('nan') for image in images]
        images.reverse()
        return images if return_stages else images[0]


@ARCH_REGISTRY.register()
class ToyTextGuidedNet(nn.Module):
    """``net(x, embedding)``: a conv whose output is shifted per channel by a projection of the embedding."""

    guidance_input = 'text_features'

    def __init__(self, embedding_dim=32, channels=8):
        super().__init__()
        self.body = _conv_stage(channels)
        self.project = nn.Linear(embedding_dim, 3)
        self.seen = []

    def forward(self, x, embedding):
        self.seen.append(embedding.detach().clone())
        return x + self.body(x) + self.project(embedding)[:, :, None, None]


@LOSS_REGISTRY.register()
class ToyReferenceLoss(nn.Module):
    """``loss_weight * (L1(pred, lq) + L1(pred, reference))``: asks for the batch's ``lq`` and ``reference``."""

    batch_inputs = ('lq', 'reference')

    def __init__(self, loss_weight=1.0):
        super().__init__()
        self.loss_weight = loss_weight

    def forward(self, pred, target, lq, reference):
        return self.loss_weight * (F.l1_loss(pred, lq) + F.l1_loss(pred, reference))
