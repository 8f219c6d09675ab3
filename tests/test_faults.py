"""Fault injection: bad data, interrupted saves, truncated states, non-finite losses, unsafe pickles, YAML typos."""
import glob
import logging
import os
import os.path as osp
import signal
import sys
import time

import cv2
import lmdb
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from basicsr.models import build_model
from conftest import TINY_VLUNET, fresh_fork_context, lmdb_copy, run_cli, write_image_pairs, write_yaml
from vlunet_basicsr.tools import options
from vlunet_basicsr.utils import resume
from vlunet_basicsr.data.image_source import decode_image
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, atomic_torch_save


class _Records(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@pytest.fixture
def basicsr_log():
    """Records of the 'basicsr' logger (it does not propagate to the root logger, so caplog misses them)."""
    handler = _Records()
    logger = logging.getLogger('basicsr')
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)
    logger.setLevel(old_level)


def _mixed(gt, lq, io=None, **extra):
    return {'name': 'mix', 'type': 'MixedDegradationDataset', 'phase': 'train', 'gt_size': 16,
            'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq,
                         'io_backend': io or {'type': 'disk'}}], **extra}


def test_corrupt_png_in_a_folder_is_named_or_skipped(tmp_path, basicsr_log):
    gt, lq = write_image_pairs(tmp_path, count=4)
    with open(osp.join(gt, 'img01.png'), 'r+b') as f:
        f.truncate(40)  # a truncated file
    with pytest.raises(ValueError, match=r'sources\[0\] \(derain\): cannot decode image .*img01.png'):
        build_dataset(_mixed(gt, lq))[1]
    dataset = build_dataset(_mixed(gt, lq, skip_bad_samples=True))
    samples = [dataset[i] for i in range(len(dataset))]  # one whole epoch on this rank
    dataset[1]  # the same bad image again: not logged twice
    assert samples[1]['gt_path'].endswith('img02.png')  # the next good sample replaces it
    messages = [r.getMessage() for r in basicsr_log]
    warnings = [m for m in messages if 'skipping a bad sample' in m]
    assert len(warnings) == 1 and 'img01.png' in warnings[0]
    assert any('epoch 1 done on this rank; 1 bad samples skipped' in m for m in messages)


def test_corrupt_image_and_mismatched_keys_in_lmdb(tmp_path):
    roots = lmdb_copy(*write_image_pairs(tmp_path / 'd', count=3), tmp_path / 'l')
    env = lmdb.open(roots['lq'], map_size=1 << 30)
    with env.begin(write=True) as txn:
        txn.put(b'img02', b'garbage, not a png')
    env.close()
    dataset = build_dataset(_mixed(roots['gt'], roots['lq'], {'type': 'lmdb'}))
    with pytest.raises(ValueError, match=r'\(derain\): cannot decode image img02'):
        dataset[2]
    with open(osp.join(roots['lq'], 'meta_info.txt'), 'a') as f:
        f.write('extra.png (32,32,3) 1\n')
    with pytest.raises(ValueError, match=r"GT and LQ LMDB keys differ: .* 1 LQ keys have no GT \(e.g. \['extra'\]\)"):
        build_dataset(_mixed(roots['gt'], roots['lq'], {'type': 'lmdb'}))


def test_empty_source_and_odd_image_kinds_are_handled(tmp_path):
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=r'\(noise\): no images found in .*empty'):
        build_dataset({'name': 'n', 'type': 'PairedDegradationDataset', 'dataroot_gt': str(tmp_path / 'empty'),
                       'noise_sigma': 15, 'label': 0, 'phase': 'val'} | {'name': 'noise'})
    for name, image in (('gray', np.full((8, 8), 200, np.uint8)), ('rgba', np.full((8, 8, 4), 100, np.uint8)),
                        ('deep', np.full((8, 8, 3), 65535, np.uint16))):
        ok, encoded = cv2.imencode('.png', image)
        rgb = decode_image(encoded.tobytes(), name)
        assert rgb.shape == (8, 8, 3) and rgb.dtype == np.float32 and 0 < rgb.max() <= 1


def test_atomic_save_leaves_the_previous_file_when_the_disk_fills(tmp_path, monkeypatch):
    target = tmp_path / 'net_g_1.pth'
    atomic_torch_save({'params': {'w': torch.ones(3)}}, str(target))

    def full_disk(obj, f, *args, **kwargs):
        f.write(b'partial bytes')
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(torch, 'save', full_disk)
    with pytest.raises(OSError, match='No space left'):
        atomic_torch_save({'params': {'w': torch.zeros(3)}}, str(target))
    monkeypatch.undo()
    assert torch.equal(torch.load(target, weights_only=True)['params']['w'], torch.ones(3))
    assert os.listdir(tmp_path) == ['net_g_1.pth']  # no temporary file left behind


def test_truncated_state_is_reported_and_the_previous_one_used(tmp_path, capsys):
    exp = tmp_path / 'experiments' / 'run'
    for folder in ('models', 'training_states'):
        (exp / folder).mkdir(parents=True)
    for iteration in (2, 4):
        torch.save({'params': {}}, exp / 'models' / f'net_g_{iteration}.pth')
        torch.save({'epoch': 0, 'iter': iteration, 'optimizers': [], 'schedulers': []},
                   exp / 'training_states' / f'{iteration}.state')
    with open(exp / 'training_states' / '4.state', 'r+b') as f:
        f.truncate(10)
    opt = {'name': 'run', 'num_gpu': 0, 'auto_resume': True, 'network_g': {},
           'path': {'training_states': str(exp / 'training_states'), 'models': str(exp / 'models')}}
    state = resume.load_resume_state(opt)
    assert state['iter'] == 2 and opt['path']['resume_state'].endswith('2.state')
    assert '4.state' in capsys.readouterr().err


def _train_opt(tmp_path, gt, lq, name, total_iter, **train):
    return {'name': name, 'model_type': 'VLUNetModel', 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {'train': {**_mixed(gt, lq), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}},
            'network_g': dict(TINY_VLUNET), 'network_clip': None, 'path': {},
            'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': total_iter,
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                      'pixel_opt': {'type': 'L1Loss'}, **train},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False}}


def _train_and_exit(opt_path, cwd):
    """``basicsr train -opt OPT_PATH`` in ``cwd``: its output in killed_run.log there, its exit code the process's."""
    proc = run_cli(['train', '-opt', opt_path], cwd)
    (cwd / 'killed_run.log').write_text(proc.stdout + proc.stderr)
    sys.exit(proc.returncode)


def test_sigkill_during_training_then_auto_resume_finishes(tmp_path):
    """The run to kill is a process (SIGKILL is what is tested), of `fresh_fork_context`; the resumed run is in this
    one."""
    gt, lq = write_image_pairs(tmp_path / 'data', count=4)
    opt_path = write_yaml(tmp_path / 'kill.yml', _train_opt(tmp_path, gt, lq, 'kill', 16))
    exp = tmp_path / 'experiments' / 'kill'
    proc = fresh_fork_context().Process(target=_train_and_exit, args=(opt_path, tmp_path))
    proc.start()
    deadline, killed_during_save = time.time() + 120, False
    while time.time() < deadline and proc.is_alive():
        temporaries = glob.glob(str(exp / '*' / '*.tmp*'))
        states = glob.glob(str(exp / 'training_states' / '*.state'))
        if temporaries or len(states) >= 5:
            killed_during_save = bool(temporaries)
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.001)
    proc.join(timeout=60)
    log = tmp_path / 'killed_run.log'
    assert proc.exitcode == -signal.SIGKILL, ('the run ended before it could be killed:\n' +
                                              (log.read_text()[-3000:] if log.exists() else ''))
    resumed = run_cli(['train', '-opt', opt_path, '--auto_resume'], cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert (exp / 'training_states' / '16.state').is_file() and (exp / 'models' / 'net_g_16.pth').is_file()
    assert torch.load(exp / 'training_states' / '16.state', weights_only=True)['iter'] == 16
    assert not glob.glob(str(exp / 'training_states' / '1[7-9].state'))  # exactly total_iter iterations
    print('killed during a save' if killed_during_save else 'killed between saves')


def test_non_finite_loss_skips_the_step_then_stops_with_a_saved_state(tmp_path, basicsr_log):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(tmp_path, gt, lq, 'nan', 10, max_nonfinite_steps=2)
    opt.update(is_train=True, dist=False, rank=0, world_size=1)
    exp = tmp_path / 'exp'
    opt['path'] = {'models': str(exp / 'models'), 'training_states': str(exp / 'training_states')}
    for folder in opt['path'].values():
        os.makedirs(folder)
    model = build_model(opt)
    before = [p.detach().clone() for p in model.net_g.parameters()]
    bad = {'lq': torch.full((1, 3, 16, 16), float('nan')), 'gt': torch.rand(1, 3, 16, 16), 'lq_path': ['bad.png']}
    model.feed_data(bad)
    model.optimize_parameters(5)
    assert all(torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))  # step skipped
    assert any('non-finite loss' in r.getMessage() and 'bad.png' in r.getMessage() for r in basicsr_log)
    model.feed_data(bad)
    with pytest.raises(RuntimeError, match='2 non-finite losses in a row'):
        model.optimize_parameters(6)
    assert (exp / 'training_states' / '6.state').is_file() and (exp / 'models' / 'net_g_6.pth').is_file()


class _RunsCode:
    def __reduce__(self):
        return (os.system, ('touch pwned_marker',))


def test_weights_that_need_unpickling_are_refused_unless_trusted(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    torch.save({'params': _RunsCode()}, tmp_path / 'evil.pth')
    opt = {'model_type': 'VLUNetModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'network_g': dict(TINY_VLUNET),
           'network_clip': None, 'path': {'pretrain_network_g': str(tmp_path / 'evil.pth')}}
    with pytest.raises(CheckpointFormatError, match='evil.pth needs arbitrary unpickling.*path.trust_checkpoint'):
        build_model(opt)
    assert not (tmp_path / 'pwned_marker').exists()
    from argparse import Namespace
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    net = VLUNet(**{k: v for k, v in TINY_VLUNET.items() if k != 'type'})
    torch.save({'params': net.state_dict(), 'meta': Namespace(note='harmless')}, tmp_path / 'trusted.pth')
    opt['path'] = {'pretrain_network_g': str(tmp_path / 'trusted.pth'), 'trust_checkpoint': True}
    model = build_model(opt)
    assert torch.equal(model.net_g.output.weight, net.output.weight)


def test_a_training_state_that_needs_unpickling_resumes_only_when_trusted(tmp_path):
    from argparse import Namespace
    states, models = tmp_path / 'training_states', tmp_path / 'models'
    states.mkdir()
    models.mkdir()
    torch.save({'epoch': 0, 'iter': 4, 'meta': Namespace(note='harmless')}, states / '4.state')
    torch.save({'params': {}}, models / 'net_g_4.pth')
    for auto_resume in (False, True):
        opt = {'num_gpu': 0, 'auto_resume': auto_resume, 'network_g': {}, 'path': {
            'resume_state': None if auto_resume else str(states / '4.state'), 'training_states': str(states),
            'models': str(models)}}
        if auto_resume:  # a state it cannot load is passed over (it says why), as a broken one is
            assert resume.load_resume_state(opt) is None
        else:
            needs_trust = '4.state needs arbitrary unpickling.*path.trust_checkpoint'
            with pytest.raises(CheckpointFormatError, match=needs_trust):
                resume.load_resume_state(opt)
        opt['path']['trust_checkpoint'] = True
        assert resume.load_resume_state(opt)['meta'].note == 'harmless'


def test_yaml_typos_name_the_closest_key(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(tmp_path, gt, lq, 'typo', 2)
    opt['network_g']['dimm'] = 16
    opt['datasets']['train']['sources'][0]['noise_sigam'] = 15
    opt['datasets']['train']['gt_szie'] = 16
    opt['train']['contrastive_opt'] = {'type': 'DegradationContrastiveLoss', 'temprature': 0.1}
    with pytest.raises(ValueError) as info:
        options.parse_options(str(tmp_path), write_yaml(tmp_path / 't.yml', opt))
    message = str(info.value)
    assert "network_g: unknown option 'dimm' for VLUNet. Did you mean 'dim'?" in message
    assert ("datasets.train.sources[0]: unknown option 'noise_sigam' for a source. "
            "Did you mean 'noise_sigma'?") in message
    assert "datasets.train: unknown option 'gt_szie' for MixedDegradationDataset. Did you mean 'gt_size'?" in message
    assert "Did you mean 'temperature'?" in message


def test_missing_paths_are_reported_all_at_once(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(tmp_path, str(tmp_path / 'no_gt'), lq, 'paths', 2)
    opt['datasets']['train']['sources'][0]['dataroot_lq'] = str(tmp_path / 'no_lq')
    opt['network_clip'] = {'type': 'DegradationCLIP', 'adapter_path': str(tmp_path / 'no_adapter.pth')}
    opt['path'] = {'pretrain_network_g': str(tmp_path / 'no_net.pth')}
    with pytest.raises(FileNotFoundError) as info:
        options.parse_options(str(tmp_path), write_yaml(tmp_path / 'p.yml', opt))
    message = str(info.value)
    assert '4 path(s) do not exist' in message
    for piece in ('datasets.train.sources[0].dataroot_gt', 'dataroot_lq', 'network_clip.adapter_path',
                  'path.pretrain_network_g'):
        assert piece in message
