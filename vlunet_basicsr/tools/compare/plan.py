"""Each system of a compare file as the options of its runs: a training run (optional) and a test run on the
shared test sets, checked like ``basicsr train`` / ``basicsr test`` check them, before anything runs."""
import copy
import os.path as osp
from dataclasses import dataclass

import yaml

from vlunet_basicsr.tools.compare.compare_file import METRICS
from vlunet_basicsr.tools.options.loading import import_plugins, load_yaml

#: Top-level keys of a train YAML that a test run derived from it keeps (besides every ``network_*``).
DERIVED_TEST_KEYS = ('model_type', 'num_gpu', 'manual_seed', 'scale', 'prompts', 'plugins')


@dataclass
class SystemPlan:
    """The runs of one system.

    Attributes:
        name (str): The system's name (its run names too).
        train_opt (dict | None): The training run's options, or None when the system is not trained here.
        train_source (str | None): The train YAML they come from.
        test_opt (dict): The test run's options: the shared test sets and metrics, the weights to test.
        test_source (str): The test YAML they come from (the train YAML when derived from it).
        weights (str | None): The weights tested (None: the test YAML's own ``path.pretrain_network_g``).
        train_here (bool): Whether the training run runs (a train YAML without ``weights`` or ``experiment``).
    """

    name: str
    train_opt: dict
    train_source: str
    test_opt: dict
    test_source: str
    weights: str = None
    train_here: bool = False


def apply_total_iter(train_opt, total):
    """Train ``total`` iterations: ``train.total_iter`` and the scheduler's ``total_iter`` (its ``warmup_iter``
    keeps its share of the schedule); checkpoint and validation frequencies are capped to ``total``."""
    train = train_opt.setdefault('train', {})
    before = train.get('total_iter')
    train['total_iter'] = total
    scheduler = train.get('scheduler') or {}
    if 'total_iter' in scheduler:
        share = scheduler.get('warmup_iter', 0) / (scheduler['total_iter'] or before or total)
        scheduler['total_iter'] = total
        if 'warmup_iter' in scheduler:
            scheduler['warmup_iter'] = min(total - 1, int(round(share * total)))
    logger = train_opt.get('logger') or {}
    if isinstance(logger.get('save_checkpoint_freq'), (int, float)):
        logger['save_checkpoint_freq'] = min(int(logger['save_checkpoint_freq']), total)
    val = train_opt.get('val') or {}
    if isinstance(val.get('val_freq'), (int, float)):
        val['val_freq'] = min(int(val['val_freq']), total)


def derived_test_options(train_opt):
    """Test options from a train YAML: its model, networks, prompts and val settings (``val_freq`` dropped)."""
    test_opt = {key: copy.deepcopy(train_opt[key]) for key in DERIVED_TEST_KEYS if key in train_opt}
    test_opt.update({key: copy.deepcopy(value) for key, value in train_opt.items() if key.startswith('network_')})
    val = copy.deepcopy(train_opt.get('val') or {})
    val.pop('val_freq', None)
    test_opt['val'] = val
    test_opt['path'] = {'strict_load_g': (train_opt.get('path') or {}).get('strict_load_g', True)}
    return test_opt


def plan_system(system, compare_opt, root):
    """The `SystemPlan` of one ``systems`` entry; runs are named after the system and go under ``root``.

    The test run gets the compare file's test sets and the float RGB PSNR/SSIM, saves its images (for the
    grids) and tests the system's weights: ``weights``, the experiment's ``models/net_g_latest.pth``, those its
    training run writes, or else its test YAML's own. For a system with a train YAML, the test run's networks
    (``network_*``, the guidance encoder included) and ``prompts`` are the train YAML's; the test YAML gives the
    rest (e.g. ``val.tile``, ``val.self_ensemble``).
    """
    name = system['name']
    train_opt = weights = param_key = None
    train_here = bool(system.get('train')) and not (system.get('weights') or system.get('experiment'))
    if system.get('train'):
        train_opt = load_yaml(system['train'])
        train_opt['name'] = name
        if compare_opt.get('total_iter') and train_here:
            apply_total_iter(train_opt, compare_opt['total_iter'])
        param_key = 'params_ema' if ((train_opt.get('train') or {}).get('ema_decay') or 0) > 0 else 'params'
    if train_here:
        weights = osp.join(root, 'experiments', name, 'models', 'net_g_latest.pth')
    elif system.get('weights'):
        weights = system['weights']
    elif system.get('experiment'):
        weights = osp.join(system['experiment'], 'models', 'net_g_latest.pth')
    test_source = system.get('test') or system['train']
    test_opt = load_yaml(system['test']) if system.get('test') else derived_test_options(train_opt)
    if train_opt is not None:  # the system tested is the one trained: its networks (guidance too) and prompts
        for key in [k for k in test_opt if k.startswith('network_') or k == 'prompts']:
            del test_opt[key]
        test_opt.update({key: copy.deepcopy(value) for key, value in train_opt.items()
                         if key.startswith('network_') or key == 'prompts'})
    test_opt['name'] = name
    test_opt['datasets'] = copy.deepcopy(compare_opt['datasets'])
    val = test_opt.get('val') or {}
    test_opt['val'] = val
    val.update(metrics=copy.deepcopy(METRICS), save_img=True, suffix=None)
    path = test_opt.get('path') or {}
    test_opt['path'] = path
    if weights is not None:
        path['pretrain_network_g'] = osp.abspath(weights)
    if param_key is not None:
        path['param_key_g'] = param_key
    return SystemPlan(name, train_opt, system.get('train'), test_opt, test_source, weights, train_here)


def check_plan(plan):
    """Check both runs' options as ``basicsr train`` / ``basicsr test`` would (weights to be trained here are
    not checked for existence); raises with the YAML file and the keys."""
    from vlunet_basicsr.tools.options.pipeline import check_options
    if plan.train_opt is not None:
        import_plugins(plan.train_opt.get('plugins'), plan.train_source)
        check_options(copy.deepcopy(plan.train_opt), plan.train_source, is_train=True)
    test_opt = copy.deepcopy(plan.test_opt)
    import_plugins(test_opt.get('plugins'), plan.test_source)
    if plan.train_here:
        test_opt['path'].pop('pretrain_network_g')  # written by the training run
    check_options(test_opt, plan.test_source, is_train=False)


def write_options(opt, path):
    """Write run options as a YAML file (the file the run is started with)."""
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return path
