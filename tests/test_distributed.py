"""torch.distributed on CPU (gloo, 2 processes): ``basicsr train --launcher pytorch`` on two ranks and its
auto-resume under torchrun; in one start of two ranks, DDP step equivalence, sharded validation, VL-UR's
degradation-type report gathered from the ranks, and BasicSR's sampler on a mixed LMDB set."""
import csv
import glob
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest
import torch
from torch.utils.data import DataLoader

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataloader, build_dataset
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.models import build_model
from conftest import (TINY_CLIP_NET, TINY_VLUNET, TINY_VLUR, degradation_datasets, free_port, lmdb_copy,
                      run_cli, run_on_ranks, write_image_pairs, write_yaml)
from vlunet_basicsr.models.degradation_report import CSV_COLUMNS

TESTS = osp.dirname(osp.abspath(__file__))


def _torchrun(args, cwd):
    """Two ranks started by torchrun: multi-process DDP is what is tested."""
    torchrun = shutil.which('torchrun', path=osp.dirname(sys.executable))
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=TESTS, PYTHONUNBUFFERED='1')
    return subprocess.run([torchrun, '--nproc_per_node=2', f'--master_port={free_port()}', *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)


def _train_as_torchrun_starts_it(rank, world_size, port, args, cwd, queue):
    """``basicsr train ARGS`` on one rank, with the environment torchrun gives its ranks."""
    env = {'RANK': rank, 'LOCAL_RANK': rank, 'WORLD_SIZE': world_size, 'LOCAL_WORLD_SIZE': world_size,
           'MASTER_ADDR': '127.0.0.1', 'MASTER_PORT': port}
    queue.put((rank, run_cli(['train', *args], cwd, env_extra=env)))


def test_ddp_training_keeps_ranks_identical_then_torchrun_resumes_it(tmp_path):
    """The training runs on two ranks of `run_on_ranks`, with the environment torchrun gives them; its auto-resume
    under the real torchrun."""
    gt, lq = write_image_pairs(tmp_path / 'data', count=5)
    opt = {'name': 'ddp', 'model_type': 'RankWeightsVLUNetModel', 'plugins': ['rank_weights_plugin'],
           'num_gpu': 0, 'manual_seed': 0, 'datasets': degradation_datasets(gt, lq, workers=1),
           'network_g': dict(TINY_VLUNET), 'network_clip': dict(TINY_CLIP_NET), 'path': {},
           'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 4,
                     'scheduler': {'type': 'LinearWarmupCosineLR', 'warmup_iter': 1, 'total_iter': 6},
                     'pixel_opt': {'type': 'L1Loss'}},
           'val': {'val_freq': 2, 'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr_float'}}},
           'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
           'dist_params': {'backend': 'gloo'}}
    opt_path = write_yaml(tmp_path / 'ddp.yml', opt)
    results = run_on_ranks(_train_as_torchrun_starts_it, ['-opt', opt_path, '--launcher', 'pytorch'], str(tmp_path))
    assert all(proc.returncode == 0 for proc in results.values()), [p.stderr[-3000:] for p in results.values()]
    exp = tmp_path / 'experiments' / 'ddp'
    first, second = (torch.load(exp / f'rank{r}_final.pth', weights_only=True) for r in (0, 1))
    assert all(torch.equal(first[k], second[k]) for k in first)
    log = '\n'.join(open(p).read() for p in glob.glob(str(exp / '*.log')))
    assert 'World size (gpu number): 2' in log and 'Average over 2 sets' in log
    # sharded validation: each image saved once, by the rank that restored it
    assert len(glob.glob(str(exp / 'visualization' / '*' / '*_4.png'))) == 5
    assert len(glob.glob(str(tmp_path / 'tb_logger' / 'ddp' / 'events.*'))) == 1  # rank 0 only

    proc = _torchrun(['-m', 'vlunet_basicsr.train', '-opt', opt_path, '--launcher', 'pytorch', '--auto_resume',
                      '--force_yml', 'train:total_iter=6'], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = '\n'.join(open(p).read() for p in glob.glob(str(exp / '*.log')))
    assert 'Resuming training from epoch' in log and 'iter: 4.' in log
    assert (exp / 'models' / 'net_g_6.pth').is_file()
    first, second = (torch.load(exp / f'rank{r}_final.pth', weights_only=True) for r in (0, 1))
    assert all(torch.equal(first[k], second[k]) for k in first)


def _model_opt(rank, world_size, dist):
    return {'model_type': 'VLUNetModel', 'num_gpu': 0, 'is_train': True, 'dist': dist, 'rank': rank,
            'world_size': world_size, 'name': 'x', 'network_g': dict(TINY_VLUNET), 'network_clip': dict(TINY_CLIP_NET),
            'path': {'pretrain_network_g': None, 'visualization': None},
            'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3},
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                      'pixel_opt': {'type': 'L1Loss'}},
            'val': {'metrics': {'psnr': {'type': 'calculate_psnr_float'}, 'ssim': {'type': 'calculate_ssim_float'},
                                'psnr8': {'type': 'calculate_psnr', 'crop_border': 0}}}}


def _batch():
    generator = torch.Generator().manual_seed(1)
    return torch.rand(4, 3, 24, 24, generator=generator), torch.rand(4, 3, 24, 24, generator=generator)


def _step(rank, world_size, _):
    """One DDP step on this rank's half of `_batch`: the weights after it."""
    model = build_model(_model_opt(rank, world_size, True))
    lq, gt = _batch()
    half = slice(2 * rank, 2 * rank + 2)
    model.feed_data({'lq': lq[half], 'gt': gt[half]})
    model.optimize_parameters(1)
    # numpy arrays travel by value (tensors would need this process alive to share their memory)
    return {k: v.detach().numpy().copy() for k, v in model.get_bare_model(model.net_g).state_dict().items()}


def _validate(rank, world_size, args):
    """Sharded validation: the metrics (rank 0) and the number of images this rank restored."""
    dataset_opt, folder = args
    model = build_model(_model_opt(rank, world_size, True))
    model.opt['path']['visualization'] = folder
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=True)
    model.validation(loader, 7, None, save_img=True)
    return model.metric_results if rank == 0 else None, model.validated_images


def _sample(rank, world_size, dataset_opt):
    """BasicSR's sampler on a mixed LMDB set: this rank's indices and the samples its DataLoader workers read.

    The workers are forked, as torchrun's ranks fork theirs on Linux; each opens its own LMDB. Spawned workers on
    LMDB: `test_spawn_workers.py`."""
    dataset = build_dataset(dataset_opt)
    sampler = EnlargedSampler(dataset, world_size, rank, ratio=1)
    sampler.set_epoch(0)
    loader = DataLoader(dataset, batch_size=2, sampler=sampler, num_workers=2, multiprocessing_context='fork')
    seen = [(source, path) for batch in loader for source, path in zip(batch['source'], batch['gt_path'])]
    return list(sampler), seen


def _degradation_types(rank, world_size, args):
    """Test-mode validation of a tiny VL-UR with predicted types (sharded when ``world_size`` > 1): the summary of
    the degradation types (rank 0's; None on the others)."""
    dataset_opt, results = args
    model = build_model({'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'is_train': False,
                         'dist': world_size > 1, 'rank': rank, 'world_size': world_size, 'name': 'shards',
                         'network_g': dict(TINY_VLUR), 'network_clip': dict(TINY_CLIP_NET),
                         'path': {'pretrain_network_g': None, 'results_root': results}, 'val': {}})
    loader = build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=world_size > 1)
    model.validation(loader, 0, None, save_img=False)
    return getattr(model, 'degradation_types', None)


TASKS = {'step': _step, 'validate': _validate, 'degradation_types': _degradation_types, 'sample': _sample}


def _worker(rank, world_size, port, tasks, queue):
    """Every task of ``tasks`` ({name: arguments}) on this rank of one gloo group."""
    torch.distributed.init_process_group('gloo', init_method=f'tcp://127.0.0.1:{port}', rank=rank,
                                         world_size=world_size)
    results = {}
    for name, args in tasks.items():
        torch.manual_seed(0)
        results[name] = TASKS[name](rank, world_size, args)
    queue.put((rank, results))
    torch.distributed.barrier()
    torch.distributed.destroy_process_group()


@pytest.fixture(scope='module')
def two_ranks(tmp_path_factory):
    """One start of two gloo ranks (`run_on_ranks`) for the in-process DDP checks below. Returns ({rank: {task:
    result}}, the tasks' inputs)."""
    root = tmp_path_factory.mktemp('ranks')
    gt, lq = write_image_pairs(root / 'val', count=5, size=(24, 28))
    validation = {'name': 'shard', 'type': 'PairedDegradationDataset', 'phase': 'val', 'label': 4,
                  'dataroot_gt': gt, 'dataroot_lq': lq}
    lmdb = lmdb_copy(*write_image_pairs(root / 'disk', count=5, size=(40, 36)), root / 'lmdb')
    io = {'type': 'lmdb'}
    mixed = {'name': 'mix', 'type': 'MixedDegradationDataset', 'phase': 'train', 'gt_size': 16, 'sources': [
        {'name': 'derain', 'label': 4, 'dataroot_gt': lmdb['gt'], 'dataroot_lq': lmdb['lq'], 'io_backend': io,
         'repeat': 2},
        # 20 samples in all: divisible by the world size, so the sampler adds no padding
        {'name': 'denoise_25', 'label': 1, 'dataroot_gt': lmdb['gt'], 'noise_sigma': 25, 'io_backend': io,
         'repeat': 2}]}
    tasks = {'step': None, 'validate': (validation, str(root / 'dist')),
             'degradation_types': (validation, str(root / 'reports')), 'sample': mixed}
    return run_on_ranks(_worker, tasks), tasks


def test_one_ddp_step_equals_one_step_on_the_concatenated_batch(two_ranks):
    results = {rank: result['step'] for rank, result in two_ranks[0].items()}
    torch.manual_seed(0)
    single = build_model(_model_opt(0, 1, False))
    lq, gt = _batch()
    single.feed_data({'lq': lq, 'gt': gt})
    single.optimize_parameters(1)
    reference = single.net_g.state_dict()
    for rank in (0, 1):
        worst = max((torch.from_numpy(results[rank][k]) - reference[k]).abs().max().item() for k in reference)
        assert worst < 1e-5, (rank, worst)


def test_sharded_validation_equals_single_process(two_ranks, tmp_path):
    results = {rank: result['validate'] for rank, result in two_ranks[0].items()}
    dataset_opt, folder = two_ranks[1]['validate']
    torch.manual_seed(0)
    single = build_model(_model_opt(0, 1, False))
    single.opt['path']['visualization'] = str(tmp_path / 'single')
    single.validation(build_dataloader(build_dataset(dataset_opt), dataset_opt, num_gpu=0, dist=False), 7, None, True)
    metrics, count = results[0]
    assert count == results[1][1] == single.validated_images == 5
    for name, value in single.metric_results.items():
        assert metrics[name] == pytest.approx(value, abs=1e-6), name
    saved = sorted(osp.basename(p) for p in glob.glob(osp.join(folder, '*', '*.png')))
    assert saved == sorted(f'img{i:02d}_7.png' for i in range(5))  # every image restored once


def _report_rows(folder):
    with open(osp.join(folder, 'degradation_types_shard.csv'), newline='') as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def test_sharded_degradation_type_reports_gather_every_rank_in_the_sets_order(two_ranks, tmp_path):
    summaries = {rank: result['degradation_types'] for rank, result in two_ranks[0].items()}
    dataset_opt, folder = two_ranks[1]['degradation_types']
    torch.manual_seed(0)
    expected = _degradation_types(0, 1, (dataset_opt, str(tmp_path / 'single')))
    assert summaries[1] is None and summaries[0]['images'] == expected['images'] == 5  # rank 0 reports
    assert summaries[0]['predicted'] == expected['predicted']
    assert summaries[0]['mean_confidence'] == pytest.approx(expected['mean_confidence'], abs=1e-6)
    rows, reference = _report_rows(folder), _report_rows(tmp_path / 'single')
    assert [row['image'] for row in rows] == [f'img{i:02d}' for i in range(5)]  # the set's order, each image once
    for row, expected_row in zip(rows, reference):
        assert {k: v for k, v in row.items() if k != 'confidence'} == \
            {k: v for k, v in expected_row.items() if k != 'confidence'}
        assert float(row['confidence']) == pytest.approx(float(expected_row['confidence']), abs=1e-5)


def test_two_ddp_ranks_get_disjoint_indices(two_ranks):
    (first, first_seen), (second, second_seen) = (two_ranks[0][rank]['sample'] for rank in (0, 1))
    assert not set(first) & set(second)
    assert sorted(first + second) == list(range(20))
    assert len(first_seen) == len(first) and len(second_seen) == len(second)
