"""scripts/prepare_datasets.py and scripts/export_noisy_testsets.py on miniature copies of the public layouts."""
import hashlib
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from conftest import script_main



prepare = script_main('prepare_datasets')
export_noisy = script_main('export_noisy_testsets')


def _image(path, value, ext_size=(12, 10)):
    os.makedirs(osp.dirname(path), exist_ok=True)
    image = np.full((*ext_size, 3), value, np.uint8)
    image[0, 0] = (value * 7) % 256
    assert cv2.imwrite(path, image)


def _mini_layouts(root):
    """Miniature copies of the releases' folder layouts; returns {layout: (input, expected keys)}."""
    layouts = {}
    for i in range(3):
        _image(f'{root}/SOTS/outdoor/hazy/000{i}_0.8_0.2.jpg', 100 + i)
        _image(f'{root}/SOTS/outdoor/gt/000{i}.png', 10 + i)
        _image(f'{root}/Rain100L/rainy/rain-00{i}.png', 120 + i)
        _image(f'{root}/Rain100L/rainy/norain-00{i}.png', 20 + i)
        _image(f'{root}/GoPro/test/GOPR0384_11_00/blur/00000{i}.png', 140 + i)
        _image(f'{root}/GoPro/test/GOPR0384_11_00/sharp/00000{i}.png', 40 + i)
        _image(f'{root}/LOL/eval15/low/{i}.png', 5 + i)
        _image(f'{root}/LOL/eval15/high/{i}.png', 150 + i)
        _image(f'{root}/CBSD68/{i:04d}.png', 60 + i)
    layouts['sots_outdoor'] = (f'{root}/SOTS/outdoor', ['0000_0.8_0.2', '0001_0.8_0.2', '0002_0.8_0.2'])
    layouts['rain100l'] = (f'{root}/Rain100L', ['000', '001', '002'])
    layouts['gopro'] = (f'{root}/GoPro/test', [f'GOPR0384_11_00_00000{i}' for i in range(3)])
    layouts['lol'] = (f'{root}/LOL', ['0', '1', '2'])
    layouts['cbsd68'] = (f'{root}/CBSD68', ['0000', '0001', '0002'])
    with open(f'{root}/rain_paths.txt', 'w') as f:
        f.writelines(f'Rain100L/rainy/rain-00{i}.png, Rain100L/rainy/norain-00{i}.png\n' for i in range(3))
    layouts['paths_txt'] = (f'{root}/rain_paths.txt', ['rain-000', 'rain-001', 'rain-002'])
    return layouts


def test_every_layout_becomes_an_lmdb_the_datasets_read(tmp_path):
    for layout, (source, keys) in _mini_layouts(str(tmp_path / 'raw')).items():
        out = tmp_path / 'out' / layout
        assert prepare([layout, source, '--output', str(out)]) == 0, layout
        with open(out / 'gt.lmdb' / 'meta_info.txt') as f:
            assert [line.split('.png')[0] for line in f] == keys, layout
        opt = {'name': layout, 'type': 'PairedDegradationDataset', 'phase': 'test', 'label': 0,
               'dataroot_gt': str(out / 'gt.lmdb'), 'io_backend': {'type': 'lmdb'}}
        if layout == 'cbsd68':
            assert not (out / 'lq.lmdb').exists()
            opt['noise_sigma'] = 15
        else:
            opt['dataroot_lq'] = str(out / 'lq.lmdb')
        sample = build_dataset(opt)[0]
        assert sample['gt'].shape == (3, 12, 10)
    # the pairing is right: SOTS hazy 0001_0.8_0.2 (value 101) goes with gt 0001 (value 11)
    sots = build_dataset({'name': 's', 'type': 'PairedDegradationDataset', 'label': 3,
                          'dataroot_gt': str(tmp_path / 'out/sots_outdoor/gt.lmdb'),
                          'dataroot_lq': str(tmp_path / 'out/sots_outdoor/lq.lmdb'), 'io_backend': {'type': 'lmdb'}})
    assert round(sots[1]['gt'][0, 5, 5].item() * 255) == 11 and abs(sots[1]['lq'][0, 5, 5].item() * 255 - 101) < 3


def test_folder_output(tmp_path):
    source, _ = _mini_layouts(str(tmp_path / 'raw'))['lol']
    assert prepare(['lol', source, '--output', str(tmp_path / 'out'), '--format', 'folder']) == 0
    assert sorted(os.listdir(tmp_path / 'out' / 'lq')) == ['0.png', '1.png', '2.png']


def test_missing_pair_is_reported_by_name_and_nothing_written(tmp_path, capsys):
    source, _ = _mini_layouts(str(tmp_path / 'raw'))['sots_outdoor']
    os.remove(osp.join(source, 'gt', '0001.png'))
    assert prepare(['sots_outdoor', source, '--output', str(tmp_path / 'out')]) == 1
    assert '0001_0.8_0.2.jpg has no clear image' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_count_check_and_overwrite(tmp_path, capsys):
    source, _ = _mini_layouts(str(tmp_path / 'raw'))['sots_outdoor']
    out = str(tmp_path / 'out')
    assert prepare(['sots_outdoor', source, '--output', out, '--split', 'test']) == 1
    assert 'found 3 images for sots_outdoor test, the public split has 500' in capsys.readouterr().err
    assert prepare(['sots_outdoor', source, '--output', out, '--split', 'test', '--no-count-check']) == 0
    assert prepare(['sots_outdoor', source, '--output', out]) == 1
    err = capsys.readouterr().err
    assert 'already exist' in err and 'pass --overwrite' in err
    assert prepare(['sots_outdoor', source, '--output', out, '--overwrite']) == 0


def test_export_noisy_testsets_matches_the_dataset_noise(tmp_path):
    source, keys = _mini_layouts(str(tmp_path / 'raw'))['cbsd68']
    out = tmp_path / 'noisy'
    assert export_noisy([source, '--output', str(out), '--sigmas', '15', '50', '--noise-seed', '3']) == 0
    lines = (out / 'manifest.sha256').read_text().splitlines()
    assert len(lines) == 6
    for line in lines:
        digest, relative = line.split('  ')
        assert hashlib.sha256((out / relative).read_bytes()).hexdigest() == digest
    dataset = build_dataset({'name': 'c', 'type': 'PairedDegradationDataset', 'label': 2, 'dataroot_gt': source,
                             'noise_sigma': 50, 'noise_seed': 3})
    exported = cv2.imread(str(out / 'sigma50' / f'{keys[0]}.png'))[..., ::-1].astype(np.float32) / 255
    assert torch.allclose(dataset[0]['lq'], torch.from_numpy(exported.copy()).permute(2, 0, 1), atol=1e-6)
    with pytest.raises(SystemExit):
        export_noisy(['--help'])
