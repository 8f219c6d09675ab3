"""Skipping non-finite training steps, and knowing which weights were last good when training has to stop."""
import torch


class NonFiniteGuard:
    """Watches the training loss; keeps the last weights known to give a finite loss.

    Weights are "good" once a forward pass with them gave a finite loss (on every rank). Before each optimizer
    step the guard copies the parameters and buffers of the networks it watches (net_g and its EMA; one copy,
    on their device) - the weights that just gave a finite loss. The step may break them (a huge learning rate
    can make finite but useless weights, or non-finite ones); the next loss tells. A step whose loss is not
    finite is skipped: no optimizer step, and the buffers (e.g. normalisation statistics) go back to the copy.
    After ``limit`` such steps in a row, `restore_last_good` puts the copy back so the model saves weights that
    worked, and `stop_message` says which iteration they come from.

    Args:
        networks (list[nn.Module]): The networks to keep (bare modules, not DDP wrappers).
        limit (int): Non-finite steps in a row that stop training (``train.max_nonfinite_steps``, checked by the
            model), at least 1.
        distributed (bool): Whether the loss's finiteness is agreed over the ranks (all skip or none).
    """

    def __init__(self, networks, limit, distributed):
        self.limit = limit
        self.distributed = distributed
        self.parameters = [p for net in networks for p in net.parameters()]
        self.buffers = [b for net in networks for b in net.buffers() if b.is_floating_point()]
        self.in_a_row = 0
        self.good_iter = None  # the iteration whose end state the copy holds
        self.stepped_since_copy = False
        self._parameters_copy = None
        self._buffers_copy = None

    def begin_step(self, current_iter):
        """Call before the forward pass; the first time, copies the starting weights (in case no step is good)."""
        if self._parameters_copy is None:
            self._remember(current_iter)

    def loss_is_finite(self, loss):
        """Whether ``loss`` is finite on every rank; counts the non-finite ones in a row."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.distributed:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() == 1:
            self.in_a_row = 0
            return True
        self.in_a_row += 1
        if self.buffers:
            with torch.no_grad():
                torch._foreach_copy_(self.buffers, self._buffers_copy)
        return False

    def before_step(self, current_iter):
        """Call after a finite loss, before the optimizer step: the current weights are good."""
        self._remember(current_iter)
        self.stepped_since_copy = True

    @property
    def should_stop(self):
        return self.in_a_row >= self.limit

    def restore_last_good(self):
        """Put the last good weights back; returns whether they differ from the current ones (a step was taken
        since), in which case the optimizer's running statistics belong to broken weights too."""
        with torch.no_grad():
            torch._foreach_copy_(self.parameters, self._parameters_copy)
            if self.buffers:
                torch._foreach_copy_(self.buffers, self._buffers_copy)
        changed, self.stepped_since_copy = self.stepped_since_copy, False
        return changed

    def stop_message(self, current_iter, reset_optimizer):
        """The error message of a stop at ``current_iter``, saved as that iteration."""
        first = current_iter - self.limit + 1
        saved = f'models/net_g_{current_iter}.pth, training_states/{current_iter}.state'
        if reset_optimizer:
            weights = (f'The last good weights, those of iteration {self.good_iter} (they gave the last finite loss, '
                       f'at iteration {self.good_iter + 1}), are saved as iteration {current_iter} ({saved}; the '
                       'optimizer statistics, computed from the broken weights, are reset)')
        else:
            weights = (f'No step changed the weights since iteration {self.good_iter}; those weights are saved as '
                       f'iteration {current_iter} ({saved})')
        return (f'{self.limit} non-finite losses in a row (iterations {first}-{current_iter}); stopped. {weights}. '
                'Check the images named in the log, or lower the learning rate (on resume train.optim_g.lr is '
                'taken from the YAML or --force_yml), then resume with --auto_resume.')

    def _remember(self, current_iter):
        with torch.no_grad():
            if self._parameters_copy is None:
                self._parameters_copy = [p.detach().clone() for p in self.parameters]
                self._buffers_copy = [b.detach().clone() for b in self.buffers]
            else:
                torch._foreach_copy_(self._parameters_copy, self.parameters)
                if self.buffers:
                    torch._foreach_copy_(self._buffers_copy, self.buffers)
        self.good_iter = current_iter - 1
