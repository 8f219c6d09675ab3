"""The image-only all-in-one systems end to end, each from its own option files made tiny: trained and tested
through basicsr's pipelines on images whose sides are not multiples of 8 (in this process), restored whole and
tiled by ``basicsr restore`` and by serve's upload path, exported (or refused by name), and measured by the
benchmark through ``-opt``. None of these commands has code for any of the systems."""
import json
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml

import vlunet_basicsr  # noqa: F401
from conftest import REPO, write_image_pairs, write_yaml
from vlunet_basicsr.tools.pipelines import run
from vlunet_basicsr_cli import main as basicsr

#: Each system: its option files' infix, a tiny network, and what ``basicsr export`` does with it.
SYSTEMS = {
    'AdaIR': {'files': 'adair', 'tiny': {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                                          'heads': [1, 1, 2, 2]},
              'export_refused': 'AdaIR cannot be exported: its frequency modules shift the spectrum'},
    'MoCEIR': {'files': 'moceir', 'tiny': {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_dec_blocks': [1, 1, 1],
                                            'num_refinement_blocks': 1, 'heads': [1, 1, 2, 2]},
               'export_refused': 'MoCEIR cannot be exported: each image runs the expert its router picks',
               'logged': 'l_balance'},
}
ODD = (27, 35)  # height, width: neither a multiple of 8


def _tiny(name, system):
    opt = yaml.safe_load(open(osp.join(REPO, 'options', name)))
    opt['num_gpu'] = 0
    opt['network_g'].update(SYSTEMS[system]['tiny'])
    opt.pop('dist_params', None)
    return opt


@pytest.fixture(scope='module', params=sorted(SYSTEMS))
def trained(request, tmp_path_factory):
    """(system, work folder, its 3-iteration weights, the data): the system's NHRBL recipe, tiny."""
    system, files = request.param, SYSTEMS[request.param]['files']
    root = tmp_path_factory.mktemp(files)
    work = root / 'work'
    work.mkdir()
    gt, lq = write_image_pairs(root / 'data', count=3, size=ODD)
    paired = {'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'disk'}}
    noisy = {'dataroot_gt': gt, 'io_backend': {'type': 'disk'}}
    train = _tiny(f'train_{files}_nhrbl.yml', system)
    data = train['datasets']
    sources = data['train']['sources']
    data['train'].update(gt_size=16, batch_size_per_gpu=2, num_worker_per_gpu=0,
                         sources=[{**sources[0], **noisy}, {**sources[7], **paired}])  # sigma 15 and rain
    for key in [k for k in data if k.startswith('val_')]:
        del data[key]
    data['val_1'] = {'name': 'odd_rain', 'type': 'PairedDegradationDataset', 'label': 4, **paired}
    train['train'].update(total_iter=3)
    train['train']['scheduler'].update(warmup_iter=1, total_iter=4)
    train['val']['val_freq'] = 3
    train['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    run('train', write_yaml(root / 'train.yml', train), root_path=str(work))
    weights = work / 'experiments' / train['name'] / 'models' / 'net_g_3.pth'
    assert weights.is_file()
    return system, root, weights, (paired, noisy)


def test_an_arch_s_own_loss_terms_are_added_to_the_step_and_logged(trained):
    from basicsr.models import build_model
    system, root, _, _ = trained
    own = SYSTEMS[system].get('logged')
    train = yaml.safe_load(open(root / 'train.yml'))
    train.update(is_train=True, dist=False, rank=0, world_size=1, auto_resume=False)
    train['path'].update(experiments_root=str(root), models=str(root), training_states=str(root), log=str(root),
                         visualization=str(root))
    model = build_model(train)
    lq = torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': lq, 'gt': lq, 'lq_path': ['a', 'b'], 'gt_path': ['a', 'b'], 'label': torch.tensor([0, 4])})
    model.optimize_parameters(1)
    assert 'l_pix' in model.log_dict and (own in model.log_dict if own else set(model.log_dict) == {'l_pix'})
    if own:
        assert model.log_dict[own] > 0


def test_the_tiny_recipe_trains_and_tests_through_basicsr_on_odd_sizes(trained):
    system, root, weights, (paired, noisy) = trained
    files = SYSTEMS[system]['files']
    test = _tiny(f'test_{files}_nhrbl.yml', system)
    test['datasets'] = {'test_1': {**test['datasets']['test_2'], **paired},  # Rain100L
                        'test_2': {**test['datasets']['test_4'], **noisy}}  # CBSD68 sigma 25
    for dataset in test['datasets'].values():
        dataset.pop('crop_to_multiple', None)  # the published crop would hide the odd size
        dataset.pop('crop_centered', None)
    test['path']['pretrain_network_g'] = str(weights)
    run('test', write_yaml(root / 'test.yml', test), root_path=str(root / 'work'))
    results = root / 'work' / 'results' / test['name']
    metrics = json.load(open(results / 'metrics.json'))
    assert set(metrics) == {'Rain100L', 'CBSD68_sigma25'}
    for name in metrics:
        assert metrics[name]['counts']['images'] == 3
        assert all(np.isfinite(metrics[name][key]) for key in ('psnr', 'ssim'))
    saved = cv2.imread(str(results / 'visualization' / 'Rain100L' / f'img00_{test["name"]}.png'))
    assert saved.shape == (*ODD, 3)


def test_restore_whole_and_tiled_with_the_test_file(trained, capsys):
    system, root, weights, _ = trained
    test = _tiny(f'test_{SYSTEMS[system]["files"]}_nhrbl.yml', system)
    test['path']['pretrain_network_g'] = str(weights)
    opt = write_yaml(root / 'restore.yml', test)
    image = np.random.default_rng(1).integers(0, 256, (*ODD, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'photo.png'), image)
    assert basicsr(['restore', str(root / 'photo.png'), '-o', str(root / 'whole'), '-opt', opt]) == 0
    assert basicsr(['restore', str(root / 'photo.png'), '-o', str(root / 'tiled'), '-opt', opt, '--tile', '16',
                    '--tile-overlap', '4']) == 0
    assert f'Network {system}: unguided' in capsys.readouterr().out
    whole, tiled = (cv2.imread(str(root / name / 'photo.png')) for name in ('whole', 'tiled'))
    assert whole.shape == tiled.shape == image.shape


def test_serve_restores_uploads_with_it_tiled(trained):
    from vlunet_basicsr.tools.serve.jobs import restore_files
    from vlunet_basicsr.tools.serve.systems import load_systems
    system, root, weights, _ = trained
    test = _tiny(f'test_{SYSTEMS[system]["files"]}_nhrbl.yml', system)
    test['path']['pretrain_network_g'] = str(weights)
    (served,) = load_systems([write_yaml(root / 'serve.yml', test)], torch.device('cpu'), tile=16, tile_overlap=4)
    image = np.random.default_rng(2).integers(0, 256, (*ODD, 3), dtype=np.uint8)
    cv2.imwrite(str(root / 'upload.png'), image)
    folder = root / 'session'
    folder.mkdir()
    results, messages = restore_files([('my photo.png', str(root / 'upload.png'))], [served], str(folder))
    assert not messages and len(results) == 1
    assert cv2.imread(results[0].png).shape == image.shape and results[0].bars == {}


def test_export_verifies_or_refuses_by_name(trained, capsys):
    system, root, weights, _ = trained
    opt = write_yaml(root / 'export.yml', {'name': 'export', 'model_type': 'GuidedRestorationModel',
                                           'network_g': {'type': system, **SYSTEMS[system]['tiny']},
                                           'network_clip': None, 'path': {'pretrain_network_g': str(weights)}})
    model = root / 'model.onnx'
    code = basicsr(['export', '-opt', opt, '-o', str(model), '--verify-sizes', '24x24', '13x21'])
    captured = capsys.readouterr()
    refused = SYSTEMS[system].get('export_refused')
    if refused:
        assert code == 2 and refused in captured.err and not model.exists()
    else:
        assert code == 0 and 'verified' in captured.out and model.is_file()


def test_the_benchmark_measures_it_through_opt(trained, tmp_path):
    from vlunet_basicsr.tools.benchmark import command
    system, root, _, _ = trained
    test = _tiny(f'test_{SYSTEMS[system]["files"]}_nhrbl.yml', system)
    test['path']['pretrain_network_g'] = None
    out = tmp_path / 'bench.json'
    assert command.main(['-opt', write_yaml(tmp_path / 'system.yml', test), '--size', '24', '--batch', '1',
                         '--infer-size', '19', '--warmup', '0', '--repeat', '1', '--cpu-allocator', 'system',
                         '--json', str(out)]) == 0
    report = json.loads(out.read_text())
    assert report['system']['arch'] == system and report['system']['params'] > 0
    assert report['results']['train']['step_s'] > 0 and report['results']['inference_whole']['size'] == 19


@pytest.mark.parametrize('system', sorted(SYSTEMS))
def test_an_unpadded_input_is_refused_naming_the_arch_and_the_remedy(system):
    from basicsr.archs import build_network
    net = build_network({'type': system, **SYSTEMS[system]['tiny']}).eval()
    with pytest.raises(ValueError, match=rf'{system} needs height and width multiples of 8, got \(9, 16\): pad the '
                                         r'input \(val.size_multiple, or the arch protocol\)'):
        net(torch.rand(1, 3, 9, 16))
