"""basicsr export and basicsr restore --backend onnxruntime for the systems other than VLU-Net: VL-UR (text-guided),
DGUNet (multi-stage, its Gram inverse), BasicSR's SwinIR (a size rule), exported through the command; a failed
verification; and the benchmark exporting the system of an option file itself (BasicSR's RRDBNet)."""
import json
import shutil

import onnx
import torch

import vlunet_basicsr  # noqa: F401
from conftest import (EXPORT_SIZES, degradation_readout, export_command, exportable_system,
                      restore_with_both_backends, script_main)
from vlunet_basicsr.tools.export.onnx_runtime import load_onnx_networks
from vlunet_basicsr.tools.restore.restorer import load_networks

SWINIR = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1.0, 'depths': [1],
          'embed_dim': 12, 'num_heads': [1], 'mlp_ratio': 2, 'upsampler': ''}
#: BasicSR's RRDBNet at scale 1 (a size rule of 4, its pixel-unshuffle): convolutions only, a quick export.
RRDBNET = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'scale': 1, 'num_feat': 4, 'num_block': 1,
           'num_grow_ch': 4}


def test_vlur_restores_with_the_predicted_or_the_given_type_like_the_torch_backend(exported_vlur, tmp_path):
    opt, model = exported_vlur
    torch_out, onnx_out = restore_with_both_backends(tmp_path / 'predicted', opt, model)
    assert [row['restored_as'] for row in degradation_readout(torch_out)] == \
        [row['restored_as'] for row in degradation_readout(onnx_out)]
    torch_out, onnx_out = restore_with_both_backends(tmp_path / 'given', opt, model, ['--degradation-type', 'low_haze'])
    assert {row['restored_as'] for row in degradation_readout(onnx_out)} == {'The image has haze + low degradation'}
    meta = load_onnx_networks(str(model), 'cpu').clip
    assert len(meta.prompts) == 11 and meta.prompt_features.shape == (11, 32)


def test_dgunet_export_matches_torch_at_odd_sizes(exported_dgunet, tmp_path):
    opt, model = exported_dgunet
    assert not model.with_name('model.guidance.onnx').exists()  # unguided: one graph
    graph = onnx.load(str(model)).graph
    assert any(node.op_type == 'Inverse' and node.domain == 'com.microsoft' for node in graph.node)
    torch_net, onnx_net = load_networks(opt).net, load_onnx_networks(str(model), 'cpu').net
    lq = torch.rand(2, 3, 9, 35, generator=torch.Generator().manual_seed(2))  # below DGUNet's 16-pixel minimum
    with torch.no_grad():
        assert (onnx_net(lq) - torch_net(lq)).abs().max() <= 1e-4
    restore_with_both_backends(tmp_path / 'restore', opt, model)


def test_basicsr_swinir_exports_with_its_size_rule_and_restores_odd_sizes_tiled_like_torch(tmp_path, capsys):
    from vlunet_basicsr_cli import main as basicsr_main
    opt = exportable_system(tmp_path, SWINIR)
    model = tmp_path / 'model.onnx'  # the default verification: 64x64 at batch 2, then 45x61 at batch 1
    assert basicsr_main(['export', '-opt', opt, '-o', str(model)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert 'verify (2, 3, 64, 64)' in printed and 'verify (1, 3, 45, 61)' in printed and 'verified' in printed
    assert load_onnx_networks(str(model), 'cpu').size_rule == load_networks(opt).size_rule
    restore_with_both_backends(tmp_path, opt, model, ['--tile', '18', '--tile-overlap', '4'])  # 18: tiles padded


def _copy_of(model):
    """A stand-in for the traced export (`onnx_export._export`) that writes a copy of the graph ``model`` already
    exported from the same YAML: the tests of what export does around the tracing need no tracing of their own."""
    def export(module, args, input_names, output_name, dynamic_shapes, opset, path, metadata):
        shutil.copyfile(model if output_name == 'output' else model.with_name('model.guidance.onnx'), path)
    return export


def test_a_failed_verification_keeps_no_file(exported_dgunet, tmp_path, monkeypatch, capsys):
    from vlunet_basicsr.tools.export import onnx_export
    from vlunet_basicsr.tools.export.onnx_runtime import OnnxNetwork
    opt, model = exported_dgunet
    monkeypatch.setattr(onnx_export, '_export', _copy_of(model))
    call = OnnxNetwork.__call__
    monkeypatch.setattr(OnnxNetwork, '__call__', lambda self, lq, guidance=None: call(self, lq, guidance) + 1e-3)
    assert export_command(opt, tmp_path / 'bad.onnx') == 1
    assert 'failed verification' in capsys.readouterr().err
    assert not list(tmp_path.glob('*.onnx'))


def test_export_overwrite_replaces_the_output_and_no_other_file(exported_dgunet, tmp_path, monkeypatch, capsys):
    from vlunet_basicsr.tools.export import onnx_export
    opt, model = exported_dgunet
    monkeypatch.setattr(onnx_export, '_export', _copy_of(model))
    output = tmp_path / 'model.onnx'
    output.write_bytes(b'an earlier export')
    kept = tmp_path / 'model.onnx.partial.onnx'  # the name export once wrote its unverified graph to
    kept.write_bytes(b'a file the user keeps')
    assert export_command(opt, output, '--overwrite') == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert all(f"verify (1, 3, {size.replace('x', ', ')})" in printed for size in EXPORT_SIZES[1:])
    assert output.read_bytes() == model.read_bytes() and kept.read_bytes() == b'a file the user keeps'
    assert sorted(path.name for path in tmp_path.iterdir()) == ['model.onnx', 'model.onnx.partial.onnx']


def test_benchmark_exports_the_system_of_an_option_file_and_compares_it(tmp_path):
    opt = exportable_system(tmp_path / 'rrdbnet', RRDBNET)
    report = tmp_path / 'onnx.json'
    assert script_main('benchmark')(['--backend', 'onnxruntime', '-opt', opt, '--infer-sizes', '13', '20',
                                     '--warmup', '0', '--repeat', '1', '--json', str(report)]) == 0
    written = json.loads(report.read_text())
    results = written['results']['onnxruntime']
    assert results['export_s'] > 0 and written['system']['weights'] == 'random weights'
    for size in (13, 20):  # 13: padded to RRDBNet's pixel-unshuffle (4 at scale 1) by the size rule, on both sides
        row = results[f'inference_{size}']
        assert row['torch_eager_s'] > 0 and row['onnxruntime_s'] > 0 and row['max_abs_diff'] <= 1e-4
