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
7. Test mode raises KeyError without ``val.suffix``: see `parse_options`.
8. ``torch.distributed.launch`` passes ``--local-rank``: see `parse_options`.

Fixes 2, 4, 5, 7 and 8 live in basicsr's option parsing and ``train_pipeline`` helpers; they are replaced
as module attributes of ``basicsr.train`` / ``basicsr.test`` (the only callers). Fixes 3 and 6 are methods
of ``BaseModel`` and are patched there, because users also run basicsr's own ``SRModel`` with our archs.
"""
import argparse
import importlib
import os
import os.path as osp
import random
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
    try:
        state = torch.load(path, map_location=device, weights_only=True)
        networks = glob.glob(osp.join(models_dir, f'net_*_{iteration}.pth'))
        if not networks:
            raise FileNotFoundError(f'no net_*_{iteration}.pth beside it in {models_dir}')
        for network in networks:
            torch.load(network, map_location='cpu', weights_only=True)
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
    from vlunet_basicsr.utils.checkpoint_util import training_states_newest_first
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
        state = torch.load(path, map_location=device, weights_only=True)
    if state is None:
        return None
    check_resume(opt, state['iter'])
    return state


def _build_argument_parser():
    parser = argparse.ArgumentParser(add_help=True)
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the latest training state')
    parser.add_argument('--debug', action='store_true')
    # Fix 8: torch.distributed.launch (torch >= 2.0) passes --local-rank; older launchers --local_rank.
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument(
        '--force_yml', nargs='+', default=None, help='Override YAML values. Examples: train:ema_decay=0.999')
    return parser


def _apply_cpu_allocator(opt, opt_path, is_train):
    """Top-level key ``cpu_allocator`` (tuned | system; default tuned for training, system for testing, whose
    whole large images fragment a never-trimmed heap), applied to runs without a GPU."""
    from vlunet_basicsr.utils.cpu_allocator import check_mode, tune_cpu_allocator
    mode = opt.setdefault('cpu_allocator', 'tuned' if is_train else 'system')
    check_mode(mode, f'{opt_path}: cpu_allocator')
    if opt['num_gpu'] == 0 or not torch.cuda.is_available():
        tune_cpu_allocator(mode)


def parse_options(root_path, is_train=True, argv=None):
    """Replacement for ``basicsr.utils.options.parse_options``, with fixes 2, 7 and 8.

    Same flags and the same resulting ``opt`` as basicsr, except that ``--local-rank`` is accepted (fix 8),
    ``dist_params`` is honoured for every launcher (fix 2), ``val.suffix`` defaults to None (fix 7), the
    modules listed under the YAML key ``plugins`` are imported, and before anything is built every ``type`` is
    checked against its registry, every key of our own classes against their options, and every data and
    weight path for existence (all problems reported at once). ``--force_yml`` values are parsed as YAML.
    Runs without a GPU get the CPU allocator chosen by ``cpu_allocator`` (`vlunet_basicsr.utils.cpu_allocator`).

    Args:
        root_path (str): Where ``experiments/``, ``results/`` and ``tb_logger/`` are created.
        is_train (bool): Training or test mode.
        argv (list[str] | None): Arguments; default ``sys.argv[1:]``.

    Returns:
        tuple[dict, argparse.Namespace]: Options and parsed arguments.
    """
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info
    from vlunet_basicsr.utils import options_util

    args = _build_argument_parser().parse_args(argv)
    opt = options_util.load_yaml(args.opt)
    options_util.import_plugins(opt.get('plugins'), args.opt)
    if args.force_yml is not None:
        options_util.force_values(opt, args.force_yml)
    options_util.check_registered_types(opt, args.opt)
    options_util.check_option_keys(opt, args.opt)
    options_util.check_speed_options(opt, args.opt)
    options_util.check_required_paths(opt, args.opt)

    if args.launcher == 'none':
        opt['dist'] = False
        print('Disable distributed.', flush=True)
    else:
        opt['dist'] = True
        init_dist(args.launcher, **(opt.get('dist_params') or {}))
    opt['rank'], opt['world_size'] = get_dist_info()

    seed = opt.get('manual_seed')
    if seed is None:
        seed = random.randint(1, 10000)
        opt['manual_seed'] = seed
    set_random_seed(seed + opt['rank'])

    opt['auto_resume'] = args.auto_resume
    opt['is_train'] = is_train
    if args.debug and not opt['name'].startswith('debug'):
        opt['name'] = 'debug_' + opt['name']
    if opt.get('num_gpu', 'auto') == 'auto':
        opt['num_gpu'] = torch.cuda.device_count()
    _apply_cpu_allocator(opt, args.opt, is_train)

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])

    opt.setdefault('path', {})
    for key, val in opt['path'].items():
        if val is not None and ('resume_state' in key or 'pretrain_network' in key):
            opt['path'][key] = osp.expanduser(val)
    if opt.get('val') is not None:
        opt['val'].setdefault('suffix', None)  # fix 7: SRModel reads opt['val']['suffix'] in test mode
        opt['val'].setdefault('save_img', False)  # read unconditionally by basicsr's pipelines

    if is_train:
        experiments_root = osp.join(root_path, 'experiments', opt['name'])
        opt['path']['experiments_root'] = experiments_root
        opt['path']['models'] = osp.join(experiments_root, 'models')
        opt['path']['training_states'] = osp.join(experiments_root, 'training_states')
        opt['path']['log'] = experiments_root
        opt['path']['visualization'] = osp.join(experiments_root, 'visualization')
        if 'debug' in opt['name']:
            if opt.get('val') is not None:
                opt['val']['val_freq'] = 8
            opt['logger']['print_freq'] = 1
            opt['logger']['save_checkpoint_freq'] = 8
    else:
        results_root = osp.join(root_path, 'results', opt['name'])
        opt['path']['results_root'] = results_root
        opt['path']['log'] = results_root
        opt['path']['visualization'] = osp.join(results_root, 'visualization')
    return opt, args


def apply():
    """Apply every fix once. Safe to call repeatedly."""
    global _applied
    if _applied:
        return
    alias_functional_tensor()
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    basicsr.train.parse_options = parse_options
    basicsr.test.parse_options = parse_options
    basicsr.train.load_resume_state = load_resume_state
    BaseModel.model_to_device = model_to_device
    BaseModel.get_optimizer = get_optimizer
    _applied = True
