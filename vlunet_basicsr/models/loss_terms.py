"""The training losses of the restoration model: every ``train.<name>_opt``, summed over the output images.

Every key of ``train`` that ends in ``_opt`` and holds a ``type`` is a loss from BasicSR's loss registry
(``pixel_opt``, ``perceptual_opt``, ``edge_opt``, ``msssim_opt``, ``composite_opt``, ...). Each is called as
``loss(output, gt, *extra)`` for every output image (one, or one per unfolding stage) and summed over them. A
loss that needs more of the batch declares it with the class attribute ``batch_inputs``, a tuple of batch keys
passed in that order after the two images (e.g. ``('lq', 'negatives')``; default ``()``). A loss that
returns a tuple (BasicSR's ``PerceptualLoss``: perceptual and style terms) gives one term per entry that is not
None. Log names: ``l_pix`` (pixel_opt), ``l_percep`` / ``l_style`` (perceptual_opt), else ``l_<name>``.
"""
from collections import OrderedDict

from basicsr.losses import build_loss

#: Log names of the keys BasicSR's SRModel knows (kept, so logs and tensorboard tags do not change).
LOG_NAMES = {'pixel_opt': ('l_pix',), 'perceptual_opt': ('l_percep', 'l_style')}


def loss_keys(train_opt):
    """The ``train`` keys that configure a loss, in YAML order."""
    return [key for key, value in train_opt.items() if key.endswith('_opt') and isinstance(value, dict)
            and 'type' in value]


class LossTerms:
    """The losses of ``train`` (see the module docstring).

    Args:
        train_opt (dict): The YAML's ``train`` section.
        device (torch.device): Where the losses run.

    Attributes:
        batch_inputs (tuple[str]): Batch keys that some loss needs besides the output and gt (``lq`` included).
    """

    def __init__(self, train_opt, device):
        self.losses = OrderedDict((key, build_loss(dict(train_opt[key])).to(device)) for key in loss_keys(train_opt))
        if not self.losses:
            raise ValueError('train: no loss is configured (a train.<name>_opt with a type, e.g. pixel_opt)')
        self.inputs = {key: tuple(getattr(type(loss), 'batch_inputs', ())) for key, loss in self.losses.items()}
        self.batch_inputs = tuple(sorted({name for names in self.inputs.values() for name in names}))

    def __call__(self, outputs, gt, batch):
        """The loss terms, each summed over ``outputs``: {log name: loss}. ``batch`` maps `batch_inputs` to
        tensors on the losses' device."""
        terms = OrderedDict()
        for key, loss in self.losses.items():
            extra = [batch[name] for name in self.inputs[key]]
            values = [loss(output, gt, *extra) for output in outputs]
            names = LOG_NAMES.get(key, (f'l_{key[:-len("_opt")]}',))
            if isinstance(values[0], tuple):
                names = names if len(names) == len(values[0]) else [f'{names[0]}_{i}' for i in range(len(values[0]))]
                for i, name in enumerate(names):
                    if values[0][i] is not None:
                        terms[name] = sum(value[i] for value in values)
            else:
                terms[names[0]] = sum(values)
        return terms
