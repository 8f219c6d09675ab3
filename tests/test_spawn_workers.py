"""Training with DataLoader workers started by spawn (the default on macOS and Windows).

A spawned worker is a fresh interpreter that inherits the program's name (``basicsr``) and unpickles the dataset,
so it imports ``vlunet_basicsr`` again: that import must register and apply the compat fixes whatever the program
is called, and the unpickled LMDB dataset opens its own environment. This is the process itself under test, so it
runs the real ``basicsr`` command.
"""
from conftest import TINY_VLUNET, lmdb_copy, run_basicsr, write_image_pairs, write_yaml

SPAWN_PLUGIN = '''import multiprocessing
multiprocessing.set_start_method('spawn', force=True)
'''


def test_basicsr_train_with_spawned_dataloader_workers(tmp_path):
    lmdb = lmdb_copy(*write_image_pairs(tmp_path / 'data', count=4, size=(24, 24)), tmp_path / 'lmdb')
    (tmp_path / 'spawn_start.py').write_text(SPAWN_PLUGIN)
    opt = {
        'name': 'spawned', 'model_type': 'VLUNetModel', 'num_gpu': 0, 'manual_seed': 0, 'plugins': ['spawn_start'],
        'datasets': {'train': {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16,
                               'num_worker_per_gpu': 1, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1,
                               'persistent_workers': True,  # one spawned worker, not one per epoch
                               'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': lmdb['gt'],
                                            'dataroot_lq': lmdb['lq'], 'io_backend': {'type': 'lmdb'}}]}},
        'network_g': dict(TINY_VLUNET),
        'network_clip': None, 'path': {},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 2,
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss'}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 100, 'use_tb_logger': False}}
    proc = run_basicsr(['train', '-opt', write_yaml(tmp_path / 'spawn.yml', opt)], tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert 'ModuleNotFoundError' not in output
    assert 'iter:      2' in output or 'iter:2' in output.replace(' ', ''), output[-3000:]
