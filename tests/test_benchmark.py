"""scripts/benchmark.py runs for one tiny iteration and writes its JSON (a tool, not a timed test). The runs are in
this process (the script's ``__main__`` through runpy); --compare-release starts its own process per arch."""
import argparse
import json
import os
import runpy
import sys
import types

import pytest
import torch

from conftest import REPO


def _benchmark(monkeypatch, capfd, *argv):
    """``python scripts/benchmark.py ARGV`` in this process; returns (exit code, stdout, stderr), the output of
    the processes it starts included (capfd)."""
    monkeypatch.setattr(sys, 'argv', [os.path.join(REPO, 'scripts', 'benchmark.py'), *map(str, argv)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(sys.argv[0], run_name='__main__')
    out, err = capfd.readouterr()
    return exit_.value.code, out, err


def test_benchmark_runs_one_tiny_iteration(tmp_path, monkeypatch, capfd):
    out = tmp_path / 'bench.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '--preset', 'tiny', '--clip', 'small', '--size', '32',
                                      '--batch', '1', '--warmup', '0', '--repeat', '1', '--infer-size', '40', '--tile',
                                      '16', '--tile-overlap', '4', '--json', str(out))
    assert code == 0, stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report['results']) == {'train', 'inference_whole', 'inference_tiled'}
    train = report['results']['train']
    assert train['step_s'] > 0 and 0 < train['clip_share'] and train['peak_memory_mb'] >= 0
    assert report['machine']['torch'] and 'train' in stdout


def test_compare_release_reports_speedup_and_agreement(tmp_path, monkeypatch, capfd):
    """The per-arch runs in this process too (the DGUNet test below keeps their processes)."""
    from vlunet_basicsr.tools.benchmark import command, release

    def run_here(argv, check):
        assert argv[1:3] == ['-m', 'vlunet_basicsr.tools.benchmark']
        assert command.main(argv[3:]) == 0 or not check

    monkeypatch.setattr(release, 'subprocess', types.SimpleNamespace(run=run_here))
    out = tmp_path / 'compare.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '--compare-release', '--preset', 'tiny', '--clip', 'small',
                                      '--size', '32', '--batch', '1', '--warmup', '0', '--repeat', '1', '--json',
                                      str(out))
    assert code == 0, stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report['runs']) == {'VLUNet', 'VLUNetReleasePort'} and report['speedup'] > 0
    assert report['max_abs_output_diff'] < 1e-5 and report['max_abs_grad_diff'] < 1e-5
    assert 'speed-up' in stdout


def test_dgunet_compare_release_reports_speedup_and_stage_and_gradient_agreement(tmp_path, monkeypatch, capfd):
    """--arch DGUNet --compare-release: DGUNet and DGUNetReleasePort each in its own process, no CLIP vector."""
    out = tmp_path / 'compare.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '--arch', 'DGUNet', '--compare-release', '--preset', 'tiny',
                                      '--size', '32', '--batch', '1', '--warmup', '0', '--repeat', '1', '--flop-rate',
                                      '--json', str(out))
    assert code == 0, stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report['runs']) == {'DGUNet', 'DGUNetReleasePort'} and report['speedup'] > 0
    trains = [run['results']['train'] for run in report['runs'].values()]
    assert trains[0]['flops'] == trains[1]['flops'] > 0  # the same arithmetic, counted in each arch's process
    for train in trains:
        assert train['gflop_per_s'] == pytest.approx(train['flops'] / train['step_s'] / 1e9)
        assert train['share_of_matmul_rate'] == pytest.approx(train['gflop_per_s'] / train['matmul_gflop_per_s'])
    assert stdout.count('TFLOP per step') == 4  # each run prints its own, the summary both
    assert [run['config']['arch'] for run in report['runs'].values()] == ['DGUNetReleasePort', 'DGUNet']
    for run in report['runs'].values():
        assert set(run['results']) == {'train'} and run['results']['train']['clip_s'] == 0
    assert 0 < report['max_abs_output_diff'] < 1e-5 and 0 < report['max_abs_grad_diff'] < 1e-5
    assert 'DGUNet' in stdout and 'speed-up' in stdout


def test_a_training_step_counts_its_forward_and_backward_and_the_matmul_rate_is_measured(monkeypatch):
    from vlunet_basicsr.tools.benchmark import eager
    from vlunet_basicsr.tools.compare.measure import count_macs
    conv = torch.nn.Conv2d(4, 6, 3, padding=1)
    x = torch.rand(2, 4, 10, 12)  # no input gradient: the forward and the weight gradient, the same MACs each
    macs = 2 * 6 * 4 * 9 * 10 * 12
    assert count_macs(lambda: conv(x).sum().backward()) == 2 * macs
    assert eager.matmul_rate(torch.device('cpu'), side=64, warmup=0, repeat=1) > 0


def test_flop_rate_needs_the_eager_training_step(capsys, monkeypatch):
    from vlunet_basicsr.tools.benchmark import command
    for extra in (['--skip-train'], ['--compile'], ['--backend', 'onnxruntime']):
        with pytest.raises(SystemExit):
            command.main(['--flop-rate', *extra])
        assert '--flop-rate counts the eager torch training step' in capsys.readouterr().err


def test_dgunet_agreement_covers_every_stage_and_each_arch_builds_with_its_speed_options(monkeypatch):
    from vlunet_basicsr.tools.benchmark import systems
    args = argparse.Namespace(preset='tiny', size=24, batch=1, channels_last=False)
    agreement = systems.output_difference(args, 'DGUNetPlus')
    assert agreement['max_abs_output_diff'] < 1e-5 and agreement['max_abs_grad_diff'] < 1e-5
    assert systems.build_arch('DGUNet', args).channels_last is False
    assert systems.build_arch('DGUNetPlusReleasePort', args).channels_last is False
    args.channels_last = True
    assert systems.build_arch('DGUNet', args).channels_last is True
    from vlunet_basicsr.tools.reference import RELEASE_PORTS

    class Differs(RELEASE_PORTS['DGUNetPlusReleasePort']):  # the check must see a different network
        def _stages(self, y):
            return [stage + 1e-3 for stage in super()._stages(y)]

    monkeypatch.setitem(RELEASE_PORTS, 'DGUNetPlusReleasePort', Differs)
    assert systems.output_difference(args, 'DGUNetPlus')['max_abs_output_diff'] > 9e-4


def test_dgunet_plus_runs_training_and_inference_without_a_clip_vector(tmp_path, monkeypatch, capfd):
    out = tmp_path / 'plus.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '--arch', 'DGUNetPlus', '--preset', 'tiny', '--size', '24',
                                      '--batch', '1', '--warmup', '0', '--repeat', '1', '--infer-size', '20', '--tile',
                                      '16', '--tile-overlap', '4', '--json', str(out))
    assert code == 0, stderr[-2000:]
    results = json.loads(out.read_text())['results']
    assert set(results) == {'train', 'inference_whole', 'inference_tiled'}
    assert results['train']['step_s'] > 0 and results['train']['clip_s'] == 0


def test_compile_mode_and_gram_chunk_reach_torch_compile_and_restormer_ops(tmp_path, monkeypatch):
    from vlunet_basicsr.tools.benchmark import command
    from vlunet_basicsr.archs import restormer_ops
    monkeypatch.setattr(restormer_ops, 'GRAM_CHUNK', restormer_ops.GRAM_CHUNK)
    modes = []

    def record_compile(net, mode=None):  # stands in for torch.compile, which takes minutes on this CPU
        modes.append(mode)
        return net

    monkeypatch.setattr(torch, 'compile', record_compile)
    common = ['--preset', 'tiny', '--clip', 'none', '--skip-train', '--infer-size', '16', '--warmup', '0',
              '--repeat', '1', '--cpu-allocator', 'system']
    assert command.main(common + ['--compile', 'reduce-overhead', '--gram-chunk', '0',
                                    '--json', str(tmp_path / 'a.json')]) == 0
    assert modes == ['reduce-overhead'] and restormer_ops.GRAM_CHUNK == sys.maxsize
    assert command.main(common + ['--compile', '--gram-chunk', '512']) == 0
    assert modes[-1] == 'default' and restormer_ops.GRAM_CHUNK == 512
    config = json.loads((tmp_path / 'a.json').read_text())['config']
    assert config['compile'] == 'reduce-overhead' and config['gram_chunk'] == 0


def test_compile_regions_compiles_each_block_and_gdm_and_reports_the_first_run(tmp_path, monkeypatch):
    from vlunet_basicsr.tools.benchmark import command
    from vlunet_basicsr.archs.restormer_blocks import TransformerBlock
    from vlunet_basicsr.archs.vlunet_arch import DGDM
    compiled = []

    def record_compile(module, **compile_args):  # stands in for nn.Module.compile
        compiled.append((type(module), compile_args))

    monkeypatch.setattr(torch.nn.Module, 'compile', record_compile)
    common = ['--preset', 'tiny', '--clip', 'none', '--skip-train', '--infer-size', '16', '--warmup', '1',
              '--repeat', '1', '--cpu-allocator', 'system', '--json', str(tmp_path / 'r.json')]
    with pytest.raises(SystemExit):
        command.main(common + ['--compile-regions'])  # needs --compile
    assert command.main(common + ['--compile', 'max-autotune', '--compile-regions']) == 0
    # tiny preset: 7 stages of one block plus a one-block refinement, and a D-GDM in each of the 8 stages
    assert [kind for kind, _ in compiled].count(TransformerBlock) == 8
    assert [kind for kind, _ in compiled].count(DGDM) == 8 and len(compiled) == 16
    assert all(args == {'mode': 'max-autotune', 'dynamic': False} for _, args in compiled)
    whole = json.loads((tmp_path / 'r.json').read_text())['results']['inference_whole']
    assert whole['first_call_s'] > 0 and whole['seconds'] > 0


def test_channels_last_switch_reaches_vlunet(tmp_path, monkeypatch):
    from vlunet_basicsr.tools.benchmark import command
    from vlunet_basicsr.archs import vlunet_arch
    built = []

    class RecordingVLUNet(vlunet_arch.VLUNet):
        def __init__(self, **options):
            super().__init__(**options)
            built.append(self.channels_last)

    monkeypatch.setattr(vlunet_arch, 'VLUNet', RecordingVLUNet)
    common = ['--preset', 'tiny', '--clip', 'none', '--skip-train', '--infer-size', '16', '--warmup', '0',
              '--repeat', '1', '--cpu-allocator', 'system', '--json', str(tmp_path / 'c.json')]
    assert command.main(common + ['--no-channels-last']) == 0
    assert json.loads((tmp_path / 'c.json').read_text())['config']['channels_last'] is False
    assert command.main(common) == 0 and command.main(common + ['--channels-last']) == 0
    assert built == [False, True, True]


@pytest.mark.parametrize('arch', ['VLUNet', 'VLURNet'])
def test_amp_ab_alternates_float32_and_bf16_in_one_process(tmp_path, arch, monkeypatch, capfd):
    out = tmp_path / 'ab.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '--arch', arch, '--preset', 'tiny', '--clip', 'small',
                                      '--size', '32', '--batch', '1', '--warmup', '0', '--repeat', '1', '--amp', 'bf16',
                                      '--amp-ab', '--infer-sizes', '24', '--json', str(out))
    assert code == 0, stderr[-2000:]
    rows = json.loads(out.read_text())['results']['amp_ab']
    assert set(rows) == {'train', 'inference_24'}
    assert all(row['float32_s'] > 0 and row['bf16_s'] > 0 and row['speedup'] > 0 for row in rows.values())
    assert rows['inference_24']['max_abs_diff'] < 0.05


TINY_CLIP = {'embed_dim': 32, 'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'patch_size': 16,
                                             'head_width': 16},
             'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}
#: Option files with only what the benchmark reads; the clip names weights that do not exist here.
TINY_SYSTEMS = {
    'PromptIR': {'network_g': {'type': 'PromptIR', 'dim': 12, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                               'prompt_size': 16}, 'network_clip': None},
    'VLURNet': {'prompts': 'release',
                'network_g': {'type': 'VLURNet', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'heads': [1, 1, 1, 1],
                              'text_dim': 32},
                'network_clip': {'type': 'DegradationCLIP', 'pretrained': 'absent/open_clip.bin',
                                 'adapter_path': 'absent/net_clip.pth', 'model_cfg': TINY_CLIP}},
}


@pytest.mark.parametrize('arch', sorted(TINY_SYSTEMS))
def test_opt_builds_the_networks_of_an_option_file_with_random_weights(tmp_path, arch, monkeypatch, capfd,
                                                                        recwarn):
    """-opt: any arch of a YAML, fed and scored through the arch protocol; the clip's absent weights are not read."""
    import yaml
    opt = tmp_path / 'system.yml'
    opt.write_text(yaml.safe_dump(TINY_SYSTEMS[arch]))
    out = tmp_path / 'out.json'
    code, stdout, stderr = _benchmark(monkeypatch, capfd, '-opt', str(opt), '--size', '24', '--batch', '1',
                                      '--skip-inference', '--warmup', '0', '--repeat', '1', '--json', str(out))
    assert code == 0, stderr[-2000:]
    report = json.loads(out.read_text())
    system = report['system']
    assert system['arch'] == arch and system['weights'] == 'random weights' and system['params'] > 0
    assert system['encoder'] == (None if arch == 'PromptIR' else 'DegradationCLIP')
    assert set(report['results']) == {'train'} and report['results']['train']['step_s'] > 0
    warned = any('not loaded: the benchmark runs random weights' in str(w.message) for w in recwarn)
    assert (arch == 'VLURNet') == warned


def test_onnx_goes_with_a_backend_and_the_option_file_it_was_exported_from(tmp_path, capsys):
    from vlunet_basicsr.tools.benchmark import command
    opt, graph = tmp_path / 'test.yml', tmp_path / 'model.onnx'
    opt.write_text('network_g: {type: PromptIR}\n')
    graph.write_bytes(b'')
    for argv, message in ((['--backend', 'onnxruntime', '--onnx', str(graph)], '--onnx goes with --backend'),
                          (['-opt', str(opt), '--onnx', str(graph)], '--onnx goes with --backend'),
                          (['--backend', 'onnxruntime', '-opt', str(opt), '--onnx', str(tmp_path / 'no.onnx')],
                           f"--onnx: no file {tmp_path / 'no.onnx'}"),
                          (['--backend', 'onnxruntime', '--arch', 'DGUNet'], 'drop --compile, --amp, --arch')):
        with pytest.raises(SystemExit):
            command.main(argv)
        assert message in capsys.readouterr().err


def test_opt_with_an_override_restores_and_refuses_the_table_flags(tmp_path, capsys, monkeypatch):
    from vlunet_basicsr.tools.benchmark import command, systems
    import yaml
    opt = tmp_path / 'promptir.yml'
    opt.write_text(yaml.safe_dump(TINY_SYSTEMS['PromptIR']))
    common = ['-opt', str(opt), '--skip-train', '--infer-size', '19', '--warmup', '0', '--repeat', '1',
              '--cpu-allocator', 'system']
    assert command.main(common + ['--network-override', 'dim=6', 'heads=[1,1,1,1]',
                                    '--json', str(tmp_path / 'p.json')]) == 0
    report = json.loads((tmp_path / 'p.json').read_text())
    assert report['results']['inference_whole']['size'] == 19  # padded by the arch's size rule, cropped back
    from vlunet_basicsr.utils.timing import count_parameters
    assert report['system']['params'] < count_parameters(systems.build_from_options(str(opt))[0])  # dim 6 < 12
    for extra, message in ((['--arch', 'DGUNet'], 'drop --arch'), (['--network-override', 'dim'], 'key=value')):
        with pytest.raises(SystemExit):
            command.main(common + extra)
        assert message in capsys.readouterr().err


def test_the_script_is_a_front_on_the_package_and_the_package_runs_as_a_module(monkeypatch, capsys):
    import ast
    tree = ast.parse(open(os.path.join(REPO, 'scripts', 'benchmark.py')).read())
    assert not [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
    monkeypatch.setattr(sys, 'argv', ['benchmark', '--help'])  # --compare-release runs it as a process too
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module('vlunet_basicsr.tools.benchmark', run_name='__main__')
    out = capsys.readouterr().out
    assert exit_.value.code == 0 and '--compare-release' in out and '-opt' in out


def test_alternating_times_the_runs_in_turn_round_by_round():
    from vlunet_basicsr.utils.timing import alternating
    order = []
    medians = alternating({'a': lambda: order.append('a'), 'b': lambda: order.append('b')}, torch.device('cpu'),
                          warmup=1, repeat=2)
    assert order == ['a', 'b'] * 3 and set(medians) == {'a', 'b'} and all(m >= 0 for m in medians.values())
