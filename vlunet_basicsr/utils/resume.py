"""Resuming training: `load_resume_state` finds and loads the state to resume from, falling back past a broken one.

basicsr's ``train_pipeline`` calls it in place of its own (compat fixes 4 and 5, see `vlunet_basicsr.compat`).
"""
import glob
import os.path as osp
import sys

import torch


def model_device(opt):
    """The device BaseModel puts the networks on, for the given parsed options."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _load_complete_state(path, models_dir, device, trust):
    """The state at ``path`` if it and the network files of its iteration load; else None (and why, on stderr)."""
    iteration = osp.basename(path)[:-len('.state')]
    from vlunet_basicsr.utils.checkpoint_util import HOW_TO_TRUST_IN_YAML, load_weights
    try:
        state = load_weights(path, trust, HOW_TO_TRUST_IN_YAML, map_location=device)
        networks = glob.glob(osp.join(models_dir, f'net_*_{iteration}.pth'))
        if not networks:
            raise FileNotFoundError(f'no net_*_{iteration}.pth beside it in {models_dir}')
        for network in networks:
            load_weights(network, trust, HOW_TO_TRUST_IN_YAML)
        return state
    except Exception as error:  # truncated, unreadable or incomplete: fall back to the previous state
        print(f'WARNING: cannot resume from {path}: {type(error).__name__}: {error}; trying the previous state',
              file=sys.stderr, flush=True)
        return None


def load_resume_state(opt):
    """Fixes 4 and 5: find and load the training state to resume from.

    basicsr looks for ``experiments/<name>/training_states`` relative to the working directory (so
    ``--auto_resume`` finds nothing when the experiment root is elsewhere) and maps every tensor with
    ``.cuda()`` (so resuming fails on CPU). Here ``--auto_resume`` looks in ``opt['path']['training_states']``,
    where the pipeline writes, and tensors load onto the model's device. A truncated or unreadable state (or
    one whose network files are missing or broken) is reported by name and the previous one is used.

    Returns:
        dict | None: The training state, or None when starting fresh.
    """
    from basicsr.utils import check_resume
    from vlunet_basicsr.utils.checkpoint_util import (HOW_TO_TRUST_IN_YAML, load_weights, training_states_newest_first,
                                                  trusted_in)
    device = model_device(opt)
    if opt['auto_resume']:
        state, path = None, None
        for candidate in training_states_newest_first(opt['path']['training_states']):
            state = _load_complete_state(candidate, opt['path']['models'], device, trusted_in(opt))
            if state is not None:
                path = opt['path']['resume_state'] = candidate
                break
    else:
        path = opt['path'].get('resume_state')
        if path is None:
            return None
        if not osp.isfile(path):
            raise FileNotFoundError(f'path.resume_state: no training state at {path}')
        state = load_weights(path, trusted_in(opt), HOW_TO_TRUST_IN_YAML, map_location=device)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    return state
