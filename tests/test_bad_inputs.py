"""Bad inputs met by name: colliding output names, empty, truncated and corrupt images, truncated LMDBs, corrupt or
unsafe checkpoints, non-checkpoint files for the converter; and ``basicsr restore``'s progress and torch-free help."""
import logging
import os
import os.path as osp
import textwrap

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from conftest import (TINY_CLIP, TINY_VLUNET, lmdb_copy, run_cli, run_code_in_a_fork, run_front_door, run_script,
                      write_image_pairs, write_yaml)
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr_cli import main as basicsr
from vlunet_basicsr.utils.checkpoint_util import CorruptCheckpointError, UnsafeCheckpointError, load_weights
from vlunet_basicsr.utils.image_io import decode_image

NET = {key: value for key, value in TINY_VLUNET.items() if key != 'type'}


class _Unsafe:
    """Pickled by reference to this module: a whole checkpoint that weights_only refuses."""

    def __init__(self):
        self.note = 'not a tensor'


@pytest.fixture(scope='module')
def weights(tmp_path_factory):
    """A tiny VLUNet net_g.pth, a truncated copy, a file of random bytes and an unsafe (custom class) pickle."""
    root = tmp_path_factory.mktemp('weights')
    torch.manual_seed(0)
    good = root / 'net_g.pth'
    torch.save({'params': VLUNet(**NET).state_dict()}, good)
    content = good.read_bytes()
    (root / 'truncated.pth').write_bytes(content[:len(content) // 2])
    (root / 'random.pth').write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    torch.save({'params': VLUNet(**NET).state_dict(), 'meta': _Unsafe()}, root / 'unsafe.pth')
    return {name: str(root / f'{name}.pth') for name in ('net_g', 'truncated', 'random', 'unsafe')}


def _image(path, value=90, size=(20, 24)):
    cv2.imwrite(str(path), np.full((*size, 3), value, np.uint8))
    return path


def _jpeg_bytes(size=(40, 40)):
    rng = np.random.default_rng(1)
    return cv2.imencode('.jpg', rng.integers(0, 256, (*size, 3), dtype=np.uint8))[1].tobytes()


# --- 1: output names -------------------------------------------------------------------------------------------

def test_restore_into_the_input_folder_never_replaces_any_input(weights, tmp_path, capsys):
    folder = tmp_path / 'photos'
    folder.mkdir()
    (folder / 'b.jpg').write_bytes(_jpeg_bytes())
    _image(folder / 'b.png', 40)
    _image(folder / 'b_png.png', 200)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    code = basicsr(['restore', str(folder), '-o', str(folder), '--weights', weights['net_g']])
    err = capsys.readouterr().err
    assert {name: (folder / name).read_bytes() for name in before} == before  # every input byte-for-byte
    assert code == 1  # b.png's result (b_png.png) and b_png.png's own result would replace inputs: refused
    assert f"{folder / 'b.png'}: its output {folder / 'b_png.png'} would overwrite the input" in err
    assert f"{folder / 'b_png.png'}: its output {folder / 'b_png.png'} would overwrite the input" in err
    assert cv2.imread(str(folder / 'b_jpg.png')).shape == (40, 40, 3)


def test_restore_gives_inputs_whose_names_collide_distinct_outputs(weights, tmp_path, capsys):
    folder = tmp_path / 'photos'
    folder.mkdir()
    (folder / 'b.jpg').write_bytes(_jpeg_bytes())
    _image(folder / 'b.png', 40)
    _image(folder / 'b_png.png', 200, size=(12, 14))
    out = tmp_path / 'out'
    assert basicsr(['restore', str(folder), '-o', str(out), '--weights', weights['net_g']]) == 0
    assert 'b_png.png is already the result of another input; writing b_png_2.png' in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ['b_jpg.png', 'b_png.png', 'b_png_2.png']
    assert cv2.imread(str(out / 'b_png.png')).shape == (20, 24, 3)  # b.png's result, not overwritten
    assert cv2.imread(str(out / 'b_png_2.png')).shape == (12, 14, 3)  # b_png.png's result


# --- 4 and 7: one decoder for datasets and restore; empty and truncated images -----------------------------------

def _mixed(gt, lq, **extra):
    return {'name': 'mix', 'type': 'MixedDegradationDataset', 'phase': 'train', 'gt_size': 16,
            'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq}], **extra}


@pytest.fixture
def basicsr_warnings():
    records = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    logger = logging.getLogger('basicsr')
    logger.addHandler(handler)
    yield records
    logger.removeHandler(handler)


def test_zero_byte_image_in_a_training_set_is_named_or_skipped(tmp_path, basicsr_warnings):
    gt, lq = write_image_pairs(tmp_path, count=3)
    open(osp.join(lq, 'img01.png'), 'wb').close()
    with pytest.raises(ValueError, match=r'\(derain\): cannot decode image .*img01.png: the file is empty \(0 bytes\)'):
        build_dataset(_mixed(gt, lq))[1]
    dataset = build_dataset(_mixed(gt, lq, skip_bad_samples=True))
    sample = dataset[1]
    assert sample['lq_path'].endswith('img02.png')  # the next good sample
    assert any('skipping a bad sample' in r.getMessage() and 'img01.png' in r.getMessage() for r in basicsr_warnings)


def test_zero_byte_image_in_a_paired_test_set_is_named(tmp_path):
    gt, lq = write_image_pairs(tmp_path, count=2)
    open(osp.join(gt, 'img00.png'), 'wb').close()
    dataset = build_dataset({'name': 'set', 'type': 'PairedDegradationDataset', 'phase': 'test', 'label': 4,
                             'dataroot_gt': gt, 'dataroot_lq': lq})
    with pytest.raises(ValueError, match=r'cannot decode image .*gt.img00.png: the file is empty'):
        dataset[0]


def test_decoder_rule_for_cut_jpegs_and_pngs():
    jpeg = _jpeg_bytes()
    for cut in (len(jpeg) - 2, len(jpeg) - 40, len(jpeg) // 2):  # no end-of-image marker FFD9
        with pytest.raises(ValueError, match=r'cut.jpg: the JPEG ends before its end-of-image marker \(FFD9\)'):
            decode_image(jpeg[:cut], 'cut.jpg')
    assert decode_image(jpeg + b'appended by a camera', 'tail.jpg').rgb.shape == (40, 40, 3)  # bytes after FFD9
    png = cv2.imencode('.png', np.zeros((8, 8, 3), np.uint8))[1].tobytes()
    with pytest.raises(ValueError, match=r'cut.png: the PNG ends before its IEND chunk'):
        decode_image(png[:-12], 'cut.png')
    decoded = decode_image(cv2.imencode('.png', np.full((5, 6, 4), 9, np.uint16))[1].tobytes(), 'rgba16.png')
    assert not decoded.is_gray and decoded.alpha.shape == (5, 6) and decoded.dtype == np.uint16


def test_truncated_jpeg_is_refused_by_restore_and_by_datasets(weights, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    _image(folder / 'good.png')
    jpeg = _jpeg_bytes((32, 32))
    (folder / 'cut.jpg').write_bytes(jpeg[:len(jpeg) * 2 // 3])
    assert cv2.imread(str(folder / 'cut.jpg')) is not None  # what OpenCV's file reader alone would accept
    out = tmp_path / 'out'
    assert basicsr(['restore', str(folder), '-o', str(out), '--weights', weights['net_g']]) == 1
    captured = capsys.readouterr()
    assert f"cannot decode image {folder / 'cut.jpg'}: the JPEG ends before its end-of-image marker" in captured.err
    assert '1 restored, 1 failed' in captured.out
    assert (out / 'good.png').is_file() and not (out / 'cut.png').exists()

    gt, lq = write_image_pairs(tmp_path / 'set', count=2)
    os.remove(osp.join(lq, 'img00.png'))
    (tmp_path / 'set' / 'lq' / 'img00.jpg').write_bytes(jpeg[:len(jpeg) * 2 // 3])
    dataset = build_dataset({'name': 'set', 'type': 'PairedDegradationDataset', 'phase': 'test', 'label': 4,
                             'dataroot_gt': gt, 'dataroot_lq': lq})
    with pytest.raises(ValueError, match=r'cannot decode image .*img00.jpg: the JPEG ends before'):
        dataset[0]


# --- 6: truncated LMDB ----------------------------------------------------------------------------------------

def test_truncated_lmdb_is_named_instead_of_a_sigbus(tmp_path):
    """A paired test set and a training mix with skip_bad_samples (a whole truncated LMDB is not a bad sample to
    skip) read a truncated LMDB, in a process of its own: reading unmapped pages would kill it with SIGBUS."""
    roots = lmdb_copy(*write_image_pairs(tmp_path / 'd', count=3, size=(64, 64)), tmp_path / 'l')
    os.truncate(osp.join(roots['lq'], 'data.mdb'), 2 * 4096)  # the two meta pages survive, the data pages are gone
    lmdb_io = {'type': 'lmdb'}
    paired = {'name': 'set', 'type': 'PairedDegradationDataset', 'phase': 'test', 'label': 4,
              'dataroot_gt': roots['gt'], 'dataroot_lq': roots['lq'], 'io_backend': lmdb_io}
    mixed = _mixed(roots['gt'], roots['lq'], skip_bad_samples=True)
    mixed['sources'][0]['io_backend'] = lmdb_io
    script = textwrap.dedent(f'''
        import vlunet_basicsr
        from basicsr.data import build_dataset
        for opt in {[paired, mixed]!r}:
            try:
                dataset = build_dataset(opt)
                for i in range(len(dataset)):
                    dataset[i]
                print(opt['type'], 'read every sample')
            except Exception as error:
                print(opt['type'], type(error).__name__, error)
    ''')
    proc = run_code_in_a_fork(script)
    assert proc.returncode == 0, f'exit {proc.returncode} (negative: killed by a signal)\n{proc.stderr[-2000:]}'
    named = f"TruncatedLMDBError LMDB {roots['lq']} is truncated: its data.mdb holds 8192 bytes but its header says"
    for dataset in ('PairedDegradationDataset', 'MixedDegradationDataset'):
        assert f'{dataset} {named}' in proc.stdout, proc.stdout + proc.stderr[-2000:]


# --- 8: a folder without images -------------------------------------------------------------------------------

def test_restore_on_a_folder_without_images_says_so_and_fails(weights, tmp_path, capsys):
    folder = tmp_path / 'notes'
    folder.mkdir()
    (folder / 'readme.txt').write_text('no images here')
    assert basicsr(['restore', str(folder), '-o', str(tmp_path / 'out'), '--weights', weights['net_g']]) == 2
    err = capsys.readouterr().err
    assert f'the folder {folder} holds no image (accepted extensions: .png, .jpg' in err


# --- 9 and 10: checkpoints ------------------------------------------------------------------------------------

def test_load_weights_tells_corrupt_from_unsafe(weights):
    for name in ('truncated', 'random'):
        with pytest.raises(CorruptCheckpointError) as error:
            load_weights(weights[name], trust_checkpoint=False)
        message = str(error.value)
        assert message.startswith(f'{weights[name]} is corrupt or truncated') and 'trust' not in message
        with pytest.raises(CorruptCheckpointError):  # trusting a corrupt file does not help, and is not tried
            load_weights(weights[name], trust_checkpoint=True)
    with pytest.raises(UnsafeCheckpointError, match=r'unsafe.pth needs arbitrary unpickling.*test_bad_inputs._Unsafe'
                       r'.*If you trust its source, pass --trust-checkpoint'):
        load_weights(weights['unsafe'])
    assert isinstance(load_weights(weights['unsafe'], trust_checkpoint=True)['meta'], _Unsafe)


def test_restore_weights_corrupt_unsafe_and_trusted(weights, tmp_path, capsys):
    image = _image(tmp_path / 'a.png')
    for name in ('truncated', 'random'):
        assert basicsr(['restore', str(image), '-o', str(tmp_path / 'out'), '--weights', weights[name]]) == 2
        err = capsys.readouterr().err
        assert f'{weights[name]} is corrupt or truncated' in err and 'trust' not in err
    assert basicsr(['restore', str(image), '-o', str(tmp_path / 'out'), '--weights', weights['unsafe']]) == 2
    assert 'If you trust its source, pass --trust-checkpoint' in capsys.readouterr().err
    assert basicsr(['restore', str(image), '-o', str(tmp_path / 'out'), '--weights', weights['unsafe'],
                         '--trust-checkpoint']) == 0
    assert (tmp_path / 'out' / 'a.png').is_file()


def test_basicsr_test_names_a_corrupt_pretrain_network(weights, tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=1)
    opt = {'name': 'corrupt_weights', 'model_type': 'VLUNetModel', 'num_gpu': 0,
           'datasets': {'test_1': {'name': 'set', 'type': 'PairedDegradationDataset', 'label': 4,
                                   'dataroot_gt': gt, 'dataroot_lq': lq}},
           'network_g': dict(TINY_VLUNET), 'network_clip': None,
           'path': {'pretrain_network_g': weights['random']}, 'val': {'save_img': False}}
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'test.yml', opt)], cwd=tmp_path)
    assert proc.returncode != 0
    verdict = [line for line in proc.stderr.splitlines() if line.startswith('vlunet_basicsr.')]
    assert verdict and verdict[-1].startswith('vlunet_basicsr.utils.checkpoint_util.CorruptCheckpointError: '
                                              f"{weights['random']} is corrupt or truncated"), proc.stderr[-3000:]
    assert 'trust' not in verdict[-1]


def test_clip_weights_and_adapters_name_a_corrupt_file(weights):
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    with pytest.raises(CorruptCheckpointError, match=rf"{weights['truncated']} is corrupt or truncated"):
        DegradationCLIP(pretrained=weights['truncated'], model_cfg=TINY_CLIP)
    with pytest.raises(CorruptCheckpointError, match=rf"{weights['random']} is corrupt or truncated"):
        DegradationCLIP(adapter_path=weights['random'], model_cfg=TINY_CLIP)


def test_converter_names_a_text_file_as_not_a_checkpoint(tmp_path):
    text = tmp_path / 'notes.ckpt'
    text.write_text('a text file, not a checkpoint\n')
    proc = run_script('convert_official_checkpoint', [text, '--output-dir', tmp_path / 'out'])
    assert proc.returncode == 1
    assert proc.stderr.startswith(f'error: {text} is corrupt or truncated: neither a zip archive nor a legacy '
                                  'PyTorch pickle'), proc.stderr[-2000:]
    assert 'Traceback' not in proc.stderr and not (tmp_path / 'out').exists()


# --- progress and a torch-free --help ---------------------------------------------------------------------------

def test_tiled_restore_reports_each_tile():
    from vlunet_basicsr.utils.tiling import tiled_restore
    calls = []
    tiled_restore(lambda patch: patch, torch.rand(1, 3, 40, 40), 16, 4, progress=lambda *a: calls.append(a))
    assert calls == [(i, 9) for i in range(1, 10)]


def test_restore_shows_progress_over_images_and_tiles(weights, tmp_path, capsys):
    folder = tmp_path / 'in'
    folder.mkdir()
    for name in ('a.png', 'b.png'):
        _image(folder / name, size=(40, 40))
    assert basicsr(['restore', str(folder), '-o', str(tmp_path / 'out'), '--weights', weights['net_g'],
                         '--tile', '16', '--tile-overlap', '4']) == 0
    err = capsys.readouterr().err
    assert 'restore: 100%' in err and '2/2' in err and 'tiles:' in err and '/9' in err


def test_restore_help_does_not_import_torch(tmp_path):
    proc, imported = run_front_door(['restore', '--help'], tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert '--trust-checkpoint' in proc.stdout and '{auto,cpu,cuda}' in proc.stdout, proc.stdout
    heavy = sorted(imported & {'torch', 'cv2', 'numpy', 'basicsr'})
    assert not heavy, heavy


def test_restore_parser_choices_match_the_package():
    from vlunet_basicsr.utils.cpu_allocator import CHOICES
    from vlunet_basicsr.utils.precision import AMP_DTYPES
    from vlunet_basicsr_cli.parsers import restore_parser
    actions = {action.option_strings[0]: action for action in restore_parser()._actions if action.option_strings}
    assert tuple(actions['--amp'].choices) == tuple(AMP_DTYPES)
    assert tuple(actions['--cpu-allocator'].choices) == tuple(CHOICES)
