"""Checkpoint writing and reading for our models: atomic writes, and no arbitrary unpickling by default."""
import os.path as osp

from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from vlunet_basicsr.utils.checkpoint_util import HOW_TO_TRUST_IN_YAML, atomic_torch_save, load_weights, trusted_in


class SafeCheckpointMixin:
    """Replaces BaseModel's ``save_network``, ``save_training_state`` and ``load_network`` (same file formats).

    Saves go through a temporary file, fsync and rename, so a kill or a full disk leaves the previous file
    whole. Loads use ``torch.load(weights_only=True)``; a file that needs arbitrary unpickling is refused
    unless the YAML sets ``path.trust_checkpoint: true``.
    """

    last_saved_epoch = 0

    @master_only
    def save_network(self, net, net_label, current_iter, param_key='params'):
        label = 'latest' if current_iter == -1 else current_iter
        path = osp.join(self.opt['path']['models'], f'{net_label}_{label}.pth')
        nets = net if isinstance(net, list) else [net]
        keys = param_key if isinstance(param_key, list) else [param_key]
        if len(nets) != len(keys):
            raise ValueError('save_network: as many param keys as networks are needed')
        checkpoint = {}
        for one_net, key in zip(nets, keys):
            state = self.get_bare_model(one_net).state_dict()
            checkpoint[key] = {(k[7:] if k.startswith('module.') else k): v.cpu() for k, v in state.items()}
        atomic_torch_save(checkpoint, path)

    @master_only
    def save_training_state(self, epoch, current_iter):
        self.last_saved_epoch = max(epoch, 0)
        if current_iter == -1:
            return
        state = {'epoch': epoch, 'iter': current_iter, 'optimizers': [o.state_dict() for o in self.optimizers],
                 'schedulers': [s.state_dict() for s in self.schedulers]}
        atomic_torch_save(state, osp.join(self.opt['path']['training_states'], f'{current_iter}.state'))

    def load_network(self, net, load_path, strict=True, param_key='params'):
        checkpoint = load_weights(load_path, trusted_in(self.opt), how_to_trust=HOW_TO_TRUST_IN_YAML)
        logger = get_root_logger()
        if param_key is not None:
            if param_key not in checkpoint and 'params' in checkpoint:
                logger.info(f"Loading: {param_key} does not exist in {load_path}, use params.")
                param_key = 'params'
            if param_key not in checkpoint:
                raise KeyError(f"{load_path} has no '{param_key}' entry (keys: {sorted(checkpoint)[:8]})")
            checkpoint = checkpoint[param_key]
        state = {(k[7:] if k.startswith('module.') else k): v for k, v in checkpoint.items()}
        bare = self.get_bare_model(net)
        logger.info(f'Loading {bare.__class__.__name__} model from {load_path}, with param key: [{param_key}].')
        self._print_different_keys_loading(bare, state, strict)
        bare.load_state_dict(state, strict=strict)
