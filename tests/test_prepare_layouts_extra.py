"""scripts/prepare_datasets.py on the layouts added for VL-UR and DGUNet: cdd11, input_target, sidd_val_blocks."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
from scipy.io import savemat

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from conftest import script_main
from vlunet_basicsr.utils.prompts import CDD11_TYPES

prepare = script_main('prepare_datasets')


def write_cdd11(root, scenes=3, size=32, seed=0):
    """A CDD-11 split in the release's layout: ``clear/`` and the 11 type folders, the same names in each.

    Scene ``s`` is random texture in [0, 127]; its version of type ``t`` (label ``t``) is the clean image plus
    ``10 * (t + 1)``, so every pixel of a degraded version says which clean pixel and which type it comes from.
    """
    rng = np.random.default_rng(seed)
    for folder in ('clear',) + CDD11_TYPES:
        os.makedirs(osp.join(root, folder), exist_ok=True)
    for s in range(scenes):
        clean = rng.integers(0, 128, (size, size, 3), dtype=np.uint8)
        assert cv2.imwrite(osp.join(root, 'clear', f'{s:06d}.png'), clean)
        for label, folder in enumerate(CDD11_TYPES):
            assert cv2.imwrite(osp.join(root, folder, f'{s:06d}.png'), clean + np.uint8(10 * (label + 1)))
    return str(root)


def _keys(lmdb_folder):
    with open(osp.join(lmdb_folder, 'meta_info.txt')) as f:
        return [line.split('.png')[0] for line in f]


def test_cdd11_becomes_one_lmdb_per_folder_with_the_same_keys(tmp_path, capsys):
    source = write_cdd11(tmp_path / 'CDD-11_train')
    out = tmp_path / 'cdd11_train'
    assert prepare(['cdd11', source, '--output', str(out), '--split', 'train']) == 1
    assert 'found 3 scenes for cdd11 train, the public split has 1183' in capsys.readouterr().err
    assert not out.exists()
    assert prepare(['cdd11', source, '--output', str(out), '--split', 'train', '--no-count-check']) == 0
    assert 'wrote 3 scenes x 12 sets' in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(f'{name}.lmdb' for name in ('clear',) + CDD11_TYPES)
    for folder in ('clear',) + CDD11_TYPES:
        assert _keys(out / f'{folder}.lmdb') == ['000000', '000001', '000002'], folder
    # a per-type test set is a plain paired set: clear.lmdb with <type>.lmdb
    sample = build_dataset({'name': 'snow', 'type': 'PairedDegradationDataset', 'label': 3, 'text': 'snow',
                            'dataroot_gt': str(out / 'clear.lmdb'), 'dataroot_lq': str(out / 'snow.lmdb'),
                            'io_backend': {'type': 'lmdb'}})[1]
    assert sample['gt'].shape == (3, 32, 32)
    assert np.allclose((sample['lq'] - sample['gt']).numpy() * 255, 40, atol=1e-3)  # snow is label 3: +40


def test_cdd11_missing_and_mismatched_names_are_listed_and_nothing_written(tmp_path, capsys):
    source = write_cdd11(tmp_path / 'CDD-11_test')
    os.remove(osp.join(source, 'haze', '000001.png'))
    os.rename(osp.join(source, 'low_rain', '000002.png'), osp.join(source, 'low_rain', '000009.png'))
    os.rename(osp.join(source, 'snow'), osp.join(source, 'Snow'))
    out = tmp_path / 'out'
    assert prepare(['cdd11', source, '--output', str(out)]) == 1
    err = capsys.readouterr().err
    assert f"clear image {osp.join(source, 'clear', '000001.png')} has no haze image" in err
    assert f"clear image {osp.join(source, 'clear', '000002.png')} has no low_rain image" in err
    assert f"low_rain image {osp.join(source, 'low_rain', '000009.png')} has no clear image" in err
    assert f"missing folder {osp.join(source, 'snow')}" in err
    assert '4 unmatched images' in err and not out.exists()
    assert prepare(['cdd11', str(tmp_path), '--output', str(out)]) == 1
    assert 'has no clear/ folder' in capsys.readouterr().err


def test_cdd11_folder_format_and_no_overwrite(tmp_path, capsys):
    source = write_cdd11(tmp_path / 'raw', scenes=2)
    out = tmp_path / 'out'
    assert prepare(['cdd11', source, '--output', str(out), '--format', 'folder']) == 0
    assert sorted(os.listdir(out / 'low_haze_snow')) == ['000000.png', '000001.png']
    assert prepare(['cdd11', source, '--output', str(out), '--format', 'folder']) == 1
    assert 'pass --overwrite' in capsys.readouterr().err


def _input_target(root, target_name):
    for i in range(2):
        for folder, value in (('input', 200 + i), (target_name, 20 + i)):
            os.makedirs(osp.join(root, folder), exist_ok=True)
            assert cv2.imwrite(osp.join(root, folder, f'rain-{i}.png'), np.full((12, 10, 3), value, np.uint8))
    return str(root)


@pytest.mark.parametrize('target_name', ['target', 'groundtruth'])
def test_input_target_layout(tmp_path, capsys, target_name):
    source = _input_target(tmp_path / 'raw', target_name)
    out = tmp_path / 'out'
    assert prepare(['input_target', source, '--output', str(out)]) == 0
    assert _keys(out / 'lq.lmdb') == _keys(out / 'gt.lmdb') == ['rain-0', 'rain-1']
    sample = build_dataset({'name': 'r', 'type': 'PairedDegradationDataset', 'label': 4,
                            'dataroot_gt': str(out / 'gt.lmdb'), 'dataroot_lq': str(out / 'lq.lmdb'),
                            'io_backend': {'type': 'lmdb'}})[1]
    assert round(sample['gt'][0, 0, 0].item() * 255) == 21 and round(sample['lq'][0, 0, 0].item() * 255) == 201
    os.remove(osp.join(source, target_name, 'rain-1.png'))
    assert prepare(['input_target', source, '--output', str(tmp_path / 'other')]) == 1
    assert f"input image {osp.join(source, 'input', 'rain-1.png')} has no {target_name} image" in \
        capsys.readouterr().err


def _sidd_blocks(root, shape=(2, 3, 8, 6, 3), gt_shape=None, names=None):
    rng = np.random.default_rng(1)
    os.makedirs(root, exist_ok=True)
    noisy = rng.integers(0, 256, shape, dtype=np.uint8)
    clean = rng.integers(0, 256, gt_shape or shape, dtype=np.uint8)
    noisy_name, gt_name = names or ('ValidationNoisyBlocksSrgb', 'ValidationGtBlocksSrgb')
    savemat(osp.join(root, 'ValidationNoisyBlocksSrgb.mat'), {noisy_name: noisy})
    savemat(osp.join(root, 'ValidationGtBlocksSrgb.mat'), {gt_name: clean})
    return str(root), noisy, clean


def test_sidd_validation_blocks_become_keyed_rgb_pairs(tmp_path, capsys):
    source, noisy, clean = _sidd_blocks(tmp_path / 'SIDD')
    out = tmp_path / 'sidd_val'
    assert prepare(['sidd_val_blocks', source, '--output', str(out), '--split', 'test']) == 1
    assert 'found 6 blocks for sidd_val_blocks test, the public split has 1280' in capsys.readouterr().err
    assert prepare(['sidd_val_blocks', source, '--output', str(out), '--split', 'test', '--no-count-check']) == 0
    keys = ['0000_00', '0000_01', '0000_02', '0001_00', '0001_01', '0001_02']
    assert _keys(out / 'gt.lmdb') == _keys(out / 'lq.lmdb') == keys
    dataset = build_dataset({'name': 'sidd', 'type': 'PairedDegradationDataset', 'label': 0, 'text': 'noise',
                             'dataroot_gt': str(out / 'gt.lmdb'), 'dataroot_lq': str(out / 'lq.lmdb'),
                             'io_backend': {'type': 'lmdb'}})
    sample = dataset[keys.index('0001_02')]
    assert sample['lq'].shape == (3, 8, 6)
    # the arrays are RGB: channel 0 of the tensor is channel 0 of the array, exactly
    assert np.array_equal(np.rint(sample['lq'].numpy() * 255).astype(np.uint8), noisy[1, 2].transpose(2, 0, 1))
    assert np.array_equal(np.rint(sample['gt'].numpy() * 255).astype(np.uint8), clean[1, 2].transpose(2, 0, 1))


def test_sidd_blocks_of_different_shapes_or_missing_variables_are_refused(tmp_path, capsys):
    source, _, _ = _sidd_blocks(tmp_path / 'a', gt_shape=(2, 2, 8, 6, 3))
    assert prepare(['sidd_val_blocks', source, '--output', str(tmp_path / 'out')]) == 1
    err = capsys.readouterr().err
    assert 'ValidationNoisyBlocksSrgb.mat holds blocks of shape (2, 3, 8, 6, 3)' in err
    assert 'ValidationGtBlocksSrgb.mat holds (2, 2, 8, 6, 3)' in err
    source, _, _ = _sidd_blocks(tmp_path / 'b', names=('ValidationNoisyBlocksSrgb', 'gt'))
    assert prepare(['sidd_val_blocks', source, '--output', str(tmp_path / 'out')]) == 1
    assert "ValidationGtBlocksSrgb.mat has no variable 'ValidationGtBlocksSrgb' (it holds ['gt'])" in \
        capsys.readouterr().err
    source, _, _ = _sidd_blocks(tmp_path / 'c', shape=(2, 3, 8, 6))
    assert prepare(['sidd_val_blocks', source, '--output', str(tmp_path / 'out')]) == 1
    assert 'must be a uint8 array of shape (images, blocks, height, width, 3), got uint8 (2, 3, 8, 6)' in \
        capsys.readouterr().err
    source = str(tmp_path / 'a')
    os.remove(osp.join(source, 'ValidationGtBlocksSrgb.mat'))
    assert prepare(['sidd_val_blocks', source, '--output', str(tmp_path / 'out')]) == 1
    assert f"SIDD block file not found: {osp.join(source, 'ValidationGtBlocksSrgb.mat')}" in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()
