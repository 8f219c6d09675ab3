"""Resuming with the learning rate of the option file, not the one stored in the training state."""
from basicsr.utils import get_root_logger


class ConfiguredLearningRateMixin:
    """``resume_training`` that keeps the YAML's base learning rate when it differs from the training state's.

    BasicSR restores each optimizer's and scheduler's state, learning rates included, so lowering
    ``train.optim_*.lr`` (e.g. with ``--force_yml train:optim_g:lr=0.0001`` after a run that diverged) would
    have no effect on resume. Here every parameter group whose base rate (``initial_lr``) in the state differs
    from the one built from the YAML is rescaled: the base rate becomes the YAML's and the current rate keeps
    its place in the schedule (multiplied by YAML / state). Each change is logged.
    """

    def resume_training(self, resume_state):
        configured = [[group.get('initial_lr', group['lr']) for group in o.param_groups] for o in self.optimizers]
        super().resume_training(resume_state)
        logger = get_root_logger()
        for index, (optimizer, rates) in enumerate(zip(self.optimizers, configured)):
            if rates == [group.get('initial_lr', group['lr']) for group in optimizer.param_groups]:
                continue
            for group, rate in zip(optimizer.param_groups, rates):
                stored = group.get('initial_lr', group['lr'])
                if rate == stored:
                    continue
                group['lr'] = group['lr'] * rate / stored if stored else rate
                group['initial_lr'] = rate
                logger.info(f'Resume: optimizer {index}: base learning rate {stored:g} in the training state, '
                            f'{rate:g} in the options; using {rate:g} (current rate {group["lr"]:g}).')
            for scheduler in self.schedulers:
                if scheduler.optimizer is optimizer:
                    scheduler.base_lrs = list(rates)
                    scheduler._last_lr = [group['lr'] for group in optimizer.param_groups]
