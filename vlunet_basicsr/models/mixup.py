"""MixUp of training pairs within a batch, as the published MPRNet and DGUNet denoising code does it.

The published ``MixUp_AUG`` (``Denoising/utils/dataset_utils.py`` of both releases; the deraining and deblurring
folders carry the same class but their ``train.py`` never calls it) draws a random permutation ``p`` of the batch
and one factor per sample, ``lam_i ~ Beta(0.6, 0.6)``, and mixes each pair with its partner, the same factor for
the degraded and the clean image::

    lq_i <- lam_i * lq_i + (1 - lam_i) * lq_p(i)
    gt_i <- lam_i * gt_i + (1 - lam_i) * gt_p(i)

Its ``train.py`` applies it from epoch 6 on (``if epoch > 5``). Here the draws of iteration ``i`` come from
``numpy.random.default_rng([seed, rank, i])`` (``seed`` the run's ``manual_seed``): the same run gives the same
mixes, on any device, after a resume too, and each rank mixes its own batch differently. Under DDP a batch is
one rank's share, so pairs are mixed within it (the published code ran DataParallel: within all 16).

YAML ``train.mixup``: ``false`` (default), ``true`` (the published values), or a mapping of `PairMixUp`'s keyword
arguments (alpha, beta, start_iter).
"""
import inspect

import numpy as np
import torch

from vlunet_basicsr.utils.option_values import expect, located, problems_of, unknown_key_problems


def mixup_problems(value):
    """What is wrong with a ``train.mixup`` value (one line each, naming the key); [] when it is valid."""
    if value is None or isinstance(value, bool):
        return []
    keys = list(inspect.signature(PairMixUp).parameters)[2:]  # after seed and rank
    if not isinstance(value, dict):
        return [f'train.mixup: {value!r} is not true, false or a mapping of {", ".join(keys)}']
    given = {key: value[key] for key in keys if key in value}
    problems = unknown_key_problems(value, keys, 'train.mixup', 'MixUp')
    return problems + located('train.mixup', PairMixUp.argument_problems(given))


def check_mixable(value, network_inputs, batch_inputs=()):
    """Fail when ``train.mixup`` is on for a batch it cannot mix consistently.

    Args:
        value (bool | dict | None): ``train.mixup``.
        network_inputs (NetworkInputs): The arch's protocol: a text-guided arch is guided by each sample's
            label, and a mixed pair has no single label.
        batch_inputs (Iterable[str]): Batch keys the training losses take besides the output and gt: MixUp mixes
            ``lq`` and ``gt`` only, so any other (e.g. ``negatives``) would no longer match its pair.

    Raises:
        ValueError: Naming ``train.mixup`` and what cannot be mixed.
    """
    if value is None or value is False:
        return
    if network_inputs.prompt_guided:
        raise ValueError(f"train.mixup: {network_inputs.arch} is guided by the prompt of each sample's label "
                         f'(guidance_input {network_inputs.guidance_input!r}), and a mixed pair has no single label; '
                         'turn MixUp off')
    others = sorted(set(batch_inputs) - {'lq'})
    if others:
        raise ValueError(f"train.mixup mixes lq and gt only, but a training loss also takes the batch's "
                         f"{', '.join(repr(name) for name in others)}, which would no longer match the mixed pairs; "
                         'turn MixUp off or remove that loss')


def mix_pairs(lq, gt, permutation, factors):
    """The published formula: every pair mixed with its partner in ``permutation``, by its factor.

    Args:
        lq (Tensor): Degraded images (B, C, H, W).
        gt (Tensor): Clean images (B, C, H, W).
        permutation (Tensor): Partner of each sample, a permutation of ``range(B)`` (long, B).
        factors (Tensor): ``lam`` of each sample (B,), in [0, 1].

    Returns:
        tuple[Tensor, Tensor]: The mixed ``lq`` and ``gt``.
    """
    lam = factors.to(device=lq.device, dtype=lq.dtype).view(-1, *([1] * (lq.dim() - 1)))
    index = permutation.to(lq.device)
    return lam * lq + (1 - lam) * lq[index], lam * gt + (1 - lam) * gt[index]


class PairMixUp:
    """MixUp of the training pairs of each batch (see the module docstring).

    Args:
        seed (int): The run's seed (``manual_seed``).
        rank (int): This process's rank. Default: 0.
        alpha (float): First Beta concentration. Default: 0.6 (published).
        beta (float): Second Beta concentration. Default: 0.6 (published).
        start_iter (int): First iteration that is mixed. Default: 1.
    """

    @staticmethod
    def argument_problems(arguments):
        """Problems of the given keyword arguments among alpha, beta and start_iter, each naming its key."""
        problems = [expect('start_iter', arguments.get('start_iter', 1), 'int', minimum=1)]
        for key in ('alpha', 'beta'):
            number = arguments.get(key)
            problems.append(expect(key, number, 'float') if key in arguments else None)
            if isinstance(number, (int, float)) and not isinstance(number, bool) and number <= 0:
                problems.append(f'{key}: {number!r} must be > 0 (a Beta concentration)')
        return problems_of(*problems)

    def __init__(self, seed, rank=0, alpha=0.6, beta=0.6, start_iter=1):
        problems = located('train.mixup', self.argument_problems({'alpha': alpha, 'beta': beta,
                                                                  'start_iter': start_iter}))
        if problems:
            raise ValueError('; '.join(problems))
        self.seed, self.rank = int(seed), int(rank)
        self.alpha, self.beta, self.start_iter = float(alpha), float(beta), int(start_iter)

    @classmethod
    def from_options(cls, value, seed, rank=0):
        """The MixUp of a ``train.mixup`` value, or None when it is off (absent, ``~`` or false)."""
        problems = mixup_problems(value)
        if problems:
            raise ValueError('; '.join(problems))
        if value is None or value is False:
            return None
        return cls(seed, rank, **(value if isinstance(value, dict) else {}))

    def generator(self, current_iter):
        """The numpy generator of an iteration's draws."""
        return np.random.default_rng([self.seed, self.rank, int(current_iter)])

    def draw(self, batch_size, current_iter):
        """The permutation (long, B) and the factors (float64, B) of iteration ``current_iter``, in that order."""
        rng = self.generator(current_iter)
        permutation = torch.from_numpy(rng.permutation(batch_size))
        factors = torch.from_numpy(rng.beta(self.alpha, self.beta, size=batch_size))
        return permutation, factors

    def __call__(self, lq, gt, current_iter):
        """``(lq, gt)`` mixed, or unchanged before ``start_iter``."""
        if current_iter < self.start_iter:
            return lq, gt
        if lq.shape[0] != gt.shape[0]:
            raise ValueError(f'MixUp needs as many gt as lq images; got {gt.shape[0]} and {lq.shape[0]}')
        return mix_pairs(lq, gt, *self.draw(lq.shape[0], current_iter))

    def __repr__(self):
        return f'MixUp(Beta({self.alpha:g}, {self.beta:g}), from iteration {self.start_iter})'
