"""The `basicsr` command end to end on CPU: train with validation, checkpoints and tensorboard, auto-resume,
test, plugins from YAML and from entry points, and clear errors for wrong types."""
import glob
import os.path as osp

import pytest

from conftest import run_cli, run_code_in_a_fork, write_yaml
from vlunet_basicsr.tools import options


def _train_opt(gt, lq, name='tiny', total_iter=4, arch=None, extra=None):
    opt = {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {
            'train': {'name': 'tiny_train', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
                      'io_backend': {'type': 'disk'}, 'gt_size': 16, 'use_hflip': True, 'use_rot': True,
                      'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1},
            'val': {'name': 'tiny_val', 'type': 'PairedImageDataset', 'dataroot_gt': gt, 'dataroot_lq': lq,
                    'io_backend': {'type': 'disk'}},
        },
        'network_g': arch or {'type': 'SRVGGNetCompact', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8,
                              'num_conv': 2, 'upscale': 1, 'act_type': 'prelu'},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3, 'weight_decay': 0.0, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                  'total_iter': total_iter, 'warmup_iter': -1,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}},
        'val': {'val_freq': 2, 'save_img': True,
                'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
        'dist_params': {'backend': 'gloo'},
    }
    opt.update(extra or {})
    return opt


def _log_text(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def test_help_lists_subcommands(tmp_path):
    proc = run_cli(['--help'], cwd=tmp_path)
    assert proc.returncode == 0
    assert 'train' in proc.stdout and 'test' in proc.stdout
    proc = run_cli(['train', '--help'], cwd=tmp_path)
    assert proc.returncode == 0 and '--auto_resume' in proc.stdout and '--launcher' in proc.stdout


_FREEZE = """
import gc
from vlunet_basicsr_cli import console_main, main
assert main(['--help']) == 0 and gc.get_freeze_count() == 0, gc.get_freeze_count()
assert console_main(['--help']) == 0 and gc.get_freeze_count() > 0
"""


def test_the_program_freezes_what_is_alive_when_its_command_ends():
    """`console_main` (the console script, python -m) freezes the objects alive when the command ends, so that the
    interpreter's last collection does not walk them; `main`, for callers that go on running, freezes nothing."""
    proc = run_code_in_a_fork(_FREEZE)  # a process whose collector nothing froze yet
    assert proc.returncode == 0, proc.stderr


_TOOL_PROCESSES_FREEZE = """
import gc, runpy, sys
import vlunet_basicsr.tools.benchmark.command as benchmark
import vlunet_basicsr.tools.pipelines as pipelines
ran = []
pipelines.run = lambda command, opt, root_path: ran.append((command, opt, root_path))
sys.argv = ['pipeline_run', 'ROOT', 'train', 'OPT']
runpy.run_module('vlunet_basicsr.tools.compare.pipeline_run', run_name='__main__')
assert ran == [('train', 'OPT', 'ROOT')] and gc.get_freeze_count() > 0
gc.unfreeze()
benchmark.main = lambda: 3
try:
    runpy.run_module('vlunet_basicsr.tools.benchmark', run_name='__main__')
except SystemExit as exited:
    assert exited.code == 3 and gc.get_freeze_count() > 0
else:
    raise AssertionError('python -m vlunet_basicsr.tools.benchmark did not exit')
"""


def test_the_tools_own_processes_freeze_what_is_alive_when_they_end():
    """The processes the tools start for themselves (a compare stage, the benchmark's per-arch runs) end as
    `console_main` does: frozen, after their work, keeping its exit code."""
    proc = run_code_in_a_fork(_TOOL_PROCESSES_FREEZE)
    assert proc.returncode == 0, proc.stderr


def test_train_resume_and_test_through_the_command(tmp_path, image_pairs):
    gt, lq = image_pairs
    work = tmp_path / 'work'
    work.mkdir()
    opt_path = write_yaml(tmp_path / 'train.yml', _train_opt(gt, lq))
    proc = run_cli(['train', '-opt', opt_path], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    exp = work / 'experiments' / 'tiny'
    assert (exp / 'models' / 'net_g_2.pth').is_file() and (exp / 'models' / 'net_g_4.pth').is_file()
    assert (exp / 'training_states' / '4.state').is_file()
    assert glob.glob(str(work / 'tb_logger' / 'tiny' / 'events.out.tfevents.*'))
    log = _log_text(exp)
    assert 'Validation tiny_val' in log and '# psnr:' in log

    # --auto_resume continues from iteration 4 up to the new total.
    proc = run_cli(['train', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:total_iter=6'], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Resuming training from epoch' in _log_text(exp) and 'iter: 4.' in _log_text(exp)
    assert (exp / 'models' / 'net_g_6.pth').is_file()

    test_opt = {
        'name': 'tiny_test', 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0,
        'datasets': {'test_1': {'name': 'tiny_set', 'type': 'PairedImageDataset', 'dataroot_gt': gt,
                                'dataroot_lq': lq, 'io_backend': {'type': 'disk'}}},
        'network_g': _train_opt(gt, lq)['network_g'],
        'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'strict_load_g': True},
        'val': {'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0}}},
    }  # no val.suffix: basicsr 1.4.2 raises KeyError here without compat fix 7
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'test.yml', test_opt)], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = work / 'results' / 'tiny_test'
    assert len(glob.glob(str(results / 'visualization' / 'tiny_set' / '*.png'))) == 4
    assert '# psnr:' in _log_text(results)


_PLUGIN_MODULE = '''
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class {name}(nn.Module):
    def __init__(self, channels=3):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x):
        return x + self.conv(x)
'''


def _train_with_plugin_arch(tmp_path, image_pairs, arch_name, site, extra=None):
    """Train 2 iterations with an arch that only a plugin registers; return the run's log."""
    gt, lq = image_pairs
    opt = _train_opt(gt, lq, name=arch_name, total_iter=2, arch={'type': arch_name}, extra=extra)
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / f'{arch_name}.yml', opt)], cwd=tmp_path,
                   env_extra={'PYTHONPATH': str(site)})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return _log_text(tmp_path / 'experiments' / arch_name)


def test_yaml_plugins_register_user_archs(tmp_path, image_pairs):
    plugin_dir = tmp_path / 'plugins'
    plugin_dir.mkdir()
    (plugin_dir / 'my_lab_archs.py').write_text(_PLUGIN_MODULE.format(name='MyLabNet'))
    log = _train_with_plugin_arch(tmp_path, image_pairs, 'MyLabNet', plugin_dir, {'plugins': ['my_lab_archs']})
    assert 'Network [MyLabNet] is created.' in log


def test_entry_point_plugins_are_imported(tmp_path, image_pairs):
    site = tmp_path / 'site'
    dist_info = site / 'lab_plugin-0.1.dist-info'
    dist_info.mkdir(parents=True)
    (dist_info / 'METADATA').write_text('Metadata-Version: 2.1\nName: lab-plugin\nVersion: 0.1\n')
    (dist_info / 'entry_points.txt').write_text('[basicsr.plugins]\nlab = lab_plugin_archs\n')
    (site / 'lab_plugin_archs.py').write_text(_PLUGIN_MODULE.format(name='EntryPointNet'))
    log = _train_with_plugin_arch(tmp_path, image_pairs, 'EntryPointNet', site)
    assert 'Network [EntryPointNet] is created.' in log


def test_wrong_type_lists_registered_names(tmp_path, image_pairs):
    gt, lq = image_pairs
    opt = _train_opt(gt, lq, arch={'type': 'VLUNett'})
    opt['datasets']['train']['type'] = 'PairedImageDatset'
    opt_path = write_yaml(tmp_path / 'bad.yml', opt)
    with pytest.raises(ValueError) as info:
        options.parse_options(str(tmp_path), opt_path)
    message = str(info.value)
    assert opt_path in message
    assert "network_g.type: 'VLUNett'" in message and "Did you mean 'VLUNet'?" in message
    assert 'SRVGGNetCompact' in message  # the registered names are listed
    assert "datasets.train.type: 'PairedImageDatset'" in message and "'PairedImageDataset'" in message


def test_bad_plugin_module_names_the_file(tmp_path, image_pairs):
    gt, lq = image_pairs
    opt_path = write_yaml(tmp_path / 'p.yml', _train_opt(gt, lq, extra={'plugins': ['no_such_lab_module']}))
    with pytest.raises(ImportError, match=r"p\.yml: plugins: cannot import module 'no_such_lab_module'"):
        options.parse_options(str(tmp_path), opt_path)


def test_missing_option_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match='nope.yml'):
        options.parse_options(str(tmp_path), str(tmp_path / 'nope.yml'))
