"""The adapter-tuning loss (paper Eq. 5)."""
import math

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.losses.loss_util import reduce_loss
from basicsr.utils.registry import LOSS_REGISTRY
from vlunet_basicsr.losses.loss_util import WeightedLoss
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

#: CLIP clamps its logit scale (1 / temperature) at 100.
MAX_LOGIT_SCALE = 100.0


def _mean_log_prob_of_positives(logits, positives):
    """-mean over each row's positives of log softmax(row); rows without positives give 0."""
    log_prob = logits.log_softmax(dim=-1)
    counts = positives.sum(dim=-1)
    return -(log_prob * positives).sum(dim=-1) / counts.clamp(min=1)


@LOSS_REGISTRY.register()
class DegradationContrastiveLoss(WeightedLoss):
    """Cross-entropy over image-prompt cosine similarities divided by a learnable temperature.

    ``loss(image_features (B, d), text_features (K, d), labels (B,))``: prompt ``k`` describes label ``k``
    (or ``text_labels[k]`` when given). The temperature is stored as ``log_scale = log(1 / tau)`` and the
    scale is clamped at 100 like CLIP's logit scale.

    Args (YAML ``train.contrastive_opt``):
        loss_weight (float): Default: 1.0.
        reduction (str): 'mean' | 'sum' | 'none' (per image; not with ``symmetric``). Default: 'mean'.
        temperature (float): Initial tau. Default: 0.07.
        learnable_temperature (bool): Train tau. Default: True.
        symmetric (bool): Add the text->image direction over the batch (averaged with image->text). Default: False.
        multi_positive (bool): An image's positives are every prompt and every other batch image sharing its
            label (supervised-contrastive style), for rare degradations. Default: False.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return super().argument_problems(arguments) + problems_of(
            expect('temperature', arguments['temperature'], 'float', minimum=0.01),
            expect('learnable_temperature', arguments['learnable_temperature'], 'bool'),
            expect('symmetric', arguments['symmetric'], 'bool'),
            expect('multi_positive', arguments['multi_positive'], 'bool'),
            "symmetric: true needs reduction 'mean' or 'sum'" if arguments['symmetric'] and
            arguments['reduction'] == 'none' else None)

    def __init__(self, loss_weight=1.0, reduction='mean', temperature=0.07, learnable_temperature=True,
                 symmetric=False, multi_positive=False):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__(loss_weight, reduction)
        self.symmetric = symmetric
        self.multi_positive = multi_positive
        log_scale = torch.tensor(math.log(1.0 / temperature))
        if learnable_temperature:
            self.log_scale = nn.Parameter(log_scale)
        else:
            self.register_buffer('log_scale', log_scale)

    @property
    def temperature(self):
        return 1.0 / self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)

    def forward(self, image_features, text_features, labels, text_labels=None):
        labels = labels.long()
        if text_labels is None:
            text_labels = torch.arange(text_features.shape[0], device=labels.device)
        scale = self.log_scale.exp().clamp(max=MAX_LOGIT_SCALE)
        image = F.normalize(image_features, dim=-1)
        text = F.normalize(text_features, dim=-1)
        logits = scale * image @ text.t()  # (B, K)
        text_positives = (labels[:, None] == text_labels[None, :]).float()
        if text_positives.sum(dim=1).min() == 0:
            raise ValueError(f'a label in {labels.tolist()} has no prompt (prompt labels {text_labels.tolist()})')

        if self.multi_positive:
            batch = image.shape[0]
            image_logits = scale * image @ image.t()
            self_mask = torch.eye(batch, dtype=torch.bool, device=image.device)
            image_logits = image_logits.masked_fill(self_mask, float('-inf'))
            image_positives = ((labels[:, None] == labels[None, :]) & ~self_mask).float()
            all_logits = torch.cat([logits, image_logits], dim=1)
            all_positives = torch.cat([text_positives, image_positives], dim=1)
            log_prob = all_logits.log_softmax(dim=-1).masked_fill(torch.cat(
                [torch.zeros_like(text_positives, dtype=torch.bool), self_mask], dim=1), 0.0)
            loss = -(log_prob * all_positives).sum(dim=1) / all_positives.sum(dim=1)
        else:
            loss = _mean_log_prob_of_positives(logits, text_positives)

        if self.symmetric:
            # text -> image: for each prompt with images in the batch, its positives among the images.
            per_prompt = _mean_log_prob_of_positives(logits.t(), text_positives.t())
            present = text_positives.sum(dim=0) > 0
            text_to_image = per_prompt[present]
            reduce = torch.mean if self.reduction == 'mean' else torch.sum
            return self.loss_weight * 0.5 * (reduce(loss) + reduce(text_to_image))
        return self.loss_weight * reduce_loss(loss, self.reduction)
