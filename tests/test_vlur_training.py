"""VL-UR end to end on a miniature CDD-11: stage 1 (the CLIP adapters over the 11 prompts) and stage 2 (VLURNet
with smooth L1 and CDRL on the scenes' negatives) through `basicsr train`, then `basicsr test` with predicted and
with given degradation types; the degradation-type reports (per image, per set, sharded)."""
import csv
import glob
import json
import os.path as osp
import re

import pytest
import torch
import yaml

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.data import build_dataset
from conftest import REPO, TINY_CLIP_NET, TINY_VLUR, run_cli, write_yaml
from test_prepare_layouts_extra import prepare, write_cdd11
from vlunet_basicsr.losses.msssim_loss import ms_ssim_min_side
from vlunet_basicsr.models.degradation_report import CSV_COLUMNS, DegradationTypeReport, write_csv
from vlunet_basicsr.utils.prompts import CDD11_PROMPTS, CDD11_TYPES

ENV = {'OMP_NUM_THREADS': '1'}
DATA = 'datasets/cdd11_train'  # relative to the working folder, as in the option files


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def _output(proc):
    return proc.stdout[-3000:] + proc.stderr[-3000:]


def _composite_set(with_negatives, gt_size, **extra):
    return {'name': 'CDD11', 'type': 'CompositeDegradationDataset', 'prompts': 'cdd11',
            'with_negatives': with_negatives, 'gt_size': gt_size, 'dataroot_gt': f'{DATA}/clear.lmdb',
            'sources': [{'name': t, 'dataroot_lq': f'{DATA}/{t}.lmdb'} for t in CDD11_TYPES], **extra}


def _type_set(name):
    label = CDD11_TYPES.index(name)
    return {'name': f'CDD11_{name}', 'type': 'PairedDegradationDataset', 'label': label, 'text': CDD11_PROMPTS[label],
            'dataroot_gt': f'{DATA}/clear.lmdb', 'dataroot_lq': f'{DATA}/{name}.lmdb', 'io_backend': {'type': 'lmdb'}}


def _absolute(node, work):
    """A copy of dataset options with their data paths under ``work`` (the runs' working folder)."""
    if isinstance(node, list):
        return [_absolute(value, work) for value in node]
    if not isinstance(node, dict):
        return node
    return {key: str(work / value) if key.startswith('dataroot_') else _absolute(value, work)
            for key, value in node.items()}


def _probabilities(clip, dataset_opt, work):
    """(image names, probabilities (N, 11), labels) of a set's LQ images by ``DegradationCLIP.prompt_probabilities``."""
    dataset = build_dataset({**_absolute(dataset_opt, work), 'phase': 'val'})
    samples = [dataset[i] for i in range(len(dataset))]
    lq = torch.stack([sample['lq'] for sample in samples])
    with torch.no_grad():
        probabilities = clip.prompt_probabilities(clip.degradation_vector(lq), list(CDD11_PROMPTS))
    names = [osp.splitext(osp.basename(sample['lq_path']))[0] for sample in samples]
    return names, probabilities, [sample['label'] for sample in samples]


def _csv(path):
    with open(path, newline='') as f:
        reader = csv.DictReader(f)
        assert tuple(reader.fieldnames) == CSV_COLUMNS
        return list(reader)


def test_tiny_vlur_trains_and_tests_through_basicsr_on_a_cdd11_folder(tmp_path):
    work = tmp_path / 'work'
    assert prepare(['cdd11', write_cdd11(tmp_path / 'CDD-11', scenes=3, size=32), '--output', str(work / DATA),
                    '--no-count-check']) == 0
    # one random tiny CLIP backbone for every run (a weights file, as pretrained: would be the real one)
    torch.manual_seed(0)
    backbone = tmp_path / 'clip_backbone.pth'
    torch.save(build_network(dict(TINY_CLIP_NET)).backbone.state_dict(), backbone)
    clip_opt = {**TINY_CLIP_NET, 'pretrained': str(backbone)}
    logger = {'print_freq': 1, 'save_checkpoint_freq': 2, 'use_tb_logger': False}

    # stage 1: the adapters over the 11 prompts, validated on all 33 images with confidence per class
    stage1 = {'name': 'clip_cdd11', 'model_type': 'CLIPAdapterModel', 'num_gpu': 0, 'manual_seed': 0,
              'prompts': 'cdd11', 'class_names': list(CDD11_TYPES),
              'datasets': {'train': {**_composite_set(False, 32), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 4},
                           'val': _composite_set(False, None, name='CDD11_all')},
              'network_clip': clip_opt, 'path': {},
              'train': {'optim_clip': {'type': 'AdamW', 'lr': 1e-2}, 'total_iter': 2,
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                        'contrastive_opt': {'type': 'DegradationContrastiveLoss'}},
              'val': {'val_freq': 2}, 'logger': logger}
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 'stage1.yml', stage1)], cwd=work, env_extra=ENV)
    assert proc.returncode == 0, _output(proc)
    exp1 = work / 'experiments' / 'clip_cdd11'
    adapters = exp1 / 'models' / 'net_clip_2.pth'
    clip = build_network({**clip_opt, 'adapter_path': str(adapters)}).eval()
    _, probabilities, labels = _probabilities(clip, stage1['datasets']['val'], work)
    confidence = probabilities.max(dim=1).values
    report = json.load(open(exp1 / 'visualization' / 'CDD11_all' / 'classification_2.json'))
    assert report['confidence'] == pytest.approx(confidence.mean().item(), abs=1e-5)
    labels = torch.tensor(labels)
    for label, name in enumerate(CDD11_TYPES):
        assert report['per_class_confidence'][name] == pytest.approx(confidence[labels == label].mean().item(),
                                                                     abs=1e-5), name
    log = _log(exp1)
    assert f"# confidence: {report['confidence']:.4f} (mean softmax probability of the predicted prompt)" in log
    assert f"# confidence [low_haze_snow]: {report['per_class_confidence']['low_haze_snow']:.4f} (3 images)" in log

    # stage 2: VLURNet, smooth L1 + CDRL on the scenes' 10 negatives, validated per type
    clip_opt['adapter_path'] = str(work / 'experiments' / 'clip_cdd11' / 'models' / 'net_clip_latest.pth')
    stage2 = {'name': 'vlur_cdd11', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'manual_seed': 0,
              'prompts': 'cdd11',
              'datasets': {'train': {**_composite_set(True, 32), 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2},
                           'val_1': _type_set('haze'), 'val_2': _type_set('low_haze_snow')},
              'network_g': dict(TINY_VLUR), 'network_clip': clip_opt, 'path': {},
              'train': {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'total_iter': 2,
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
                        'pixel_opt': {'type': 'SmoothL1Loss', 'loss_weight': 0.6},
                        'composite_opt': {'type': 'CompositeDegradationLoss', 'loss_weight': 0.1}},
              'val': {'val_freq': 2, 'metrics': {'psnr': {'type': 'calculate_psnr_float'}}}, 'logger': logger}
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 'stage2.yml', stage2)], cwd=work, env_extra=ENV)
    assert proc.returncode == 0, _output(proc)
    exp2 = work / 'experiments' / 'vlur_cdd11'
    log = _log(exp2)
    assert 'Network VLURNet: guided by the prompt text embeddings of DegradationCLIP (network_clip)' in log
    composite = [float(v) for v in re.findall(r'l_composite: ([-+.e\d]+)', log)]
    assert len(composite) == 2 and all(0 < v < float('inf') for v in composite), log[-3000:]
    assert 'RANDOMLY INITIALISED' in log  # no VGG weights in tests
    for name in ('haze', 'low_haze_snow'):
        assert f'Degradation types CDD11_{name} (3 images, restored with the predicted type)' in log
    assert not glob.glob(str(work / 'results' / '*' / 'degradation_types_*.csv'))  # files in test mode only

    # test: restored with the predicted type, then with a given one
    test_sets = {'test_1': _type_set('haze'), 'test_2': _type_set('low_haze_snow')}
    test = {'name': 'vlur_cdd11_test', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'prompts': 'cdd11',
            'datasets': test_sets, 'network_g': dict(TINY_VLUR), 'network_clip': clip_opt,
            'path': {'pretrain_network_g': str(exp2 / 'models' / 'net_g_latest.pth')},
            'val': {'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr_float'}}}}
    test_path = write_yaml(tmp_path / 'test.yml', test)
    results = work / 'results' / 'vlur_cdd11_test'
    clip = build_network(dict(clip_opt)).eval()
    rows = {}
    for given in (None, 'snow'):
        force = [] if given is None else ['--force_yml', f'val:degradation_type={given}']
        proc = run_cli(['test', '-opt', test_path, *force], cwd=work, env_extra=ENV)
        assert proc.returncode == 0, _output(proc)
        log = _log(results)
        for phase, dataset_opt in test_sets.items():
            names, probabilities, labels = _probabilities(clip, dataset_opt, work)
            found = rows[given, phase] = _csv(results / f'degradation_types_{dataset_opt["name"]}.csv')
            assert [row['image'] for row in found] == names
            confidence, predicted = probabilities.max(dim=1)
            for row, label, best, probability in zip(found, labels, predicted.tolist(), confidence.tolist()):
                assert int(row['label']) == label and row['label_name'] == CDD11_TYPES[label]
                assert int(row['predicted']) == best and row['predicted_name'] == CDD11_TYPES[best]
                assert float(row['confidence']) == pytest.approx(probability, abs=1e-5)
                used = best if given is None else CDD11_TYPES.index(given)
                assert (int(row['used']), row['used_name']) == (used, CDD11_TYPES[used])
                assert row['used_from'] == ('predicted' if given is None else 'given')
            correct = sum(best == label for best, label in zip(predicted.tolist(), labels))
            how = 'the predicted type' if given is None else f'the given type {given}'
            found = re.search(re.escape(f'Degradation types {dataset_opt["name"]} (3 images, restored with {how})\n'
                                        f'\t # type_accuracy: {correct / 3:.4f} ({correct} of 3 images)\n'
                                        '\t # type_confidence: ') + r'([.\d]+) ', log)
            assert found and float(found.group(1)) == pytest.approx(confidence.mean().item(), abs=2e-4), log[-2000:]
        assert set(json.load(open(results / 'metrics.json'))) == {'CDD11_haze', 'CDD11_low_haze_snow'}
    for phase in test_sets:  # a given type changes the type used, not the prediction
        assert [r['predicted'] for r in rows[None, phase]] == [r['predicted'] for r in rows['snow', phase]]


class _Shards:
    """What `ShardedEvaluation.gather` returns on 2 ranks: every rank's list, in rank order."""

    def __init__(self, shards):
        self.shards = shards

    def gather(self, items):
        return self.shards


def test_report_rows_summary_csv_and_shards(tmp_path):
    report = DegradationTypeReport('set', CDD11_PROMPTS)
    report.add(['/a/s0.png', '/a/s1.png'], torch.tensor([0, 3]), torch.tensor([0.9, 0.5]), torch.tensor([0, 3]),
               torch.tensor([0, 2]))
    report.add(['/a/s2.png'], torch.tensor([10]), torch.tensor([0.4]), torch.tensor([10]), torch.tensor([12]))
    rows = report.rows
    assert [(r['image'], r['label_name'], r['predicted_name'], r['used_from']) for r in rows] == [
        ('s0', 'haze', 'haze', 'predicted'), ('s1', 'rain', 'snow', 'predicted'), ('s2', '12', 'low_haze_snow',
                                                                                   'predicted')]
    summary = report.summary(rows)
    assert (summary['images'], summary['labelled'], summary['correct'], summary['accuracy']) == (3, 2, 1, 0.5)
    assert summary['mean_confidence'] == pytest.approx(0.6)
    assert summary['predicted'] == {'haze': 1, 'snow': 1, 'low_haze_snow': 1}
    lines = report.log_lines(summary)
    assert lines[1] == '\t # type_accuracy: 0.5000 (1 of 2 images; 1 without a label of the prompts left out)'
    assert lines[2].startswith('\t # type_confidence: 0.6000') and lines[3] == '\t predicted: haze 1, snow 1, ' \
                                                                                'low_haze_snow 1'
    write_csv(str(tmp_path / 'r' / 'types.csv'), rows)
    assert [r['label'] for r in _csv(tmp_path / 'r' / 'types.csv')] == ['0', '2', '12']

    # two ranks took images 0, 2, 4 and 1, 3: the gathered rows are in the set's order
    given = DegradationTypeReport('set', ['a', 'b'], given=1)
    for i in range(5):
        given.add([f'img{i}.png'], torch.tensor([i % 2]), torch.tensor([0.5]), torch.tensor([1]), None)
    rank0, rank1 = given.rows[0::2], given.rows[1::2]
    assert [r['image'] for r in given.gather(_Shards([rank0, rank1]))] == [f'img{i}' for i in range(5)]
    assert given.rows[0]['used_from'] == 'given' and given.rows[0]['used_name'] == 'b'  # unknown set: the prompt
    summary = given.summary(given.rows)
    assert summary['accuracy'] is None and summary['used'] == {'b': 5}
    assert given.log_lines(summary)[:2] == ['Degradation types set (5 images, restored with the given type b)',
                                            '\t # type_accuracy: - (no image has a label of the prompts)']
    with pytest.raises(ValueError, match='set: a batch of 2 images came with 1 predictions'):
        given.add(['x', 'y'], torch.tensor([0]), torch.tensor([0.5]), torch.tensor([1]))


def _option_file(name):
    with open(osp.join(REPO, 'options', name)) as f:
        return yaml.safe_load(f)


def test_vlur_nhrbl_option_files_use_the_nhrbl_data_patches_and_sets_with_the_release_prompts():
    train, vlunet = _option_file('train_vlur_nhrbl.yml'), _option_file('train_nhrbl.yml')
    test, vlunet_test = _option_file('test_vlur_nhrbl.yml'), _option_file('test_nhrbl.yml')
    assert train['datasets'] == vlunet['datasets'] and test['datasets'] == vlunet_test['datasets']
    for opt in (train, test):
        assert opt['model_type'] == 'GuidedRestorationModel' and opt['prompts'] == 'release'
        assert opt['network_g']['type'] == 'VLURNet' and opt['network_clip']['adapter_path'] == \
            'experiments/train_clip_adapter_nhrbl/models/net_clip_latest.pth'
    assert test['path']['pretrain_network_g'] == 'experiments/train_vlur_nhrbl/models/net_g_latest.pth'
    losses = {opt['type']: opt for key, opt in train['train'].items() if key.endswith('_opt')}
    assert 'CompositeDegradationLoss' not in losses  # the mix gives no negatives
    assert 'SmoothL1Loss' in losses
    if 'MSSSIMLoss' in losses:  # MS-SSIM only on crops its window allows
        assert train['datasets']['train']['gt_size'] >= ms_ssim_min_side(losses['MSSSIMLoss'].get('win_size', 11))
    assert train['train']['total_iter'] == vlunet['train']['total_iter']  # the same 200 epochs at batch 32
