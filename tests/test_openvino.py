"""basicsr restore --backend openvino: the exported tiny VLUNet (with its CLIP encoder) in OpenVINO, f32 against
the torch backend's files (tiled), bf16 close to them, and the errors of the backend's options.

OpenVINO runs in processes of its own here (`conftest.fresh_fork_context`): a pytest-xdist worker that had run
OpenVINO in-process went down soon after, with no Python fault and no signal handler run, in four full test runs of
five (docs/onnx.md)."""
import importlib.util
from concurrent.futures import ProcessPoolExecutor

import numpy as np
import pytest
import torch

if importlib.util.find_spec('openvino') is None:
    pytest.skip('openvino is not installed (pip install -e .[openvino])', allow_module_level=True)

from conftest import (EXPORT_SEED, assert_same_restored_images, backend_images, degradation_readout,  # noqa: E402
                      fresh_fork_context, restore_main, run_cli)
from vlunet_basicsr.tools.export.onnx_runtime import load_onnx_networks  # noqa: E402
from vlunet_basicsr_cli import main as basicsr_main  # noqa: E402


def _in_a_fork(function, *args):
    """``function(*args)`` in a process of `fresh_fork_context`."""
    with ProcessPoolExecutor(1, mp_context=fresh_fork_context()) as pool:
        return pool.submit(function, *args).result(timeout=300)


def test_openvino_f32_restores_the_torch_backends_files_and_readout(exported_vlunet, tmp_path):
    opt, model = exported_vlunet
    images, torch_out, ov_out = backend_images(tmp_path / 'in'), tmp_path / 'torch', tmp_path / 'openvino'
    tiles = ['--tile', '16', '--tile-overlap', '4']
    torch.manual_seed(EXPORT_SEED)
    assert restore_main([images, '-o', torch_out, '-opt', opt, *tiles]) == 0
    proc = _in_a_fork(run_cli, ['restore', str(images), '-o', str(ov_out), '--backend', 'openvino', '--ov-precision',
                                'f32', '--onnx', str(model), *tiles], tmp_path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert 'Backend openvino' in proc.stdout and 'inference precision f32' in proc.stdout, proc.stdout[-2000:]
    assert_same_restored_images(torch_out, ov_out)
    torch_rows, ov_rows = degradation_readout(torch_out), degradation_readout(ov_out)
    assert [row['predicted'] for row in torch_rows] == [row['predicted'] for row in ov_rows]
    assert np.allclose([float(row['probability']) for row in torch_rows],
                       [float(row['probability']) for row in ov_rows], atol=2e-4)


def _openvino_outputs(model, lq, vector):
    """In a process of its own: OpenVINO's image features and restored images at each precision, and the precision
    run."""
    from vlunet_basicsr.tools.export.onnx_runtime import load_exported_networks
    outputs = {}
    for precision in ('f32', 'bf16'):
        networks = load_exported_networks('openvino', model, 'cpu', ov_precision=precision)
        outputs[precision] = (networks.clip.degradation_vector(lq).numpy(), networks.net(lq, vector).numpy(),
                              networks.net.runtime.precision)
    return outputs


def test_openvino_precisions_against_onnxruntime_on_the_graphs(exported_vlunet):
    """f32 within 1e-4 of ONNX Runtime (float32); bf16, where the CPU has bf16 units, differs but within 0.05."""
    _, model = exported_vlunet
    reference = load_onnx_networks(str(model), 'cpu')
    lq = torch.rand(2, 3, 21, 27, generator=torch.Generator().manual_seed(1))
    vector = reference.clip.degradation_vector(lq)
    expected = reference.net(lq, vector).numpy()
    outputs = _in_a_fork(_openvino_outputs, str(model), lq, vector)
    for precision, bound in (('f32', 1e-4), ('bf16', 0.05)):
        features, restored, ran = outputs[precision]
        assert np.abs(features - vector.numpy()).max() <= bound
        difference = np.abs(restored - expected).max()
        assert difference <= bound
        if ran == 'bf16':
            assert difference > 1e-5  # bf16 arithmetic did run


def test_openvino_option_errors_name_the_option(exported_vlunet, tmp_path, capsys):
    _, model = exported_vlunet
    image = backend_images(tmp_path / 'in') / 'odd.png'
    out = str(tmp_path / 'out')
    with pytest.raises(SystemExit):
        basicsr_main(['restore', str(image), '-o', out, '--backend', 'openvino', '--onnx', str(model),
                      '--ov-precision', 'fp8'])
    assert "--ov-precision: invalid choice: 'fp8'" in capsys.readouterr().err
    from vlunet_basicsr.tools.export.openvino_runtime import OpenVinoRuntime
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
