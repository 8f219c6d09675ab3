"""VLUNetModel, the float-protocol metrics, the warm-up + cosine schedule and tiled restoration."""
import glob
import os.path as osp
import re
import textwrap

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

import vlunet_basicsr  # noqa: F401
from basicsr.metrics import calculate_metric
from basicsr.models import build_model
from basicsr.utils.registry import METRIC_REGISTRY
from conftest import (TINY_CLIP_NET, TINY_VLUNET, lmdb_copy, run_cli, run_code_in_a_fork, write_image_pairs,
                      write_yaml)
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.models.lr_scheduler import LinearWarmupCosineLR
from vlunet_basicsr.utils.restore_util import restore_image
from vlunet_basicsr.utils.tiling import tile_layout, tiled_restore


def test_float_metrics_equal_skimage_on_known_arrays():
    rng = np.random.default_rng(0)
    gt = rng.random((20, 24, 3)).astype(np.float32)
    out = np.clip(gt + rng.normal(0, 0.05, gt.shape), -0.2, 1.2).astype(np.float32)
    clipped = np.clip(out, 0, 1).astype(np.float64)
    psnr = calculate_metric({'img': out, 'img2': gt}, {'type': 'calculate_psnr_float'})
    ssim = calculate_metric({'img': out, 'img2': gt}, {'type': 'calculate_ssim_float'})
    assert psnr == pytest.approx(peak_signal_noise_ratio(gt.astype(np.float64), clipped, data_range=1), abs=1e-9)
    assert ssim == pytest.approx(structural_similarity(gt.astype(np.float64), clipped, data_range=1,
                                                       channel_axis=-1), abs=1e-9)
    mse = np.mean((clipped - gt) ** 2)
    assert psnr == pytest.approx(10 * np.log10(1 / mse), abs=1e-6)
    # BasicSR's 8-bit metric keeps working beside them
    eight_bit = METRIC_REGISTRY.get('calculate_psnr')(np.rint(clipped * 255), np.rint(gt * 255.0), crop_border=0)
    assert abs(eight_bit - psnr) < 0.5


def test_warmup_cosine_schedule_steps_per_iteration():
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-4)
    scheduler = LinearWarmupCosineLR(optimizer, warmup_iter=10, total_iter=110, eta_min=1e-6)
    lrs = [optimizer.param_groups[0]['lr']]
    for _ in range(120):
        optimizer.step()
        scheduler.step()
        lrs.append(optimizer.param_groups[0]['lr'])
    assert lrs[0] == 0 and lrs[5] == pytest.approx(1e-4) and lrs[10] == pytest.approx(2e-4)
    assert lrs[60] == pytest.approx(1e-6 + (2e-4 - 1e-6) * 0.5)  # half-way through the cosine
    assert lrs[110] == pytest.approx(1e-6) and lrs[120] == pytest.approx(1e-6)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))
    resumed = LinearWarmupCosineLR(torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=2e-4), 10, 110, 1e-6)
    resumed.load_state_dict(scheduler.state_dict())
    assert resumed.get_last_lr() == scheduler.get_last_lr()


def test_tiling_weights_sum_to_one_and_one_tile_equals_whole_image():
    layout, (th, tw) = tile_layout(70, 45, tile=32, overlap=8)
    total = torch.zeros(70, 45)
    for top, left, weight in layout:
        total[top:top + th, left:left + tw] += weight
    assert len(layout) > 4 and torch.allclose(total, torch.ones(70, 45))

    torch.manual_seed(0)
    net = VLUNet(**{k: v for k, v in TINY_VLUNET.items() if k != 'type'}).eval()
    lq, vector = torch.rand(1, 3, 40, 36), torch.rand(1, 32)
    with torch.no_grad():
        whole = net(lq, vector)
        assert torch.allclose(tiled_restore(lambda p: net(p, vector), lq, tile=64, overlap=8), whole)
        tiled = tiled_restore(lambda p: net(p, vector), lq, tile=16, overlap=4)
    assert tiled.shape == lq.shape and not torch.allclose(tiled, whole)  # MDTA sees the tile only


def test_tiles_and_self_ensemble_in_bf16_are_averaged_in_float32():
    image = torch.rand(1, 3, 70, 45)
    blended = tiled_restore(lambda patch: patch.bfloat16(), image, tile=32, overlap=8)
    assert blended.dtype == torch.float32
    assert (blended - image.bfloat16().float()).abs().max() < 1e-6
    averaged = restore_image(lambda x: x.bfloat16(), image, self_ensemble=True)
    assert averaged.dtype == torch.float32
    assert (averaged - image.bfloat16().float()).abs().max() < 1e-6


# Peak resident memory from /proc, in a process of its own (the peak is the process's: this one's would carry
# earlier tests'). VmHWM only grows, so the tiled restore runs first and the whole image after it, from one start.
_PEAK = """
import re, torch, vlunet_basicsr
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.utils.tiling import tiled_restore
torch.manual_seed(0)
net = VLUNet(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, de_dim=5).eval()
lq = torch.rand(1, 3, 256, 256)
def peak_kb():
    return int(re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1))
before = peak_kb()
with torch.no_grad():
    tiled = tiled_restore(lambda p: net(p), lq, 64, 16)
    tiled_kb = peak_kb() - before
    whole = net(lq)
assert tiled.shape == whole.shape == lq.shape
print('GROWTH_KB', peak_kb() - before, tiled_kb)
"""


def test_tiling_lowers_peak_memory():
    proc = run_code_in_a_fork(textwrap.dedent(_PEAK))  # the peak RSS is for the whole process
    assert proc.returncode == 0, proc.stderr
    whole, tiled = map(int, re.search(r'GROWTH_KB (\d+) (\d+)', proc.stdout).groups())
    assert tiled < whole / 3, (whole, tiled)


def _model_opt(network_clip, **val):
    return {'model_type': 'VLUNetModel', 'num_gpu': 0, 'is_train': False, 'dist': False, 'name': 'm',
            'network_g': dict(TINY_VLUNET), 'network_clip': network_clip,
            'path': {'pretrain_network_g': None, 'strict_load_g': True}, 'val': val}


def test_model_feeds_the_clip_vector_and_restores_odd_sizes_full_size():
    model = build_model(_model_opt(dict(TINY_CLIP_NET)))
    lq = torch.rand(1, 3, 37, 50)
    model.feed_data({'lq': lq})
    assert model.guidance_features.shape == (1, 32) and not model.guidance_features.requires_grad
    expected = model.net_clip.encode_image(model.net_clip.preprocess(lq))
    assert torch.allclose(model.guidance_features, expected)
    model.test()
    assert model.output.shape == lq.shape
    assert all(not p.requires_grad for p in model.net_clip.parameters())
    ablation = build_model(_model_opt(None))
    ablation.feed_data({'lq': lq})
    assert ablation.guidance_features is None
    ablation.test()
    assert ablation.output.shape == lq.shape


def test_self_ensemble_averages_the_eight_transforms():
    model = build_model(_model_opt(None, self_ensemble=True))
    net = model.net_g.eval()
    lq = torch.rand(1, 3, 24, 16)
    with torch.no_grad():
        manual = []
        for k in range(8):
            x = torch.rot90(lq.flip(-1) if k >= 4 else lq, k % 4, dims=(-2, -1))
            y = torch.rot90(net(x), -(k % 4), dims=(-2, -1))
            manual.append(y.flip(-1) if k >= 4 else y)
        model.feed_data({'lq': lq})
        model.test()
    assert torch.allclose(model.output, torch.stack(manual).mean(0), atol=1e-6)


@pytest.fixture
def lmdb_sets(tmp_path):
    """Two tiny paired LMDB sets (rain-like and noise) with identical keys in gt/lq."""
    sets = {}
    for name, seed in (('rain', 0), ('clean', 1)):
        sets[name] = lmdb_copy(*write_image_pairs(tmp_path / name, count=4, size=(36, 40), seed=seed),
                               tmp_path / f'{name}_lmdb')
    return sets


def _sources(sets):
    return [{'name': 'derain', 'label': 4, 'dataroot_gt': sets['rain']['gt'], 'dataroot_lq': sets['rain']['lq'],
             'io_backend': {'type': 'lmdb'}, 'repeat': 2},
            {'name': 'denoise_25', 'label': 1, 'dataroot_gt': sets['clean']['gt'], 'noise_sigma': 25,
             'io_backend': {'type': 'lmdb'}}]


def _val_sets(sets, phase='val'):
    return {f'{phase}_1': {'name': 'rain_val', 'type': 'PairedDegradationDataset', 'label': 4,
                           'dataroot_gt': sets['rain']['gt'], 'dataroot_lq': sets['rain']['lq'],
                           'io_backend': {'type': 'lmdb'}},
            f'{phase}_2': {'name': 'noise_val', 'type': 'PairedDegradationDataset', 'label': 1, 'noise_sigma': 25,
                           'noise_seed': 0, 'dataroot_gt': sets['clean']['gt'], 'io_backend': {'type': 'lmdb'}}}


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def test_stage1_stage2_and_test_end_to_end(tmp_path, lmdb_sets):
    work = tmp_path / 'work'
    work.mkdir()
    train_set = {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16, 'sources': _sources(lmdb_sets),
                 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2}
    stage1 = {
        'name': 'stage1', 'model_type': 'CLIPAdapterModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': train_set, **_val_sets(lmdb_sets)}, 'network_clip': dict(TINY_CLIP_NET),
        'path': {}, 'train': {'optim_clip': {'type': 'AdamW', 'lr': 1e-3},
                              'scheduler': {'type': 'LinearWarmupCosineLR', 'warmup_iter': 1, 'total_iter': 4},
                              'total_iter': 4, 'contrastive_opt': {'type': 'DegradationContrastiveLoss'}},
        'val': {'val_freq': 4}, 'logger': {'print_freq': 2, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
    }
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 's1.yml', stage1)], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    adapters = work / 'experiments' / 'stage1' / 'models' / 'net_clip_latest.pth'
    assert adapters.is_file()

    clip_net = {**TINY_CLIP_NET, 'adapter_path': str(adapters)}
    stage2 = {
        'name': 'stage2', 'model_type': 'VLUNetModel', 'num_gpu': 0, 'manual_seed': 0,
        'datasets': {'train': train_set, **_val_sets(lmdb_sets)},
        'network_g': dict(TINY_VLUNET), 'network_clip': clip_net, 'path': {'pretrain_network_g': None},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 2e-4, 'betas': [0.9, 0.999]},
                  'scheduler': {'type': 'LinearWarmupCosineLR', 'warmup_iter': 2, 'total_iter': 6},
                  'total_iter': 4, 'warmup_iter': -1, 'ema_decay': 0.9, 'grad_clip_norm': 0.5,
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
        'val': {'val_freq': 2, 'save_img': False,
                'metrics': {'psnr': {'type': 'calculate_psnr_float'}, 'ssim': {'type': 'calculate_ssim_float'},
                            'psnr_8bit': {'type': 'calculate_psnr', 'crop_border': 0}}},
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': True},
    }
    stage2_path = write_yaml(tmp_path / 's2.yml', stage2)
    proc = run_cli(['train', '-opt', stage2_path], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = work / 'experiments' / 'stage2'
    log = _log(exp)
    for name in ('rain_val', 'noise_val'):
        assert f'Validation {name}' in log
    assert 'Average over 2 sets (rain_val, noise_val)' in log and '# psnr_8bit:' in log
    saved = torch.load(exp / 'models' / 'net_g_4.pth', weights_only=True)
    assert set(saved) == {'params', 'params_ema'}
    assert set(saved['params']) == set(VLUNet(**{k: v for k, v in TINY_VLUNET.items() if k != 'type'}).state_dict())

    proc = run_cli(['train', '-opt', stage2_path, '--auto_resume', '--force_yml', 'train:total_iter=6'], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Resuming training from epoch' in _log(exp) and (exp / 'models' / 'net_g_6.pth').is_file()

    test_opt = {'name': 'stage2_test', 'model_type': 'VLUNetModel', 'num_gpu': 0,
                'datasets': _val_sets(lmdb_sets, 'test'), 'network_g': dict(TINY_VLUNET), 'network_clip': clip_net,
                'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'param_key_g': 'params_ema'},
                'val': {'save_img': True, 'metrics': {'psnr': {'type': 'calculate_psnr_float'}}}}
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 't.yml', test_opt)], cwd=work)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = work / 'results' / 'stage2_test'
    assert len(glob.glob(str(results / 'visualization' / 'rain_val' / '*.png'))) == 4
    assert 'Average over 2 sets' in _log(results)
