"""`parse_options`: BasicSR's option parsing, with every check done before anything is built."""
import argparse
import os.path as osp
import random

from vlunet_basicsr.tools.options import checks
from vlunet_basicsr.tools.options import loading


def _apply_cpu_allocator(opt, is_train):
    """Top-level key ``cpu_allocator`` (tuned | system; default tuned for training, system for testing, whose
    whole large images fragment a never-trimmed heap), applied to runs without a GPU."""
    import torch
    from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator
    mode = opt.get('cpu_allocator') or ('tuned' if is_train else 'system')
    opt['cpu_allocator'] = mode
    if opt['num_gpu'] == 0 or not torch.cuda.is_available():
        tune_cpu_allocator(mode)


def check_options(opt, opt_path, is_train):
    """Every check of a loaded option file that needs no process group: types, keys, values, names, paths."""
    checks.check_registered_types(opt, opt_path)
    checks.check_speed_options(opt, opt_path)
    checks.check_declared_options(opt, opt_path, is_train)
    checks.check_required_paths(opt, opt_path)


def parse_options(root_path, opt_path, is_train=True, launcher='none', auto_resume=False, debug=False, force_yml=None):
    """Replacement for ``basicsr.utils.options.parse_options``.

    Takes basicsr's flags as parsed by the command line, and gives the same resulting ``opt`` as basicsr, except
    that ``dist_params`` is honoured for every launcher (fix 2), ``val.suffix`` defaults to None (fix 7), numbers
    such as ``1e-4`` are numbers, the modules listed under the YAML key ``plugins`` are imported (the working
    folder first), and before anything is built every ``type`` is checked against its registry, every key and
    value against the declared options, every name for escaping its folder, and every data and weight path
    for existence (all problems of a kind reported at once). Runs without a GPU get the CPU allocator chosen
    by ``cpu_allocator`` (`vlunet_basicsr.utils.cpu_allocator`).

    Args:
        root_path (str): Where ``experiments/``, ``results/`` and ``tb_logger/`` are created.
        opt_path (str): The option YAML (``-opt``).
        is_train (bool): Training or test mode. Default: True.
        launcher (str): ``none``, ``pytorch`` or ``slurm`` (``--launcher``). Default: 'none'.
        auto_resume (bool): ``--auto_resume``. Default: False.
        debug (bool): ``--debug``. Default: False.
        force_yml (list[str] | None): ``--force_yml`` overrides (``key:sub=value``). Default: None.

    Returns:
        tuple[dict, argparse.Namespace]: Options, and the flags as basicsr's pipelines read them.
    """
    import torch
    from basicsr.utils import set_random_seed
    from basicsr.utils.dist_util import get_dist_info
    from vlunet_basicsr.utils.distributed import init_dist

    args = argparse.Namespace(opt=opt_path, launcher=launcher, auto_resume=auto_resume, debug=debug,
                              force_yml=force_yml)
    opt = loading.load_yaml(args.opt)
    loading.import_plugins(opt.get('plugins'), args.opt)
    if args.force_yml is not None:
        loading.force_values(opt, args.force_yml)
    check_options(opt, args.opt, is_train)

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
    _apply_cpu_allocator(opt, is_train)

    for phase, dataset in opt['datasets'].items():
        dataset['phase'] = phase.split('_')[0]
        if 'scale' in opt:
            dataset['scale'] = opt['scale']
        for key in ('dataroot_gt', 'dataroot_lq'):
            if dataset.get(key) is not None:
                dataset[key] = osp.expanduser(dataset[key])

    if opt.get('path') is None:
        opt['path'] = {}
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
