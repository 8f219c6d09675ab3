"""basicsr export and basicsr restore --backend onnxruntime: tiny VLUNet (with its CLIP encoder), DGUNet and VL-UR
exported through the command, ONNX Runtime against torch at odd sizes, the two backends' restored files, and the
errors. Each export takes tens of seconds on two cores, so every network is exported once per module."""
import csv
import json

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import restore_main, run_front_door, script_main, write_yaml
from test_vlunet_model import TINY_CLIP_NET
from vlunet_basicsr.tools.export.onnx_runtime import load_onnx_networks
from vlunet_basicsr.tools.restore.restorer import load_networks
from vlunet_basicsr_cli import main as basicsr_main

TINY_DGUNET = {'type': 'DGUNet', 'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4, 'depth': 1}
TINY_VLUR = {'type': 'VLURNet', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'heads': [1, 1, 1, 1], 'text_dim': 32}
SIZES = ['24x24', '13x21']
SEED = 5


def _system(root, network_g, network_clip=None, prompts=None):
    """A test YAML with random weights for ``network_g`` (and ``network_clip``) under ``root``.

    The tiny CLIP has random weights drawn when it is built: every load of the YAML is preceded by
    ``torch.manual_seed(SEED)``, so the exported, the reference and the torch backend's encoders are one encoder.
    """
    from basicsr.archs import build_network
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(network_g)).state_dict()}, root / 'net_g.pth')
    opt = {'name': 'export', 'model_type': 'GuidedRestorationModel', 'network_g': dict(network_g),
           'network_clip': network_clip, 'path': {'pretrain_network_g': str(root / 'net_g.pth')}}
    if prompts is not None:
        opt['prompts'] = prompts
    return write_yaml(root / 'test.yml', opt)


def _export(root, network_g, network_clip=None, prompts=None):
    opt = _system(root, network_g, network_clip, prompts)
    torch.manual_seed(SEED)
    code = basicsr_main(['export', '-opt', opt, '-o', str(root / 'model.onnx'), '--verify-sizes', *SIZES])
    assert code == 0
    return opt, root / 'model.onnx'


@pytest.fixture
def vlunet(exported_vlunet):
    """The tiny VLUNet exported once per test process (conftest.exported_vlunet)."""
    return exported_vlunet


@pytest.fixture(scope='module')
def vlur(tmp_path_factory):
    return _export(tmp_path_factory.mktemp('vlur'), TINY_VLUR, dict(TINY_CLIP_NET), 'cdd11')


def _images(folder):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    cv2.imwrite(str(folder / 'odd.png'), rng.integers(0, 256, (19, 27, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'gray.png'), rng.integers(0, 256, (6, 9), dtype=np.uint8))  # below one multiple of 8
    cv2.imwrite(str(folder / 'deep.png'), rng.integers(0, 65536, (16, 24, 3), dtype=np.uint16))
    return folder


def _both_backends(tmp_path, opt, model, extra=(), backend=('--backend', 'onnxruntime')):
    """Restore one folder with the torch backend and ``backend``; returns the two output folders."""
    images = _images(tmp_path / 'in')
    torch_out, onnx_out = tmp_path / 'torch', tmp_path / 'onnx'
    torch.manual_seed(SEED)
    assert restore_main([str(images), '-o', str(torch_out), '-opt', opt, *extra]) == 0
    assert restore_main([str(images), '-o', str(onnx_out), *backend, '--onnx', str(model), *extra]) == 0
    for name in ('odd.png', 'gray.png', 'deep.png'):
        a = cv2.imread(str(torch_out / name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        b = cv2.imread(str(onnx_out / name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name  # the same file within rounding
    return torch_out, onnx_out


def _readout(folder):
    with open(folder / 'degradations.csv') as f:
        return list(csv.DictReader(f))


def test_vlunet_export_matches_torch_at_two_sizes_and_restores_like_the_torch_backend(vlunet, tmp_path, capsys):
    opt, model = vlunet
    assert model.is_file() and model.with_name('model.guidance.onnx').is_file()
    assert not list(model.parent.glob('*.partial.onnx'))
    torch.manual_seed(SEED)
    torch_net = load_networks(opt)
    onnx_net = load_onnx_networks(str(model), 'cpu')
    generator = torch.Generator().manual_seed(1)
    for shape in ((3, 3, 11, 29), (1, 3, 5, 7)):  # a third batch size and sizes the export did not verify
        lq = torch.rand(*shape, generator=generator)
        with torch.no_grad():
            vector = torch_net.clip.degradation_vector(lq)
            assert (onnx_net.clip.degradation_vector(lq) - vector).abs().max() <= 1e-4
            assert (onnx_net.net(lq, vector) - torch_net.net(lq, vector)).abs().max() <= 1e-4
    torch_out, onnx_out = _both_backends(tmp_path, opt, model, ['--tile', '16', '--tile-overlap', '4'])
    torch_rows, onnx_rows = _readout(torch_out), _readout(onnx_out)
    assert [row['predicted'] for row in torch_rows] == [row['predicted'] for row in onnx_rows]
    assert np.allclose([float(row['probability']) for row in torch_rows],
                       [float(row['probability']) for row in onnx_rows], atol=2e-4)
    assert 'Backend onnxruntime' in capsys.readouterr().out


def test_dgunet_export_matches_torch_at_odd_sizes(tmp_path, capsys):
    opt, model = _export(tmp_path, TINY_DGUNET)
    printed = capsys.readouterr().out
    assert 'verify (2, 3, 24, 24)' in printed and 'verify (1, 3, 13, 21)' in printed and 'verified' in printed
    assert not model.with_name('model.guidance.onnx').exists()  # unguided: one graph
    torch_net, onnx_net = load_networks(opt).net, load_onnx_networks(str(model), 'cpu').net
    lq = torch.rand(2, 3, 9, 35, generator=torch.Generator().manual_seed(2))  # below DGUNet's 16-pixel minimum
    with torch.no_grad():
        assert (onnx_net(lq) - torch_net(lq)).abs().max() <= 1e-4
    _both_backends(tmp_path / 'restore', opt, model)


SWINIR = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1.0, 'depths': [1],
          'embed_dim': 12, 'num_heads': [1], 'mlp_ratio': 2, 'upsampler': ''}


def test_basicsr_swinir_exports_with_its_size_rule_and_restores_odd_sizes_tiled_like_torch(tmp_path, capsys):
    opt = _system(tmp_path, SWINIR)
    model = tmp_path / 'model.onnx'  # the default verification: 64x64 at batch 2, then 45x61 at batch 1
    assert basicsr_main(['export', '-opt', opt, '-o', str(model)]) == 0, capsys.readouterr().err
    assert 'verify (1, 3, 45, 61)' in capsys.readouterr().out
    assert load_onnx_networks(str(model), 'cpu').size_rule == load_networks(opt).size_rule
    _both_backends(tmp_path, opt, model, ['--tile', '18', '--tile-overlap', '4'])  # 18: each tile is padded


def test_vlur_restores_with_the_predicted_or_the_given_type_like_the_torch_backend(vlur, tmp_path):
    opt, model = vlur
    torch_out, onnx_out = _both_backends(tmp_path / 'predicted', opt, model)
    assert [row['restored_as'] for row in _readout(torch_out)] == [row['restored_as'] for row in _readout(onnx_out)]
    torch_out, onnx_out = _both_backends(tmp_path / 'given', opt, model, ['--degradation-type', 'low_haze'])
    assert {row['restored_as'] for row in _readout(onnx_out)} == {'The image has haze + low degradation'}
    meta = load_onnx_networks(str(model), 'cpu').clip
    assert len(meta.prompts) == 11 and meta.prompt_features.shape == (11, 32)


def test_a_failed_verification_keeps_no_file(tmp_path, monkeypatch, capsys):
    from vlunet_basicsr.tools.export.onnx_runtime import OnnxNetwork
    call = OnnxNetwork.__call__
    monkeypatch.setattr(OnnxNetwork, '__call__', lambda self, lq, guidance=None: call(self, lq, guidance) + 1e-3)
    opt = _system(tmp_path, {**TINY_DGUNET, 'depth': 0})
    assert basicsr_main(['export', '-opt', opt, '-o', str(tmp_path / 'bad.onnx'), '--verify-sizes', *SIZES]) == 1
    assert 'failed verification' in capsys.readouterr().err
    assert not list(tmp_path.glob('*.onnx'))


def test_backend_and_export_errors_name_the_option_or_file(vlunet, tmp_path, capsys):
    opt, model = vlunet
    image = _images(tmp_path / 'in') / 'odd.png'
    out = str(tmp_path / 'out')
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime']) == 2
    assert 'needs --onnx' in capsys.readouterr().err
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime', '--onnx', str(model), '-opt', opt]) == 2
    assert '-opt belong(s) to the torch backend' in capsys.readouterr().err
    assert restore_main([str(image), '-o', out, '--onnx', str(model), '-opt', opt]) == 2
    assert '--onnx goes with --backend onnxruntime' in capsys.readouterr().err
    missing = tmp_path / 'missing.onnx'
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime', '--onnx', str(missing)]) == 2
    assert f'no ONNX file at {missing}' in capsys.readouterr().err
    garbage = tmp_path / 'garbage.onnx'
    garbage.write_bytes(b'not a graph')
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime', '--onnx', str(garbage)]) == 2
    assert f'{garbage} is not a loadable ONNX graph' in capsys.readouterr().err
    guidance = model.with_name('model.guidance.onnx')
    assert restore_main([str(image), '-o', out, '--backend', 'onnxruntime', '--onnx', str(guidance)]) == 2
    assert f'{guidance} is a guidance graph, not a restoration graph' in capsys.readouterr().err
    assert basicsr_main(['export', '-opt', opt, '-o', str(tmp_path / 'model.pt')]) == 2
    assert 'must end with .onnx' in capsys.readouterr().err
    with pytest.raises(SystemExit):
        basicsr_main(['export', '-opt', opt, '-o', str(tmp_path / 'm.onnx'), '--verify-sizes', '24', '13x21'])
    assert 'expected HEIGHTxWIDTH' in capsys.readouterr().err


@pytest.mark.parametrize('argv', [['export', '--help'], ['restore', 'x.png', '--backend', 'onnxruntime'],
                                  ['restore', 'x.png', '--backend', 'onnxruntime', '--onnx', 'm.onnx', '--amp', 'bf16']])
def test_export_help_and_backend_errors_answer_without_importing_torch(tmp_path, argv):
    proc, imported = run_front_door(argv, tmp_path)
    assert proc.returncode == (0 if '--help' in argv else 2) and 'torch' not in imported, proc.stdout + proc.stderr
    assert ('--verify-sizes' in proc.stdout) if '--help' in argv else ('--backend onnxruntime' in proc.stderr)


def test_benchmark_compares_onnxruntime_with_torch_eager(tmp_path):
    report = tmp_path / 'onnx.json'
    assert script_main('benchmark')(['--backend', 'onnxruntime', '--preset', 'tiny', '--clip', 'small',
                                     '--infer-sizes', '16', '20', '--warmup', '0', '--repeat', '1',
                                     '--profile', '3', '--json', str(report)]) == 0
    results = json.loads(report.read_text())['results']['onnxruntime']
    for size in (16, 20):
        row = results[f'inference_{size}']
        assert row['torch_eager_s'] > 0 and row['onnxruntime_s'] > 0 and row['max_abs_diff'] <= 1e-4
        kernels = row['onnxruntime_kernel_ms']  # ONNX Runtime's profile of the graph, by operator type
        assert 'Conv' in kernels and all(ms >= 0 for ms in kernels.values())
        assert list(kernels.values()) == sorted(kernels.values(), reverse=True)


def test_serve_runs_an_exported_system_as_restore_does(vlunet, tmp_path):
    from vlunet_basicsr_cli.parsers import serve_parser
    from vlunet_basicsr.tools.serve.systems import load_systems
    opt, model = vlunet
    args = serve_parser().parse_args(['--backend', 'onnxruntime', '--onnx', str(model)])
    exported = load_systems(None, torch.device('cpu'), exported=(args.backend, args.onnx, args.ov_precision,
                                                                  args.device))
    torch.manual_seed(SEED)
    reference = load_systems([opt], torch.device('cpu'))
    assert [system.name for system in exported] == ['model'] and exported[0].class_names
    rgb = np.random.default_rng(0).random((19, 27, 3), dtype=np.float32)
    a, b = exported[0].restorer.restore(rgb), reference[0].restorer.restore(rgb)
    assert a.rgb.shape == rgb.shape and np.abs(a.rgb - b.rgb).max() < 1e-4
    assert a.prediction.label == b.prediction.label


@pytest.mark.parametrize('argv, error', [
    (['--backend', 'onnxruntime'], '--backend onnxruntime needs --onnx MODEL.onnx'),
    (['-opt', 'a.yml', '--backend', 'openvino', '--onnx', 'm.onnx'], '-opt belong(s) to the torch backend'),
    (['-opt', 'a.yml', '--ov-precision', 'bf16'], '--ov-precision goes with --backend openvino')])
def test_serve_refuses_backend_flags_that_do_not_fit(argv, error, capsys):
    from vlunet_basicsr_cli.parsers import serve_parser
    with pytest.raises(SystemExit):
        serve_parser().parse_args(argv)
    assert error in capsys.readouterr().err


@pytest.mark.parametrize('system', ['vlunet', 'vlur'])
def test_exported_restoration_graphs_have_no_channel_split_and_no_transpose_around_the_norms(system, request):
    """The graph shaped for the runtimes (`restormer_blocks.conv_part`, `_ChannelNorm`): OpenVINO's CPU plugin runs
    a channel split with its reference kernel, and the norms' transposes cost it more than the reductions."""
    import onnx
    _, model = request.getfixturevalue(system)
    graph = onnx.load(str(model)).graph
    ops = [node.op_type for node in graph.node]
    assert 'Split' not in ops and 'LayerNormalization' not in ops
    producers = {output: node.op_type for node in graph.node for output in node.output}
    norms_after_transpose = [node.name for node in graph.node if node.op_type == 'ReduceMean'
                             and producers.get(node.input[0]) == 'Transpose']
    assert not norms_after_transpose


@pytest.mark.parametrize('norm_type', ['WithBias', 'BiasFree'])
def test_the_forms_traced_for_export_compute_the_eager_numbers(norm_type, monkeypatch):
    """Each module's export-only form (`torch.compiler.is_exporting()`) against its eager form, random weights."""
    from vlunet_basicsr.archs.restormer_blocks import GDFN, MDTA, LayerNorm
    from vlunet_basicsr.archs.vlunet_arch import KeyCrossAttention
    from vlunet_basicsr.archs.vlur_arch import PGCA
    torch.manual_seed(0)
    x, key_map, text = torch.randn(2, 12, 9, 11), torch.randn(2, 6, 9, 11), torch.randn(2, 16)
    calls = [(LayerNorm(12, norm_type), (x,)), (MDTA(12, 2, True), (x,)), (GDFN(12, 2.66, True), (x,)),
             (KeyCrossAttention(12, 6, 3, False), (x, key_map)),
             (PGCA(12, 2, text_dim=16, text_query_size=4), (x, text))]
    with torch.no_grad():
        for module, _ in calls:
            for parameter in module.parameters():
                parameter.uniform_(-1, 1)
        eager = [module(*args) for module, args in calls]
        monkeypatch.setattr(torch.compiler, 'is_exporting', lambda: True)
        for (module, args), expected in zip(calls, eager):
            assert (module(*args) - expected).abs().max() <= 1e-5 * expected.abs().max(), type(module).__name__
