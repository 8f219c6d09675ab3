"""The demo pipeline end to end at a reduced size (tiny images, a few iterations): report shape and files.
The full demo (`make demo`) is checked by hand; its figures are in README."""
import json
import os
import types

import pytest

from conftest import REPO, run_cli


def test_quick_demo_writes_the_report(tmp_path, monkeypatch, capsys):
    """scripts/run_demo.py --quick in this process, its three ``basicsr`` runs too (through `run_cli`; the lines it
    prints before each, with their flags, are checked). Training reads its batches in this process: a DataLoader
    worker would be a fork of the pytest-xdist worker, whose channel it shares."""
    monkeypatch.setenv('MPLCONFIGDIR', str(tmp_path / 'demo_output' / '.matplotlib'))
    monkeypatch.syspath_prepend(os.path.join(REPO, 'scripts'))
    monkeypatch.chdir(tmp_path)
    import run_demo

    def run(command, check, env):
        args = command[1:] + (['datasets:train:num_worker_per_gpu=0'] if command[1] == 'train' else [])
        proc = run_cli(args, cwd=os.getcwd())
        assert check and proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]

    monkeypatch.setattr(run_demo, 'subprocess', types.SimpleNamespace(run=run))
    assert run_demo.main(['--quick', '--seed', '3', '--processes', '1']) == 0
    stdout = capsys.readouterr().out
    assert 'randomly initialised' in stdout
    out = tmp_path / 'demo_output'
    report = json.loads((out / 'report.json').read_text())
    assert set(report['tasks']) == {'denoise15', 'denoise25', 'denoise50', 'haze', 'rain', 'blur', 'lowlight'}
    for task in report['tasks'].values():
        assert set(task) == {'input_psnr', 'output_psnr', 'input_ssim', 'output_ssim'}
        assert all(isinstance(v, float) for v in task.values())
    assert 0 <= report['clip_accuracy'] <= 1 and report['seconds'] > 0
    assert list(report['stage_seconds']) == ['data', 'stage 1', 'stage 2', 'test']  # what a budget is made of
    assert sum(report['stage_seconds'].values()) <= report['seconds'] + 0.5
    assert report['cpu'] and f"s on {report['cpu']}" in stdout
    assert report['training_processes'] == 1
    assert report['manual_seed'] == 3 and stdout.count('--force_yml manual_seed=3') == 3  # every stage
    assert len(report['confusion_matrix']) == 7
    for name in ('report.md', 'grid.png', 'similarity.png'):
        assert (out / name).is_file()
    assert (out / 'datasets' / 'haze_train' / 'lq.lmdb' / 'meta_info.txt').is_file()
    # stage 1 trained the small backbone, and stage 2 and the test ran on it (they load it by path)
    assert (tmp_path / 'experiments' / 'demo_clip_adapter' / 'models' / 'net_clip_backbone_latest.pth').is_file()
    assert report['clip_backbone'].startswith('small backbone trained in stage 1')
    assert not (tmp_path.parent / 'demo_output').exists()  # nothing outside the working directory


def test_stage2_amp_reaches_stage_two_only(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, 'scripts'))
    import run_demo
    settings = run_demo.QUICK
    assert 'train:amp=bf16' in run_demo.overrides(settings, None, 'stage2', 10, 'bf16')
    assert not any(v.startswith('train:amp') for stage in ('stage1', 'test')
                   for v in run_demo.overrides(settings, None, stage, 10, 'bf16'))
    assert not any(v.startswith('train:amp') for v in run_demo.overrides(settings, None, 'stage2', 10))


def test_the_full_run_trains_for_the_iterations_its_yamls_state(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(REPO, 'scripts'))
    import run_demo
    for stage in ('stage1', 'stage2'):
        assert not any('total_iter' in v for v in run_demo.overrides(run_demo.FULL, None, stage, 10))
        assert any('total_iter' in v for v in run_demo.overrides(run_demo.QUICK, None, stage, 10))


def test_the_training_stages_run_under_torchrun_with_the_batches_split(monkeypatch, capsys):
    """``--processes N``: stages 1 and 2 start N ranks with torchrun, each training its share of the
    YAML's batch; the test stays one ``basicsr test``; a batch the ranks cannot share is refused, naming the file."""
    monkeypatch.syspath_prepend(os.path.join(REPO, 'scripts'))
    import run_demo
    commands = []
    monkeypatch.setattr(run_demo, 'subprocess', types.SimpleNamespace(
        run=lambda command, check, env: commands.append((command, env['OMP_NUM_THREADS']))))
    run_demo.basicsr('train', '-opt', 'stage2.yml', *run_demo.overrides(run_demo.FULL, None, 'stage2', 10,
                                                                        processes=2), processes=2)
    run_demo.basicsr('test', '-opt', 'test.yml')
    (train, threads), (test, _) = commands
    assert os.path.basename(train[0]) == 'torchrun' and threads == '1'
    assert train[1:6] == ['--standalone', '--nproc_per_node=2', '-m', 'vlunet_basicsr.train', '--launcher']
    assert train[6:9] == ['pytorch', '-opt', 'stage2.yml']
    assert 'datasets:train:batch_size_per_gpu=1' in train  # the YAML's 2 images a step, one on each rank
    assert os.path.basename(test[0]) == 'basicsr' and test[1:] == ['test', '-opt', 'test.yml']
    assert 'torchrun --standalone --nproc_per_node=2' in capsys.readouterr().out
    assert run_demo.batch_per_process('stage1', 2) == 8 and run_demo.batch_per_process('stage1', 1) == 16
    with pytest.raises(ValueError, match=r'--processes 3: options/demo/train_clip_adapter_demo.yml trains batches '
                                         r'of 16'):
        run_demo.overrides(run_demo.FULL, None, 'stage1', 10, processes=3)
    assert not any('batch_size_per_gpu' in v for v in run_demo.overrides(run_demo.FULL, None, 'stage2', 10))


def test_a_process_count_that_cannot_share_the_batches_stops_before_any_work(tmp_path, monkeypatch, capsys):
    monkeypatch.syspath_prepend(os.path.join(REPO, 'scripts'))
    monkeypatch.chdir(tmp_path)
    import run_demo
    with pytest.raises(SystemExit) as stopped:
        run_demo.main(['--quick', '--processes', '3'])
    assert stopped.value.code == 2
    assert 'options/demo/train_clip_adapter_demo.yml trains batches of 16' in capsys.readouterr().err
    assert not os.listdir(tmp_path)  # no data built
