"""Abuse of the newer surfaces (issue 33): image sizes read from headers before any decoding (the server's side:
test_serve.py, decompression bombs refused by --max-pixels with the memory bounded, a text file beside images, what
serve leaves in TMPDIR), argument errors of restore and serve before any work, a port in use, the overwrite policy of
export (the replaced file: test_onnx_systems.py), and VLU-Net's dim checked with the options."""
import io
import os
import resource
import socket
import struct

import cv2
import numpy as np
import pytest
from PIL import Image

import vlunet_basicsr  # noqa: F401
from conftest import REPO, run_cli, run_front_door
from vlunet_basicsr.utils.image_io import header_size

LIMIT = 40_000_000  # basicsr serve's default --max-pixels


def _encoded(format_name, size=(37, 23)):
    buffer = io.BytesIO()
    Image.new('RGB', size, (10, 200, 30)).save(buffer, format_name)
    return buffer.getvalue()


def test_header_size_reads_every_accepted_format_without_decoding(bombs):
    for format_name in ('PNG', 'JPEG', 'BMP', 'TIFF', 'WEBP'):
        assert header_size(_encoded(format_name), f'a.{format_name.lower()}') == (37, 23), format_name
    jpeg = bytearray(_encoded('JPEG'))
    sof = jpeg.index(b'\xff\xc0')  # baseline start of frame: length (2), precision (1), height, width
    jpeg[sof + 5:sof + 9] = struct.pack('>HH', 60000, 61000)
    assert header_size(bytes(jpeg), 'huge.jpg') == (61000, 60000)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert header_size(bombs['bomb40000'].read_bytes(), 'bomb40000.png') == (40000, 40000)
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB: nothing was decoded
    with pytest.raises(ValueError, match=r'cannot decode image notes.txt: not a PNG/JPEG/BMP/TIFF/WEBP file'):
        header_size(b'some text', 'notes.txt')
    with pytest.raises(ValueError, match=r'cannot decode image cut.png: its PNG header cannot be read: the file'):
        header_size(_encoded('PNG')[:20], 'cut.png')
    with pytest.raises(ValueError, match=r'cannot decode image empty.png: the file is empty'):
        header_size(b'', 'empty.png')


def test_read_upload_refuses_huge_headers_by_the_limit_before_decoding(bombs):
    from vlunet_basicsr.tools.serve.jobs import read_upload
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for name, size in (('bomb14000', '14000x14000'), ('header20000', '20000x20000'), ('bomb40000', '40000x40000')):
        with pytest.raises(ValueError) as refusal:
            read_upload(str(bombs[name]), f'{name}.png', LIMIT)
        assert str(refusal.value) == (f'{name}.png: {size} pixels is more than this server takes ({LIMIT} pixels); '
                                      'its --max-pixels sets the limit')
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # kB
    with pytest.raises(ValueError, match=r'notes.txt: not an image file \(accepted: .png, .jpg'):
        read_upload(str(bombs['bomb14000']), 'notes.txt', LIMIT)


def test_serve_on_a_port_in_use_says_so_before_loading_anything(tmp_path):
    tmp = tmp_path / 'tmp'
    tmp.mkdir()
    with socket.socket() as taken:
        taken.bind(('127.0.0.1', 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = run_cli(['serve', '-opt', tmp_path / 'missing.yml', '--port', port, '--device', 'cpu'], cwd=tmp_path,
                       env_extra={'TMPDIR': tmp})
    assert proc.returncode == 2, proc.stderr
    assert f'error: port {port} is in use; choose another with --port' in proc.stderr
    assert 'missing.yml' not in proc.stderr and os.listdir(tmp) == []


@pytest.mark.parametrize('command, tile', [('restore', ['--tile', '16', '--tile-overlap', '32']),
                                           ('restore', ['--tile', '-8']),
                                           ('serve', ['--tile', '16', '--tile-overlap', '32'])])
def test_tile_arguments_are_refused_before_any_work_and_torch(command, tile, tmp_path):
    given = [str(tmp_path / 'missing.png'), '-o', str(tmp_path / 'out')] if command == 'restore' else \
        ['-opt', str(tmp_path / 'missing.yml')]
    workdir = tmp_path / 'cwd'
    workdir.mkdir()
    proc, imported = run_front_door([command, *given, *tile], workdir, env_extra={'TMPDIR': str(tmp_path)})
    assert proc.returncode == 2 and 'torch' not in imported, proc.stderr
    overlap = tile[3] if len(tile) > 2 else 32
    assert (f'basicsr {command}: error: --tile {tile[1]} --tile-overlap {overlap}: need --tile >= 1 and 0 <= '
            '--tile-overlap < --tile') in proc.stderr
    assert 'missing' not in proc.stderr and os.listdir(tmp_path) == ['cwd'] and os.listdir(workdir) == []


def test_restore_on_cuda_without_a_gpu_is_a_clear_error(tmp_path, capsys):
    import torch
    if torch.cuda.is_available():
        pytest.skip('this machine has a CUDA GPU')
    from conftest import restore_main as main
    cv2.imwrite(str(tmp_path / 'a.png'), np.zeros((8, 8, 3), np.uint8))
    assert main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'), '--weights', str(tmp_path / 'net_g.pth'),
                 '--device', 'cuda']) == 2
    assert ('error: --device cuda: torch finds no CUDA GPU here (torch.cuda.is_available() is False); use --device '
            'cpu or auto') in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_export_refuses_an_existing_output_unless_overwrite(tmp_path, capsys):
    from vlunet_basicsr_cli import main
    output = tmp_path / 'model.onnx'
    output.write_bytes(b'a file the user keeps')
    assert main(['export', '-opt', str(tmp_path / 'missing.yml'), '-o', str(output)]) == 2
    assert f'error: -o/--output: {output} already exists: pass --overwrite to replace it' in capsys.readouterr().err
    assert output.read_bytes() == b'a file the user keeps'
    assert main(['export', '-opt', str(tmp_path / 'missing.yml'), '-o', str(output), '--overwrite']) == 2
    assert 'missing.yml' in capsys.readouterr().err  # past the check: the YAML is the next problem


def test_vlunet_dim_is_checked_with_the_options():
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    from vlunet_basicsr.tools.options import checks
    from vlunet_basicsr.tools.options.loading import load_yaml
    path = os.path.join(REPO, 'options', 'train_nhrbl.yml')
    for dim in (8, 11):
        opt = load_yaml(path)
        opt['network_g']['dim'] = dim
        with pytest.raises(ValueError, match=rf'network_g.dim: {dim} is (out of range; expected|not) an integer '
                                             r'>= 10 and a multiple of 2'):
            checks.check_declared_options(opt, path, True)
    with pytest.raises(ValueError, match='VLUNet: dim: 11 is not an integer >= 10 and a multiple of 2'):
        VLUNet(dim=11, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, de_dim=5, degradation_dim=32)
    with open(os.path.join(REPO, 'docs', 'option_reference.md')) as f:
        assert '| `dim` | int | `48` | Level-1 channels (at least 10, and even). Default: 48. |' in f.read()
