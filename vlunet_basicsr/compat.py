"""Every workaround that basicsr 1.4.2 needs on torch 2.x / torchvision >= 0.17, in one place.

`apply()` is called by ``vlunet_basicsr/__init__.py`` before anything imports basicsr. Each fix names the
failure it prevents; ``tests/test_compat.py`` has one test per fix that fails without it.

1. ``import basicsr`` fails: ``torchvision.transforms.functional_tensor`` was removed (alias it).
2. ``--launcher pytorch`` hard-codes nccl and divides by ``torch.cuda.device_count()`` (0 on CPU):
   see `init_dist`.
3. DDP is built with ``device_ids=[torch.cuda.current_device()]``, which fails on CPU: see `model_to_device`.
4. Resume maps every tensor with ``.cuda()``: see `load_resume_state`.
5. ``--auto_resume`` looks in ``./experiments`` instead of the experiment root: see `load_resume_state`.
6. Only Adam is accepted as optimizer: see `get_optimizer`.
7. Test mode raises KeyError without ``val.suffix``: `vlunet_basicsr.options.parse_options` sets it.
8. ``torch.distributed.launch`` passes ``--local-rank``: accepted by ``vlunet_basicsr_cli.pipeline_parser``.
9. ``basicsr export`` of SwinIR restores a batch of another size than the traced one wrongly: its
   ``window_reverse`` computes the batch with a float division, which ``torch.export`` fixes to the traced batch
   (see `swinir_window_reverse`).

Fixes 2, 7 and 8 take effect through basicsr's option parsing, which is replaced by our option pipeline
(`vlunet_basicsr.options`, which calls `init_dist`); fixes 4 and 5 through ``train_pipeline``'s
``load_resume_state``. Both are replaced as module attributes of ``basicsr.train`` / ``basicsr.test`` (the only
callers). Fixes 3 and 6 are methods of ``BaseModel`` and are patched there, because users also run basicsr's
own ``SRModel`` with our archs.
"""
import importlib
import os
import os.path as osp
import subprocess
import sys

import torch

_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_applied = False


def alias_functional_tensor():
    """Fix 1: ``basicsr.data.degradations`` imports ``rgb_to_grayscale`` from a module torchvision 0.17 removed.

    The function moved to ``torchvision.transforms.functional`` with the same signature.
    """
    if _FUNCTIONAL_TENSOR in sys.modules:
        return
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
    except ModuleNotFoundError:
        import torchvision.transforms.functional as functional
        sys.modules[_FUNCTIONAL_TENSOR] = functional


def default_backend():
    """The process-group backend used when the YAML does not set ``dist_params.backend``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, port=None, **kwargs):
    """Fix 2: initialise torch.distributed for ``pytorch`` (torchrun) or ``slurm`` launchers.

    basicsr's version hard-codes nccl for ``pytorch``, ignores ``dist_params`` for it, and calls
    ``torch.cuda.set_device(rank % device_count())``, a division by zero on CPU. Here the backend is
    ``dist_params.backend`` for every launcher (default: nccl with CUDA, else gloo) and the device is
    ``LOCAL_RANK`` (``SLURM_LOCALID`` under slurm), so multi-node runs pick the right GPU.

    Args:
        launcher (str): 'pytorch' or 'slurm'.
        backend (str | None): Process-group backend. Default: nccl if CUDA is available, else gloo.
        port (int | None): Master port for slurm (torchrun sets its own). Default: $MASTER_PORT or 29500.
        **kwargs: Passed to ``torch.distributed.init_process_group``.
    """
    import torch.distributed as dist
    backend = backend or default_backend()
    if launcher == 'pytorch':
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
    elif launcher == 'slurm':
        proc_id = int(os.environ['SLURM_PROCID'])
        first_host = subprocess.getoutput(f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
        os.environ.setdefault('MASTER_ADDR', first_host.strip())
        os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = str(proc_id)
        local_rank = int(os.environ.get('SLURM_LOCALID', 0))
        os.environ['LOCAL_RANK'] = str(local_rank)
    else:
        raise ValueError(f"Invalid launcher '{launcher}': expected 'pytorch' or 'slurm'.")
    if backend == 'nccl' and not torch.cuda.is_available():
        raise RuntimeError("dist_params.backend is 'nccl' but CUDA is not available; use 'gloo' on CPU.")
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, **kwargs)


def model_to_device(self, net):
    """Fix 3: ``BaseModel.model_to_device`` without CUDA ``device_ids`` when the model lives on the CPU.

    Replaces basicsr's method, which passes ``device_ids=[torch.cuda.current_device()]`` unconditionally.
    ``find_unused_parameters`` is read from the top-level YAML key as before.
    """
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def get_optimizer(self, optim_type, params, lr, **kwargs):
    """Fix 6: accept every ``torch.optim`` optimizer by class name (``AdamW`` is the paper's), not only Adam."""
    optimizer_class = getattr(torch.optim, optim_type, None)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        known = sorted(name for name, obj in vars(torch.optim).items()
                       if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and name != 'Optimizer')
        raise ValueError(f"train.optim_*.type '{optim_type}' is not a torch.optim optimizer; known: {', '.join(known)}")
    return optimizer_class(params, lr, **kwargs)


def model_device(opt):
    """The device BaseModel puts the networks on, for the given parsed options."""
    if opt.get('num_gpu', 0) != 0 and torch.cuda.is_available():
        return torch.device('cuda', torch.cuda.current_device())
    return torch.device('cpu')


def _load_complete_state(path, models_dir, device):
    """The state at ``path`` if it and the network files of its iteration load; else None (and why, on stderr)."""
    import glob
    iteration = osp.basename(path)[:-len('.state')]
    from vlunet_basicsr.utils.checkpoint_util import load_weights
    try:
        state = load_weights(path, map_location=device)
        networks = glob.glob(osp.join(models_dir, f'net_*_{iteration}.pth'))
        if not networks:
            raise FileNotFoundError(f'no net_*_{iteration}.pth beside it in {models_dir}')
        for network in networks:
            load_weights(network)
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
    from vlunet_basicsr.utils.checkpoint_util import load_weights, training_states_newest_first
    device = model_device(opt)
    if opt['auto_resume']:
        state, path = None, None
        for candidate in training_states_newest_first(opt['path']['training_states']):
            state = _load_complete_state(candidate, opt['path']['models'], device)
            if state is not None:
                path = opt['path']['resume_state'] = candidate
                break
    else:
        path = opt['path'].get('resume_state')
        if path is None:
            return None
        if not osp.isfile(path):
            raise FileNotFoundError(f'path.resume_state: no training state at {path}')
        state = load_weights(path, bool(opt['path'].get('trust_checkpoint', False)),
                             'set path.trust_checkpoint: true in the YAML', map_location=device)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    return state


def swinir_window_reverse(windows, window_size, h, w):
    """Fix 9: basicsr's ``swinir_arch.window_reverse`` with the batch in integer arithmetic.

    ``int(windows.shape[0] / (h * w / window_size / window_size))`` turns the symbolic batch into a float, so
    the exported graph keeps the traced batch and scrambles the windows of any other; same values eagerly.
    """
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def apply():
    """Apply every fix once. Safe to call repeatedly."""
    global _applied
    if _applied:
        return
    alias_functional_tensor()
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from vlunet_basicsr.options import parse_options
    basicsr.train.parse_options = parse_options
    basicsr.test.parse_options = parse_options
    basicsr.train.load_resume_state = load_resume_state
    BaseModel.model_to_device = model_to_device
    BaseModel.get_optimizer = get_optimizer
    import basicsr.archs.swinir_arch
    basicsr.archs.swinir_arch.window_reverse = swinir_window_reverse
    _applied = True
