"""MixedDegradationDataset and PairedDegradationDataset on disk and LMDB."""
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from conftest import lmdb_copy, write_image_pairs


@pytest.fixture
def two_backends(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'disk', count=5, size=(40, 36))
    lmdb = lmdb_copy(gt, lq, tmp_path / 'lmdb')
    return {'disk': (gt, lq, {'type': 'disk'}), 'lmdb': (lmdb['gt'], lmdb['lq'], {'type': 'lmdb'})}


def _mixed_opt(gt, lq, io, **extra):
    return {'name': 'mix', 'type': 'MixedDegradationDataset', 'phase': 'train', 'gt_size': 16,
            'sources': [
                {'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': io, 'repeat': 2},
                {'name': 'denoise_25', 'label': 1, 'dataroot_gt': gt, 'noise_sigma': 25, 'io_backend': io},
            ], **extra}


def _samples(dataset, seed):
    random.seed(seed)
    np.random.seed(seed)
    return [dataset[i] for i in range(len(dataset))]


def test_disk_and_lmdb_give_identical_samples(two_backends):
    disk = build_dataset(_mixed_opt(*two_backends['disk']))
    lmdb = build_dataset(_mixed_opt(*two_backends['lmdb']))
    assert len(disk) == len(lmdb) == 15
    for a, b in zip(_samples(disk, 3), _samples(lmdb, 3)):
        assert torch.equal(a['lq'], b['lq']) and torch.equal(a['gt'], b['gt'])
        assert (a['label'], a['text'], a['source']) == (b['label'], b['text'], b['source'])
    sample = disk[0]
    assert sample['lq'].shape == (3, 16, 16) and sample['lq'].dtype == torch.float32
    assert sample['label'] == 4 and sample['text'] == 'image with rain' and sample['source'] == 'derain'
    assert sample['lq_path'].endswith('img00.png') and 0 <= sample['gt'].min() and sample['gt'].max() <= 1


def test_repeat_and_balanced_shares(two_backends):
    gt, lq, io = two_backends['disk']
    opt = _mixed_opt(gt, lq, io)
    opt['sources'][1]['repeat'] = 3
    assert build_dataset(opt).source_counts() == [10, 15]
    opt = _mixed_opt(gt, lq, io, sampling='balanced', samples_per_epoch=100)
    opt['sources'][0]['weight'], opt['sources'][1]['weight'] = 1, 3
    dataset = build_dataset(opt)
    assert dataset.source_counts() == [25, 75] and len(dataset) == 100
    # every image of a source is used when its share is at least its size
    assert sorted(set(dataset.index[dataset.index[:, 0] == 1, 1])) == list(range(5))


def test_images_smaller_than_gt_size_are_padded_or_refused(two_backends):
    gt, lq, io = two_backends['disk']
    dataset = build_dataset(_mixed_opt(gt, lq, io, gt_size=48))
    assert dataset[0]['gt'].shape == (3, 48, 48)
    dataset = build_dataset(_mixed_opt(gt, lq, io, gt_size=48, pad_if_smaller=False))
    with pytest.raises(ValueError, match=r'img00.png is 36x40, smaller than gt_size 48'):
        dataset[0]


def _paired_opt(gt, io, **extra):
    return {'name': 'cbsd', 'type': 'PairedDegradationDataset', 'phase': 'val', 'dataroot_gt': gt, 'label': 1,
            'noise_sigma': 25, 'noise_seed': 7, 'io_backend': io, **extra}


def _noisy_by_key(dataset, num_workers, order):
    loader = DataLoader(torch.utils.data.Subset(dataset, order), batch_size=1, num_workers=num_workers)
    return {osp.basename(batch['gt_path'][0]): batch['lq'][0] for batch in loader}


def test_test_noise_is_deterministic_and_rounded(two_backends):
    gt, _, io = two_backends['disk']
    dataset = build_dataset(_paired_opt(gt, io))
    forward = _noisy_by_key(dataset, 0, list(range(len(dataset))))
    backward = _noisy_by_key(dataset, 2, list(reversed(range(len(dataset)))))
    assert forward.keys() == backward.keys()
    for key in forward:
        assert torch.equal(forward[key], backward[key])
        scaled = forward[key] * 255
        assert torch.allclose(scaled, scaled.round(), atol=1e-3)  # rounded to 8 bits
    lmdb_gt, _, lmdb_io = two_backends['lmdb']
    lmdb_dataset = build_dataset(_paired_opt(lmdb_gt, lmdb_io))
    assert torch.equal(lmdb_dataset[0]['lq'], forward['img00.png'])  # same key, same noise, either backend
    # The LMDB is now open in this process; forked workers must open their own (py-lmdb refuses a second open).
    in_workers = _noisy_by_key(lmdb_dataset, 2, list(range(len(lmdb_dataset))))
    assert torch.equal(in_workers['img00'], forward['img00.png'])
    other_seed = build_dataset(_paired_opt(gt, io, noise_seed=8))[0]['lq']
    assert not torch.equal(other_seed, forward['img00.png'])
    residual = (forward['img00.png'] - dataset[0]['gt']) * 255
    assert 20 < residual.std().item() < 30  # sigma 25, a little less where clipped


def test_paired_set_full_size_and_legacy_crop(two_backends):
    gt, lq, io = two_backends['lmdb']
    opt = {'name': 'rain', 'type': 'PairedDegradationDataset', 'phase': 'val', 'dataroot_gt': gt,
           'dataroot_lq': lq, 'label': 4, 'io_backend': io}
    sample = build_dataset(opt)[0]
    assert sample['gt'].shape == (3, 40, 36) and sample['text'] == 'image with rain'
    assert sample['lq_path'].endswith(osp.join('lq.lmdb', 'img00'))
    assert build_dataset({**opt, 'crop_to_multiple': 16})[0]['gt'].shape == (3, 32, 32)
    whole = sample['gt']
    top_left, centred = (build_dataset({**opt, 'crop_to_multiple': 16, 'crop_centered': centred})[0]
                         for centred in (False, True))
    assert torch.equal(top_left['gt'], whole[:, :32, :32])
    assert torch.equal(centred['gt'], whole[:, 4:36, 2:34]) and torch.equal(centred['lq'], sample['lq'][:, 4:36, 2:34])


def test_clear_errors_for_bad_sources(tmp_path, two_backends):
    gt, lq, io = two_backends['disk']
    with pytest.raises(ValueError, match=r'sources\[0\]\.dataroot_lq: give exactly one of dataroot_lq'):
        build_dataset({**_mixed_opt(gt, lq, io), 'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt}]})
    with pytest.raises(FileNotFoundError, match='image folder not found: .*nowhere'):
        build_dataset(_paired_opt(str(tmp_path / 'nowhere'), io))
    os.remove(osp.join(lq, 'img03.png'))
    with pytest.raises(ValueError, match=r"1 GT images have no LQ image .*'img03.png'"):
        build_dataset(_mixed_opt(gt, lq, io))
    cv2.imwrite(osp.join(lq, 'img03.png'), np.zeros((10, 10, 3), np.uint8))
    dataset = build_dataset({**_paired_opt(gt, io), 'noise_sigma': None, 'dataroot_lq': lq})
    with pytest.raises(ValueError, match=r'LQ .*img03.png is 10x10 but GT .*img03.png is 36x40'):
        dataset[3]


