"""Learning-rate schedules that BasicSR 1.4.2 lacks, and their registry."""
import math

from torch.optim.lr_scheduler import LRScheduler

from basicsr.utils.registry import Registry
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

SCHEDULER_REGISTRY = Registry('scheduler')


@SCHEDULER_REGISTRY.register()
class LinearWarmupCosineLR(LRScheduler):
    """Linear warm-up, then cosine annealing to ``eta_min``; steps once per iteration.

    Unlike BasicSR's ``warmup_iter`` (which overlays a ramp on another schedule), the cosine starts where the
    warm-up ends: lr(i) = base * (start + (1 - start) * i / warmup_iter) for i < warmup_iter, then
    eta_min + (base - eta_min) * (1 + cos(pi * (i - warmup_iter) / (total_iter - warmup_iter))) / 2,
    and eta_min after total_iter.

    Args (YAML ``train.scheduler``):
        warmup_iter (int): Warm-up iterations (the paper: 15 of 200 epochs).
        total_iter (int): Iteration where the cosine reaches eta_min (normally ``train.total_iter``).
        eta_min (float): Final learning rate. Default: 0.
        warmup_start_factor (float): lr at iteration 0 as a fraction of the base lr. Default: 0.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        warmup_iter, total_iter = arguments['warmup_iter'], arguments['total_iter']
        problems = problems_of(
            expect('warmup_iter', warmup_iter, 'int', minimum=0),
            expect('total_iter', total_iter, 'int', minimum=1),
            expect('eta_min', arguments['eta_min'], 'float', minimum=0),
            expect('warmup_start_factor', arguments['warmup_start_factor'], 'float', minimum=0, maximum=1))
        if not problems and warmup_iter >= total_iter:
            problems.append(f'warmup_iter: need 0 <= warmup_iter < total_iter, got {warmup_iter} and {total_iter}')
        return problems

    def __init__(self, optimizer, warmup_iter, total_iter, eta_min=0.0, warmup_start_factor=0.0, last_epoch=-1):
        raise_problems('train.scheduler', self.argument_problems(locals()))
        self.warmup_iter = warmup_iter
        self.total_iter = total_iter
        self.eta_min = eta_min
        self.warmup_start_factor = warmup_start_factor
        super().__init__(optimizer, last_epoch)

    def factor(self, iteration, base_lr):
        if iteration < self.warmup_iter:
            return base_lr * (self.warmup_start_factor + (1 - self.warmup_start_factor) * iteration / self.warmup_iter)
        progress = min(1.0, (iteration - self.warmup_iter) / (self.total_iter - self.warmup_iter))
        return self.eta_min + (base_lr - self.eta_min) * 0.5 * (1 + math.cos(math.pi * progress))

    def get_lr(self):
        return [self.factor(self.last_epoch, base_lr) for base_lr in self.base_lrs]


class RegisteredSchedulersMixin:
    """``setup_schedulers`` that also knows `SCHEDULER_REGISTRY` (BaseModel knows two built-in names only)."""

    def setup_schedulers(self):
        scheduler_opt = dict(self.opt['train']['scheduler'])
        scheduler_type = scheduler_opt.pop('type')
        if scheduler_type in SCHEDULER_REGISTRY:
            self.schedulers += [SCHEDULER_REGISTRY.get(scheduler_type)(o, **scheduler_opt) for o in self.optimizers]
        else:
            super().setup_schedulers()
