"""basicsr export and basicsr restore --backend onnxruntime with the tiny VLUNet (with its CLIP encoder), exported
once per run (conftest.exported_vlunet): ONNX Runtime against torch at odd sizes, the two backends' restored files,
serve and the benchmark on the graph, the graph's shape, and the errors. The other systems: test_onnx_systems.py."""
import json

import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import (EXPORT_SEED, backend_images, degradation_readout, restore_main, restore_with_both_backends,
                      run_front_door, script_main)
from vlunet_basicsr.tools.export.onnx_runtime import load_onnx_networks
from vlunet_basicsr.tools.restore.restorer import load_networks
from vlunet_basicsr_cli import main as basicsr_main


def test_vlunet_export_matches_torch_at_two_sizes_and_restores_like_the_torch_backend(exported_vlunet, tmp_path,
                                                                                     capsys):
    opt, model = exported_vlunet
    assert model.is_file() and model.with_name('model.guidance.onnx').is_file()
    assert not list(model.parent.glob('*.partial.onnx'))
    torch.manual_seed(EXPORT_SEED)
    torch_net = load_networks(opt)
    onnx_net = load_onnx_networks(str(model), 'cpu')
    generator = torch.Generator().manual_seed(1)
    for shape in ((3, 3, 11, 29), (1, 3, 5, 7)):  # a third batch size and sizes the export did not verify
        lq = torch.rand(*shape, generator=generator)
        with torch.no_grad():
            vector = torch_net.clip.degradation_vector(lq)
            assert (onnx_net.clip.degradation_vector(lq) - vector).abs().max() <= 1e-4
            assert (onnx_net.net(lq, vector) - torch_net.net(lq, vector)).abs().max() <= 1e-4
    torch_out, onnx_out = restore_with_both_backends(tmp_path, opt, model, ['--tile', '16', '--tile-overlap', '4'])
    torch_rows, onnx_rows = degradation_readout(torch_out), degradation_readout(onnx_out)
    assert [row['predicted'] for row in torch_rows] == [row['predicted'] for row in onnx_rows]
    assert np.allclose([float(row['probability']) for row in torch_rows],
                       [float(row['probability']) for row in onnx_rows], atol=2e-4)
    assert 'Backend onnxruntime' in capsys.readouterr().out


def test_backend_and_export_errors_name_the_option_or_file(exported_vlunet, tmp_path, capsys):
    opt, model = exported_vlunet
    image = backend_images(tmp_path / 'in') / 'odd.png'
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


@pytest.mark.parametrize('argv', [
    ['export', '--help'], ['restore', 'x.png', '--backend', 'onnxruntime'],
    ['restore', 'x.png', '--backend', 'onnxruntime', '--onnx', 'm.onnx', '--amp', 'bf16']])
def test_export_help_and_backend_errors_answer_without_importing_torch(tmp_path, argv):
    proc, imported = run_front_door(argv, tmp_path)
    assert proc.returncode == (0 if '--help' in argv else 2) and 'torch' not in imported, proc.stdout + proc.stderr
    assert ('--verify-sizes' in proc.stdout) if '--help' in argv else ('--backend onnxruntime' in proc.stderr)


def test_benchmark_times_an_exported_graph_against_its_yaml_without_exporting_again(exported_vlunet, tmp_path):
    opt, model = exported_vlunet
    report = tmp_path / 'onnx.json'
    assert script_main('benchmark')(['--backend', 'onnxruntime', '-opt', opt, '--onnx', str(model),
                                     '--infer-sizes', '16', '21', '--warmup', '0', '--repeat', '1',
                                     '--profile', '3', '--json', str(report)]) == 0
    written = json.loads(report.read_text())
    results = written['results']['onnxruntime']
    assert 'export_s' not in results and written['system']['weights'] == f'the weights of {opt}'
    for size in (16, 21):
        row = results[f'inference_{size}']  # the YAML's weights and the guidance graph: the same restored image
        assert row['torch_eager_s'] > 0 and row['onnxruntime_s'] > 0 and row['max_abs_diff'] <= 1e-4
        kernels = row['onnxruntime_kernel_ms']  # ONNX Runtime's profile of the graph, by operator type
        assert 'Conv' in kernels and all(ms >= 0 for ms in kernels.values())
        assert list(kernels.values()) == sorted(kernels.values(), reverse=True)


def test_serve_runs_an_exported_system_as_restore_does(exported_vlunet, tmp_path):
    from vlunet_basicsr_cli.parsers import serve_parser
    from vlunet_basicsr.tools.serve.systems import load_systems
    opt, model = exported_vlunet
    args = serve_parser().parse_args(['--backend', 'onnxruntime', '--onnx', str(model)])
    exported = load_systems(None, torch.device('cpu'), exported=(args.backend, args.onnx, args.ov_precision,
                                                                  args.device))
    torch.manual_seed(EXPORT_SEED)
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


@pytest.mark.parametrize('system', ['exported_vlunet', 'exported_vlur'])
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


def test_the_export_optimizes_without_the_quadratic_slices_rule(monkeypatch):
    """`onnx_export._optimize`: onnxscript's default optimizer with `SKIPPED_REWRITE_RULES` left out while it runs
    (their matcher tries every node beside each node; torch's Slices, which carry steps, never match them), and
    the default rules back afterwards."""
    from onnxscript import rewriter

    from vlunet_basicsr.tools.export import onnx_export
    default = rewriter._DEFAULT_REWRITE_RULES
    assert set(onnx_export.SKIPPED_REWRITE_RULES) <= {getattr(rule, 'name', None) for rule in default}
    seen = []

    class Program:
        def optimize(self):
            seen.append(rewriter._DEFAULT_REWRITE_RULES)

    onnx_export._optimize(Program())
    names = [getattr(rule, 'name', None) for rule in seen[0]]
    assert 'SlicesSplit' not in names and len(names) == len(default) - 1
    assert rewriter._DEFAULT_REWRITE_RULES is default
