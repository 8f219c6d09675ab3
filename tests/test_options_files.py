"""Every option file in options/ parses, names registered types, and builds its datasets and networks once
its data paths point at tiny fixtures and its weight paths are cleared (no option file can rot)."""
import copy
import glob
import os.path as osp

import pytest
import yaml

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.data import build_dataset
from conftest import REPO, lmdb_copy, write_image_pairs, write_yaml
from vlunet_basicsr.tools import options

OPTION_FILES = sorted(p for p in glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True)
                      if 'systems' not in yaml.safe_load(open(p)))  # compare files: tests/test_compare.py
_built_clips = {}


@pytest.fixture(scope='module')
def fixtures(tmp_path_factory):
    root = tmp_path_factory.mktemp('fixtures')
    gt, lq = write_image_pairs(root / 'folders', count=2, size=(64, 64))
    lmdb = lmdb_copy(gt, lq, root / 'lmdb')
    return {'disk': {'dataroot_gt': gt, 'dataroot_lq': lq}, 'lmdb': lmdb}


def _swap_data_paths(node, fixtures):
    if isinstance(node, dict):
        backend = (node.get('io_backend') or {}).get('type', 'disk')
        for key in ('dataroot_gt', 'dataroot_lq'):
            if key in node:
                node[key] = fixtures['lmdb'][key[-2:]] if backend == 'lmdb' else fixtures['disk'][key]
        for value in node.values():
            _swap_data_paths(value, fixtures)
    elif isinstance(node, list):
        for value in node:
            _swap_data_paths(value, fixtures)


def test_option_files_exist():
    names = {osp.relpath(p, osp.join(REPO, 'options')) for p in OPTION_FILES}
    for required in ('train_nhrbl.yml', 'train_nhr.yml', 'train_nhrbl_balanced.yml', 'train_clip_adapter_nhrbl.yml',
                     'train_clip_adapter_nhr.yml', 'test_sots.yml', 'test_rain100l.yml', 'test_cbsd68.yml',
                     'test_urban100.yml', 'test_gopro.yml', 'test_lol.yml', 'test_nhrbl.yml', 'test_nhr.yml'):
        assert required in names


@pytest.mark.parametrize('path', OPTION_FILES, ids=lambda p: osp.relpath(p, osp.join(REPO, 'options')))
def test_option_file_builds(path, fixtures, tmp_path):
    opt = yaml.safe_load(open(path))
    assert opt['name'] and opt['model_type']
    text = open(path).read()
    assert text.startswith('#') and 'basicsr ' in text.splitlines()[1] + text.splitlines()[2]  # how to run it
    opt = copy.deepcopy(opt)
    _swap_data_paths(opt['datasets'], fixtures)
    for key in ('pretrain_network_g', 'pretrain_network_clip', 'resume_state'):
        if key in opt['path']:
            opt['path'][key] = None
    if opt.get('network_clip'):
        opt['network_clip'].update(pretrained=None, adapter_path=None)
    for loss_opt in (opt.get('train') or {}).values():
        if isinstance(loss_opt, dict) and 'vgg_path' in loss_opt:
            loss_opt['vgg_path'] = None
    is_train = 'train' in opt['datasets']
    parsed, _ = options.parse_options(str(tmp_path), write_yaml(tmp_path / 'o.yml', opt), is_train)
    for phase, dataset_opt in parsed['datasets'].items():
        dataset = build_dataset(dataset_opt)
        sample = dataset[0]
        assert sample['lq'].ndim == 3 and sample['gt'].shape[0] == 3, phase
        if dataset_opt['type'] in ('MixedDegradationDataset', 'PairedDegradationDataset'):
            assert isinstance(sample['label'], int) and sample['text']
    for key in ('network_g', 'network_clip'):
        if parsed.get(key):
            config = yaml.safe_dump(parsed[key], sort_keys=True)
            if config not in _built_clips:
                _built_clips[config] = build_network(parsed[key])
    if parsed['model_type'] == 'VLUNetModel' and parsed.get('network_clip'):
        assert parsed['network_g']['degradation_dim'] == _built_clips[
            yaml.safe_dump(parsed['network_clip'], sort_keys=True)].backbone.visual.output_dim
