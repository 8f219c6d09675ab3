"""basicsr restore / scripts/inference.py on 8-bit, 16-bit, grayscale, RGBA and odd-size images, a corrupt file,
degradation prediction CSV and --explain."""
import csv

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import TINY_CLIP_NET, TINY_VLUNET, TINY_VLUR, restore_main, run_cli, write_yaml
from vlunet_basicsr.archs.vlunet_arch import VLUNet

NET = {key: value for key, value in TINY_VLUNET.items() if key != 'type'}


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp('restore')
    torch.manual_seed(0)
    torch.save({'params': VLUNet(**NET).state_dict()}, root / 'net_g.pth')
    opt = {'name': 'restore', 'model_type': 'VLUNetModel', 'network_g': dict(TINY_VLUNET),
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


def test_clip_encodes_each_image_once_for_both_vector_and_prediction_and_the_prompts_once(setup, tmp_path,
                                                                                          monkeypatch):
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    calls, text_calls = [], []
    encode_image, encode_text = DegradationCLIP.encode_image, DegradationCLIP.encode_text
    monkeypatch.setattr(DegradationCLIP, 'encode_image', lambda self, x: calls.append(x.shape) or encode_image(self, x))
    monkeypatch.setattr(DegradationCLIP, 'encode_text',
                        lambda self, prompts: text_calls.append(prompts) or encode_text(self, prompts))
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('rgb8.png', 'gray.png'):
        (folder / name).write_bytes((setup['images'] / name).read_bytes())
    assert restore_main([str(folder), '-o', str(tmp_path / 'out'), '-opt', setup['opt']]) == 0
    assert len(calls) == 2
    assert len(text_calls) == 1  # the readout's prompts, not once per image


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
    proc = run_cli(['restore', str(setup['images'] / 'gray.png'), '-o', str(tmp_path / 'o'), '-opt', setup['opt']],
                   cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert cv2.imread(str(tmp_path / 'o' / 'gray.png'), cv2.IMREAD_UNCHANGED).ndim == 2


SWINIR = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1., 'depths': [1],
          'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 2, 'upsampler': ''}


def _restore_with(tmp_path, network_g, network_clip=None, prompts=None, extra=(), val=None):
    from basicsr.archs import build_network
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(network_g)).state_dict()}, tmp_path / 'net_g.pth')
    opt = {'name': 'restore', 'model_type': 'GuidedRestorationModel', 'network_g': network_g,
           'network_clip': network_clip, 'path': {'pretrain_network_g': str(tmp_path / 'net_g.pth')}}
    if prompts is not None:
        opt['prompts'] = prompts
    if val is not None:
        opt['val'] = val
    image = np.random.default_rng(1).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'photo.png'), image)
    code = restore_main([str(tmp_path / 'photo.png'), '-o', str(tmp_path / 'out'), '-opt',
                         write_yaml(tmp_path / 'test.yml', opt), *extra])
    return code, image


def test_an_image_only_basicsr_arch_restores_through_its_declared_inputs(tmp_path, capsys):
    code, image = _restore_with(tmp_path, SWINIR, val={'size_multiple': 4})  # basicsr's SwinIR does not pad
    assert code == 0, capsys.readouterr().err
    assert cv2.imread(str(tmp_path / 'out' / 'photo.png')).shape == image.shape
    assert 'Network SwinIR: unguided' in capsys.readouterr().out


def test_basicsr_swinir_restores_an_odd_size_tiled_by_its_own_size_rule(tmp_path, capsys):
    code, image = _restore_with(tmp_path, SWINIR, extra=('--tile', '18', '--tile-overlap', '4'))  # 18: padded to 20
    assert code == 0, capsys.readouterr().err
    assert cv2.imread(str(tmp_path / 'out' / 'photo.png')).shape == image.shape == (21, 30, 3)


def test_weights_alone_load_the_network_they_declare_else_the_arch_that_recognises_them(tmp_path, capsys):
    from basicsr.archs import build_network
    image = tmp_path / 'odd.png'
    cv2.imwrite(str(image), np.random.default_rng(2).integers(0, 256, (19, 26, 3), dtype=np.uint8))
    state = build_network(dict(SWINIR)).state_dict()
    torch.save({'params': state, 'network_g': dict(SWINIR)}, tmp_path / 'declared.pth')
    assert restore_main([str(image), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'declared.pth')]) == 0
    assert 'Network SwinIR: unguided' in capsys.readouterr().out
    torch.save({'params': state}, tmp_path / 'anonymous.pth')
    assert restore_main([str(image), '-o', str(tmp_path / 'out2'), '--weights', str(tmp_path / 'anonymous.pth')]) == 2
    assert (f'{tmp_path / "anonymous.pth"} does not name its network, and no registered arch recognises its weights'
            in capsys.readouterr().err)


def test_a_text_guided_arch_restores_with_the_predicted_or_the_given_type(tmp_path, capsys):
    code, _ = _restore_with(tmp_path, TINY_VLUR, dict(TINY_CLIP_NET), 'cdd11')
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / 'out' / 'degradations.csv') as f:
        predicted = list(csv.DictReader(f))[0]
    assert predicted['restored_as'] == predicted['predicted']
    first = cv2.imread(str(tmp_path / 'out' / 'photo.png'))
    other = 'low_haze' if predicted['predicted'] != 'The image has haze + low degradation' else 'snow'
    code, _ = _restore_with(tmp_path, TINY_VLUR, dict(TINY_CLIP_NET), 'cdd11', ['--degradation-type', other,
                                                                               '-o', str(tmp_path / 'given')])
    assert code == 0, capsys.readouterr().err
    with open(tmp_path / 'given' / 'degradations.csv') as f:
        given = list(csv.DictReader(f))[0]
    assert given['predicted'] == predicted['predicted'] and given['restored_as'] != predicted['restored_as']
    assert not np.array_equal(cv2.imread(str(tmp_path / 'given' / 'photo.png')), first)  # the text matters
    code, _ = _restore_with(tmp_path, TINY_VLUR, None, 'cdd11')
    assert code == 2 and 'needs network_clip' in capsys.readouterr().err
