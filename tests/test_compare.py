"""``basicsr compare``: two tiny systems trained, tested and measured on the same sets in one report whose every
figure comes from the run; failing systems reported while the others run; the compare file's checks; the
compare files shipped in options/."""
import copy
import json
import os
import os.path as osp
import statistics
import time

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from conftest import (REPO, TINY_CLIP_NET, TINY_DGUNET, TINY_VLUNET, run_cli, run_front_door, run_in_process,
                      write_image_pairs, write_yaml)
from vlunet_basicsr.tools import pipelines
from vlunet_basicsr.tools.compare import compare_file, plan, stages
from vlunet_basicsr.tools.compare.command import prepare_output
from vlunet_basicsr.tools.options.checks import check_declared_options
from vlunet_basicsr.tools.options.loading import load_yaml

ENV = {'OMP_NUM_THREADS': '1'}


def _test_sets(gt, lq):
    return {'test_1': {'name': 'rain', 'type': 'PairedDegradationDataset', 'label': 4, 'dataroot_gt': gt,
                       'dataroot_lq': lq},
            'test_2': {'name': 'noise25', 'type': 'PairedDegradationDataset', 'label': 1, 'dataroot_gt': gt,
                       'noise_sigma': 25, 'noise_seed': 0}}


def _train_opt(gt, lq, network_g, network_clip=None):
    return {'name': 'anything', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {'train': {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16,
                                   'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                                   'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq},
                                               {'name': 'denoise', 'label': 1, 'dataroot_gt': gt, 'noise_sigma': 25}]}},
            'network_g': dict(network_g), 'network_clip': network_clip, 'path': {},
            'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 50,
                      'scheduler': {'type': 'LinearWarmupCosineLR', 'warmup_iter': 10, 'total_iter': 50},
                      'pixel_opt': {'type': 'L1Loss'}},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': 50, 'use_tb_logger': False}}


def _independent_macs(network_g, guidance=None):
    net = build_network(dict(network_g)).eval()
    image = torch.rand(1, 3, 256, 256)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        net(image) if guidance is None else net(image, guidance)
    return counter.get_total_flops() // 2, sum(p.numel() for p in net.parameters())


def _run_pipeline_here(command, opt_path, root, log_path):
    """`stages.run_pipeline` with the run in this process: its output in the log, its error raised as
    `stages.StageFailed` from the log (`test_a_stage_runs_in_a_process_of_its_own` runs the real one)."""
    start = time.time()
    proc = run_in_process(pipelines.run, command, opt_path, root_path=root, cwd=os.getcwd())
    with open(log_path, 'w') as log:
        log.write(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise stages.StageFailed(f'{stages.error_of_log(proc.stdout + proc.stderr)}\n(exit code {proc.returncode}; '
                                 f'full output: {log_path})')
    return time.time() - start


@pytest.fixture(scope='module')
def compared(tmp_path_factory):
    """Run ``basicsr compare`` once: a guided tiny VLUNet (test options derived from its train YAML), a tiny
    DGUNet (its own test YAML, whose test sets must be replaced), one system that crashes while training and
    one whose test YAML has a misspelled key. The train and test runs are in this process."""
    tmp = tmp_path_factory.mktemp('compare')
    gt, lq = write_image_pairs(tmp / 'data', count=2, size=(32, 32))
    torch.manual_seed(0)
    backbone = tmp / 'clip_backbone.pth'  # one tiny CLIP backbone for every run (a file, as real weights are)
    torch.save(build_network(dict(TINY_CLIP_NET)).backbone.state_dict(), backbone)
    clip = {**TINY_CLIP_NET, 'pretrained': str(backbone)}
    dgunet_test = {'name': 'mine', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0,
                   'datasets': {'test_1': {'name': 'mine', 'type': 'PairedDegradationDataset', 'dataroot_gt': gt,
                                           'dataroot_lq': lq}},
                   'network_g': TINY_DGUNET, 'network_clip': None, 'path': {'pretrain_network_g': 'not/used.pth'},
                   'val': {'save_img': False}}
    typo_test = {**copy.deepcopy(dgunet_test), 'network_g': {**TINY_DGUNET, 'n_fet': 8}}
    systems = [
        {'name': 'tinyvlunet', 'train': write_yaml(tmp / 'vlunet.yml', _train_opt(gt, lq, TINY_VLUNET, clip))},
        {'name': 'tinydgunet', 'train': write_yaml(tmp / 'dgunet.yml', _train_opt(gt, lq, TINY_DGUNET)),
         'test': write_yaml(tmp / 'dgunet_test.yml', dgunet_test)},
        {'name': 'crashes', 'train': write_yaml(tmp / 'crashes.yml', _train_opt(  # a guidance of the wrong size
            gt, lq, {**TINY_VLUNET, 'degradation_dim': 16}, clip))},
        {'name': 'typo', 'test': write_yaml(tmp / 'typo_test.yml', typo_test),
         'weights': str(backbone)},
    ]
    opt = {'name': 'tiny comparison', 'datasets': _test_sets(gt, lq), 'systems': systems, 'total_iter': 2,
           'timing': {'train_steps': 3, 'warmup_steps': 1, 'infer_images': 3}}
    compare_path = write_yaml(tmp / 'compare.yml', opt)
    work = tmp / 'work'
    work.mkdir()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(stages, 'run_pipeline', _run_pipeline_here)
        proc = run_cli(['compare', '-opt', compare_path, '-o', 'out'], cwd=work, env_extra=ENV)
    return {'proc': proc, 'out': work / 'out', 'work': work, 'opt': opt, 'compare_path': compare_path,
            'clip': clip}


def _report(compared):
    path = compared['out'] / 'report.json'
    assert path.is_file(), compared['proc'].stdout[-3000:] + compared['proc'].stderr[-3000:]
    return json.load(open(path))


def test_compare_reports_every_system_with_figures_from_its_runs(compared):
    report = _report(compared)
    assert compared['proc'].returncode == 1  # two of the four systems fail on purpose
    assert list(report['systems']) == ['tinyvlunet', 'tinydgunet', 'crashes', 'typo']
    assert report['test_sets'] == ['rain', 'noise25']
    from vlunet_basicsr.utils.timing import cpu_model
    assert report['machine']['device'] == cpu_model() and f'Device: {cpu_model()} (' in \
        (compared['out'] / 'report.md').read_text()  # the CPU model beside the wall time
    for name in ('tinyvlunet', 'tinydgunet'):
        system = report['systems'][name]
        assert system['status'] == 'ok', system.get('error')
        assert system['train_iters'] == 2  # total_iter of the compare file, for every trained system
        # PSNR/SSIM are the test run's metrics.json, set by set, over the shared sets only
        metrics = json.load(open(compared['out'] / 'results' / name / 'metrics.json'))
        assert sorted(metrics) == ['noise25', 'rain']
        for set_name in ('rain', 'noise25'):
            assert system['sets'][set_name]['psnr'] == metrics[set_name]['psnr']
            assert system['sets'][set_name]['ssim'] == metrics[set_name]['ssim']
            assert system['sets'][set_name]['images'] == 2
        assert system['average']['psnr'] == pytest.approx(statistics.mean(metrics[s]['psnr'] for s in metrics))
        # timings: measured in this run, as many as asked for, and the reported figure is their median / mean
        assert len(system['train_step_times_s']) == 3 and all(t > 0 for t in system['train_step_times_s'])
        assert system['train_step_s'] == statistics.median(system['train_step_times_s'])
        assert system['train_batch'] == [2, 3, 16, 16]
        assert len(system['infer_times_s']) == 3 and all(t > 0 for t in system['infer_times_s'])
        assert system['infer_s'] == pytest.approx(statistics.mean(system['infer_times_s']))
        assert [s for s, _ in system['infer_images']] == ['noise25', 'rain', 'noise25']  # the sets in turn
        assert (compared['out'] / 'experiments' / name / 'models' / 'net_g_latest.pth').is_file()
        assert set(system['seconds']) == {'train', 'test', 'measure'}
    vlunet, dgunet = report['systems']['tinyvlunet'], report['systems']['tinydgunet']
    vector = build_network(dict(compared['clip'])).eval().degradation_vector(torch.rand(1, 3, 256, 256))
    macs, params = _independent_macs(TINY_VLUNET, vector)
    assert (vlunet['macs_256'], vlunet['params']) == (macs, params)
    assert vlunet['guidance_params'] > 0 and vlunet['guidance_macs_256'] > 0
    macs, params = _independent_macs(TINY_DGUNET)
    assert (dgunet['macs_256'], dgunet['params']) == (macs, params)
    assert dgunet['guidance_params'] is None and dgunet['guidance_macs_256'] is None
    # the guided system's predicted degradation, over the 2 labelled images of each set
    accuracy = vlunet['degradation_accuracy']
    assert accuracy['images'] == 4 and set(accuracy['sets']) == {'rain', 'noise25'}
    assert all(value in (0, 0.5, 1) for value in accuracy['sets'].values())
    assert accuracy['overall'] == pytest.approx(statistics.mean(accuracy['sets'].values()))
    assert dgunet['degradation_accuracy'] is None
    # the DGUNet test YAML's own set ('mine') was replaced by the compare file's
    test_opt = load_yaml(compared['out'] / 'options' / 'tinydgunet_test.yml')
    assert test_opt['datasets'] == compared['opt']['datasets']
    assert test_opt['path']['pretrain_network_g'] == str(compared['out'] / 'experiments' / 'tinydgunet' / 'models'
                                                         / 'net_g_latest.pth')


def test_failing_systems_are_reported_with_their_stage_and_error(compared):
    systems = _report(compared)['systems']
    crashes, typo = systems['crashes'], systems['typo']
    assert crashes['status'] == 'failed' and crashes['stage'] == 'train'
    assert 'Error' in crashes['error'] and 'logs/crashes_train.log' in crashes['error']
    log = open(compared['out'] / 'logs' / 'crashes_train.log').read()
    assert crashes['error'].splitlines()[0] in log
    assert typo['status'] == 'failed' and typo['stage'] == 'options'
    assert 'typo_test.yml' in typo['error'] and "unknown option 'n_fet'" in typo['error']
    assert "Did you mean 'n_feat'?" in typo['error']
    assert not (compared['out'] / 'results' / 'typo').exists()


def test_a_stage_runs_in_a_process_of_its_own(tmp_path):
    """The real `stages.run_pipeline` (the other tests run the stages in this process): a child process whose output
    is the log and whose error is the exception at its end."""
    log_path = tmp_path / 'run.log'
    with pytest.raises(stages.StageFailed) as failed:
        stages.run_pipeline('test', str(tmp_path / 'missing.yml'), str(tmp_path), str(log_path))
    log = log_path.read_text()
    assert log.startswith('$ ') and 'vlunet_basicsr.tools.compare.pipeline_run' in log.splitlines()[0]
    message = str(failed.value)
    assert message.splitlines()[0] in log and 'missing.yml' in message
    assert f'(exit code 1; full output: {log_path})' in message


def test_report_markdown_and_figures(compared):
    report = _report(compared)
    text = open(compared['out'] / 'report.md').read()
    vlunet = report['systems']['tinyvlunet']
    row = f"| tinyvlunet | {vlunet['sets']['rain']['psnr']:.2f} / {vlunet['sets']['rain']['ssim']:.4f} |"
    assert row in text
    assert '| crashes | failed | failed | failed |' in text and 'unknown option' in text
    for path in ['psnr.png', *report['figures']['grids'].values()]:
        assert (compared['out'] / path).stat().st_size > 0
    assert set(report['figures']['grids']) == {'rain', 'noise25'}
    assert (compared['out'] / 'results' / 'tinydgunet' / 'visualization' / 'rain' / 'img00_tinydgunet.png').is_file()


def test_an_existing_output_folder_is_kept_without_overwrite(compared):
    proc = run_cli(['compare', '-opt', compared['compare_path'], '-o', 'out'], cwd=compared['work'])
    assert proc.returncode == 2 and 'exists: pass --overwrite' in proc.stderr
    assert (compared['out'] / 'report.json').is_file()


def test_overwrite_replaces_only_a_folder_that_compare_wrote(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'thesis.tex').write_text('precious')
    assert 'is not the output of basicsr compare' in prepare_output(str(mine), overwrite=True)
    assert (mine / 'thesis.tex').read_text() == 'precious'
    earlier = tmp_path / 'earlier'
    earlier.mkdir()
    (earlier / 'compare.yml').write_text('name: x\n')
    (earlier / 'stale.json').write_text('{}')
    assert prepare_output(str(earlier), overwrite=True) is None
    assert sorted(os.listdir(earlier)) == ['logs', 'options']


def test_compare_file_problems_name_the_file_and_key(tmp_path, image_pairs):
    gt, lq = image_pairs
    sets = _test_sets(gt, lq)
    sets['test_2'].pop('noise_seed')
    sets['test_3'] = {'name': 'rain', 'type': 'PairedDegradationDataset', 'dataroot_gt': str(tmp_path / 'missing')}
    train = write_yaml(tmp_path / 'train.yml', _train_opt(gt, lq, TINY_DGUNET))
    opt = {'name': 'bad', 'datasets': sets, 'systemz': [],
           'systems': [{'name': 'a', 'weights': train, 'experiment': str(tmp_path)},
                       {'name': 'a', 'test': 'nowhere.yml'},
                       {'name': '../up', 'train': train, 'tset': 'x'}],
           'timing': {'train_steps': 0}}
    path = write_yaml(tmp_path / 'compare.yml', opt)
    with pytest.raises(ValueError) as error:
        compare_file.load_compare_file(path)
    message = str(error.value)
    assert message.startswith(f'{path}:')
    for expected in ("unknown option 'systemz' for a compare file. Did you mean 'systems'?",
                     "systems[2]: unknown option 'tset' for a system. Did you mean 'test'?",
                     'timing.train_steps: 0 is out of range',
                     'datasets.test_2.noise_seed: required with noise_sigma',
                     "datasets.test_3.name: 'rain' is also the name of datasets.test_1",
                     f'datasets.test_3.dataroot_gt: {tmp_path / "missing"}',
                     'systems[0]: weights and experiment are exclusive',
                     f'systems[0].experiment: {tmp_path}/models/net_g_latest.pth not found',
                     'systems[0].test: required with weights or experiment',
                     "systems[1].name: 'a' is also the name of systems[0]",
                     'systems[1].test: file not found: nowhere.yml',
                     "systems[2].name: '../up' is not a plain name"):
        assert expected in message, message
    with pytest.raises(ValueError, match=r"--force_yml 'timing:x:y=1': no option 'timing:x'"):
        compare_file.load_compare_file(path, ['timing:x:y=1'])


def test_a_train_yaml_with_finished_weights_is_not_trained_but_gives_the_networks(tmp_path, image_pairs):
    gt, lq = image_pairs
    train = write_yaml(tmp_path / 'train.yml', _train_opt(gt, lq, TINY_VLUNET, dict(TINY_CLIP_NET)))
    test = write_yaml(tmp_path / 'test.yml', {'name': 't', 'model_type': 'VLUNetModel', 'datasets': {},
                                              'network_g': {**TINY_VLUNET, 'dim': 24}, 'network_clip': None,
                                              'val': {'tile': 16, 'metrics': {}}})
    compare_opt = {'datasets': _test_sets(gt, lq), 'total_iter': 7}
    trained = plan.plan_system({'name': 's', 'train': train, 'test': test}, compare_opt, str(tmp_path / 'out'))
    assert trained.train_here and trained.train_opt['train']['total_iter'] == 7
    assert trained.weights == str(tmp_path / 'out' / 'experiments' / 's' / 'models' / 'net_g_latest.pth')
    finished = plan.plan_system({'name': 's', 'train': train, 'test': test, 'weights': 'w.pth'}, compare_opt, 'out')
    assert not finished.train_here and finished.train_opt['train']['total_iter'] == 50  # timed, not run
    assert finished.test_opt['path']['pretrain_network_g'] == osp.abspath('w.pth')
    for system_plan in (trained, finished):  # the networks trained (or timed) are the ones tested
        assert system_plan.test_opt['network_g'] == TINY_VLUNET
        assert system_plan.test_opt['network_clip'] == TINY_CLIP_NET
        assert system_plan.test_opt['val'] == {'tile': 16, 'metrics': compare_file.METRICS, 'save_img': True,
                                               'suffix': None}
        assert system_plan.test_opt['datasets'] == compare_opt['datasets'] and system_plan.test_opt['name'] == 's'


def test_compare_help_answers_without_torch(tmp_path):
    proc, imported = run_front_door(['compare', '--help'], tmp_path)
    assert proc.returncode == 0 and 'torch' not in imported, proc.stderr
    assert '--overwrite' in proc.stdout and 'report.json' in proc.stdout


def test_the_nhrbl_compare_file_tests_every_system_on_test_nhrbl_sets_with_its_own_recipe():
    path = osp.join(REPO, 'options', 'compare_nhrbl.yml')
    opt = load_yaml(path)
    assert compare_file.compare_problems(opt, check_paths=False) == []
    assert opt['datasets'] == load_yaml(osp.join(REPO, 'options', 'test_nhrbl.yml'))['datasets']
    assert opt['systems'][0] == {'name': 'VLU-Net', 'train': 'options/train_nhrbl.yml',
                                 'test': 'options/test_nhrbl.yml'}
    archs = []
    for system in opt['systems']:
        train, test = (load_yaml(osp.join(REPO, system[key])) for key in ('train', 'test'))
        assert system['train'].endswith('_nhrbl.yml') and system['test'] == system['train'].replace('train', 'test')
        assert train['network_g']['type'] == test['network_g']['type']
        archs.append(train['network_g']['type'])
    assert len(set(archs)) == len(archs) >= 6


def test_the_demo_compare_trains_small_systems_on_the_same_data_and_budget():
    path = osp.join(REPO, 'options', 'demo', 'compare_demo.yml')
    opt = load_yaml(path)
    assert compare_file.compare_problems(opt, check_paths=False) == []
    assert opt['datasets'] == load_yaml(osp.join(REPO, 'options', 'demo', 'test_vlunet_demo.yml'))['datasets']
    trains = [load_yaml(osp.join(REPO, s['train'])) for s in opt['systems']]
    archs = [t['network_g']['type'] for t in trains]
    assert archs[0] == 'VLUNet' and len(set(archs)) == len(archs) >= 6
    nhrbl = {load_yaml(osp.join(REPO, s['train']))['network_g']['type']
             for s in load_yaml(osp.join(REPO, 'options', 'compare_nhrbl.yml'))['systems']}
    assert set(archs) == nhrbl  # the same systems as the full comparison
    assert opt['total_iter'] >= 100
    data = [{k: v for k, v in t['datasets']['train'].items()} for t in trains]
    assert all(d == data[0] for d in data)  # the same mix, patches and batch
    for train, system in zip(trains, opt['systems']):
        check_declared_options(copy.deepcopy(train), system['train'], is_train=True)


def test_docs_describe_every_compare_key():
    text = open(osp.join(REPO, 'docs', 'compare.md')).read()
    for option in compare_file.OPTIONS + compare_file.SYSTEM_OPTIONS:
        assert f'`{option.key}`' in text, option.key
    for option in compare_file.TIMING_OPTIONS:
        assert f'`timing.{option.key}`' in text, option.key
    for field in ('params', 'macs_256', 'train_step_s', 'infer_s', 'psnr', 'ssim', 'degradation_accuracy'):
        assert f'`{field}`' in text, field
