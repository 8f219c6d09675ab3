"""basicsr restore / scripts/inference.py on 8-bit, 16-bit, grayscale, RGBA and odd-size images, a corrupt file,
degradation prediction CSV and --explain."""
import csv

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import run_basicsr, write_yaml
from test_vlunet_model import TINY_CLIP_NET, TINY_NET
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.inference import main as restore_main

NET = {key: value for key, value in TINY_NET.items() if key != 'type'}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('restore')
    torch.manual_seed(0)
    torch.save({'params': VLUNet(**NET).state_dict()}, root / 'net_g.pth')
    opt = {'name': 'restore', 'model_type': 'VLUNetModel', 'network_g': dict(TINY_NET),
           'network_clip': dict(TINY_CLIP_NET),
           'path': {'pretrain_network_g': str(root / 'net_g.pth')}}
    images = root / 'images'
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / 'rgb8.png'), rng.integers(0, 256, (37, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(images / 'rgb16.png'), rng.integers(0, 65536, (24, 16, 3), dtype=np.uint16))
    cv2.imwrite(str(images / 'gray.png'), rng.integers(0, 256, (20, 30), dtype=np.uint8))
    cv2.imwrite(str(images / 'rgba.png'), rng.integers(0, 256, (16, 24, 4), dtype=np.uint8))
    cv2.imwrite(str(images / 'photo.jpg'), rng.integers(0, 256, (33, 33, 3), dtype=np.uint8))
    (images / 'broken.png').write_bytes(b'\x89PNG\r\n\x1a\n not really a png')
    return {'opt': write_yaml(root / 'test.yml', opt), 'images': images, 'weights': root / 'net_g.pth'}


def test_folder_with_every_kind_of_image_and_a_corrupt_file(setup, tmp_path, capsys):
    out = tmp_path / 'out'
    code = restore_main([str(setup['images']), '-o', str(out), '-opt', setup['opt'], '--explain'])
    captured = capsys.readouterr()
    assert code == 1  # one input failed
    assert 'broken.png' in captured.err and 'corrupt' in captured.err
    assert '5 restored, 1 failed' in captured.out
    for name in ('rgb8', 'rgb16', 'gray', 'rgba', 'photo'):
        source = cv2.imread(str(next(setup['images'].glob(f'{name}.*'))), cv2.IMREAD_UNCHANGED)
        result = cv2.imread(str(out / f'{name}.png'), cv2.IMREAD_UNCHANGED)
        assert result.shape == source.shape and result.dtype == source.dtype, name
    rgba_in = cv2.imread(str(setup['images'] / 'rgba.png'), cv2.IMREAD_UNCHANGED)
    assert np.array_equal(cv2.imread(str(out / 'rgba.png'), cv2.IMREAD_UNCHANGED)[..., 3], rgba_in[..., 3])
    with open(out / 'degradations.csv') as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 5 and rows[0]['predicted'] in rows[0] and 0 < float(rows[0]['probability']) <= 1
    assert 'image with noise' in rows[0]
    assert (out / 'explain' / 'rgb8_mixture_weights.png').is_file()
    assert (out / 'explain' / 'rgb8_residuals.png').is_file()
    assert 'rgb8.png' in captured.out and '(p=' in captured.out


def test_clip_encodes_each_image_once_for_both_vector_and_prediction(setup, tmp_path, monkeypatch):
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    calls = []
    encode_image = DegradationCLIP.encode_image
    monkeypatch.setattr(DegradationCLIP, 'encode_image', lambda self, x: calls.append(x.shape) or encode_image(self, x))
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('rgb8.png', 'gray.png'):
        (folder / name).write_bytes((setup['images'] / name).read_bytes())
    assert restore_main([str(folder), '-o', str(tmp_path / 'out'), '-opt', setup['opt']]) == 0
    assert len(calls) == 2


def test_tiles_and_weights_only(setup, tmp_path):
    code = restore_main([str(setup['images'] / 'rgb8.png'), '-o', str(tmp_path), '--weights', str(setup['weights']),
                         '--tile', '16', '--tile-overlap', '4'])
    assert code == 0  # network options inferred from the weights; no CLIP: unguided
    assert cv2.imread(str(tmp_path / 'rgb8.png')).shape == (37, 50, 3)


def test_never_overwrites_the_input(setup, tmp_path, capsys):
    folder = tmp_path / 'same'
    folder.mkdir()
    image = folder / 'a.png'
    cv2.imwrite(str(image), np.full((16, 16, 3), 7, np.uint8))
    before = image.read_bytes()
    assert restore_main([str(folder), '-o', str(folder), '-opt', setup['opt']]) == 1
    assert 'would overwrite the input' in capsys.readouterr().err
    assert image.read_bytes() == before


def test_a_missing_input_is_named_as_such(setup, tmp_path, capsys):
    assert restore_main([str(tmp_path / 'missing.png'), '-o', str(tmp_path / 'out'), '-opt', setup['opt']]) != 0
    assert f"no image file or folder at {tmp_path / 'missing.png'}" in capsys.readouterr().err


def test_restore_subcommand(setup, tmp_path):
    proc = run_basicsr(['restore', str(setup['images'] / 'gray.png'), '-o', str(tmp_path / 'o'), '-opt', setup['opt']],
                       cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cv2.imread(str(tmp_path / 'o' / 'gray.png'), cv2.IMREAD_UNCHANGED).ndim == 2
