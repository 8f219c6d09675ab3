"""scripts/benchmark.py runs for one tiny iteration and writes its JSON (a tool, not a timed test)."""
import json
import os
import subprocess
import sys

from conftest import REPO


def test_benchmark_runs_one_tiny_iteration(tmp_path):
    out = tmp_path / 'bench.json'
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'benchmark.py'), '--preset', 'tiny',
                           '--clip', 'small', '--size', '32', '--batch', '1', '--warmup', '0', '--repeat', '1',
                           '--infer-size', '40', '--tile', '16', '--tile-overlap', '4', '--json', str(out)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report['results']) == {'train', 'inference_whole', 'inference_tiled'}
    train = report['results']['train']
    assert train['step_s'] > 0 and 0 < train['clip_share'] and train['peak_memory_mb'] >= 0
    assert report['machine']['torch'] and 'train' in proc.stdout


def test_compare_release_reports_speedup_and_agreement(tmp_path):
    out = tmp_path / 'compare.json'
    proc = subprocess.run([sys.executable, os.path.join(REPO, 'scripts', 'benchmark.py'), '--compare-release',
                           '--preset', 'tiny', '--clip', 'small', '--size', '32', '--batch', '1', '--warmup', '0',
                           '--repeat', '1', '--json', str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert set(report['runs']) == {'VLUNet', 'VLUNetReleasePort'} and report['speedup'] > 0
    assert report['max_abs_output_diff'] < 1e-5 and report['max_abs_grad_diff'] < 1e-5
    assert 'speed-up' in proc.stdout
