"""basicsr restore --backend openvino: the exported tiny VLUNet (with its CLIP encoder) in OpenVINO, f32 against
the torch backend's files (tiled), bf16 close to them, and the errors of the backend's options."""
import numpy as np
import pytest
import torch

pytest.importorskip('openvino', reason='openvino is not installed (pip install -e .[openvino])')

from conftest import restore_main  # noqa: E402
from test_onnx import _both_backends, _images, _readout  # noqa: E402
from vlunet_basicsr.tools.export.onnx_runtime import load_exported_networks, load_onnx_networks  # noqa: E402
from vlunet_basicsr.tools.export.openvino_runtime import OpenVinoRuntime  # noqa: E402
from vlunet_basicsr_cli import main as basicsr_main  # noqa: E402


@pytest.fixture
def vlunet(exported_vlunet):
    """The tiny VLUNet exported once per test process (conftest.exported_vlunet)."""
    return exported_vlunet


def test_openvino_f32_restores_the_torch_backends_files_and_readout(vlunet, tmp_path, capsys):
    opt, model = vlunet
    torch_out, ov_out = _both_backends(tmp_path, opt, model, ['--tile', '16', '--tile-overlap', '4'],
                                       ('--backend', 'openvino', '--ov-precision', 'f32'))
    torch_rows, ov_rows = _readout(torch_out), _readout(ov_out)
    assert [row['predicted'] for row in torch_rows] == [row['predicted'] for row in ov_rows]
    assert np.allclose([float(row['probability']) for row in torch_rows],
                       [float(row['probability']) for row in ov_rows], atol=2e-4)
    assert 'Backend openvino' in capsys.readouterr().out and 'inference precision f32' in \
        load_exported_networks('openvino', str(model), 'cpu').net.describe()


def test_openvino_precisions_against_onnxruntime_on_the_graphs(vlunet):
    """f32 within 1e-4 of ONNX Runtime (float32); bf16, where the CPU has bf16 units, differs but within 0.05."""
    _, model = vlunet
    reference = load_onnx_networks(str(model), 'cpu')
    lq = torch.rand(2, 3, 21, 27, generator=torch.Generator().manual_seed(1))
    vector = reference.clip.degradation_vector(lq)
    expected = reference.net(lq, vector)
    for precision, bound in (('f32', 1e-4), ('bf16', 0.05)):
        networks = load_exported_networks('openvino', str(model), 'cpu', ov_precision=precision)
        assert (networks.clip.degradation_vector(lq) - vector).abs().max() <= bound
        difference = (networks.net(lq, vector) - expected).abs().max()
        assert difference <= bound
        if networks.net.runtime.precision == 'bf16':
            assert difference > 1e-5  # bf16 arithmetic did run


def test_openvino_option_errors_name_the_option(vlunet, tmp_path, capsys):
    _, model = vlunet
    image = _images(tmp_path / 'in') / 'odd.png'
    out = str(tmp_path / 'out')
    with pytest.raises(SystemExit):
        basicsr_main(['restore', str(image), '-o', out, '--backend', 'openvino', '--onnx', str(model),
                      '--ov-precision', 'fp8'])
    assert "--ov-precision: invalid choice: 'fp8'" in capsys.readouterr().err
    with pytest.raises(ValueError, match="--ov-precision must be one of f32, bf16; got 'fp8'"):
        OpenVinoRuntime('fp8')
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime', '--onnx', str(model),
                         '--ov-precision', 'bf16']) == 2
    assert '--ov-precision goes with --backend openvino (not onnxruntime)' in capsys.readouterr().err
    assert restore_main([str(image), '-o', out, '--backend', 'openvino', '--onnx', str(model), '--amp', 'bf16']) == 2
    assert '--amp bf16 is for the torch backend (use --ov-precision)' in capsys.readouterr().err
    assert restore_main([str(image), '-o', out, '--backend', 'openvino', '--onnx', str(model),
                         '--device', 'cuda']) == 2
    assert '--backend openvino runs on the CPU; --device cuda' in capsys.readouterr().err
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a graph')
    assert restore_main([str(image), '-o', out, '--backend', 'openvino', '--onnx', str(garbage)]) == 2
    assert f'{garbage} is not a loadable ONNX graph' in capsys.readouterr().err
