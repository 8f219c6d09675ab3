"""CompositeDegradationDataset on a miniature CDD-11, the CDD-11 prompt set, and the CDD-11 option files."""
import copy
import os
import os.path as osp
import random

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch.utils.data import DataLoader

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from conftest import REPO
from test_prepare_layouts_extra import prepare, write_cdd11
from vlunet_basicsr.data.dataset_writer import write_sets
from vlunet_basicsr.tools.options import spec
from vlunet_basicsr.utils.prompts import (CDD11_PROMPTS, CDD11_TYPES, DEGRADATION_PROMPTS, PROMPT_SETS, prompt_set,
                                          resolve_prompts)


@pytest.fixture(scope='module')
def cdd11_lmdbs(tmp_path_factory):
    """A 3-scene CDD-11 split (32x32) as written by prepare_datasets.py: clear.lmdb and one LMDB per type."""
    root = tmp_path_factory.mktemp('cdd11')
    source = write_cdd11(root / 'CDD-11_train')
    assert prepare(['cdd11', source, '--output', str(root / 'cdd11_train'), '--split', 'train',
                    '--no-count-check']) == 0
    return str(root / 'cdd11_train'), source


def _opt(root, types=CDD11_TYPES, backend='lmdb', **extra):
    """Options of the sets under ``root``; io_backend is left to the dataset (it follows dataroot_gt's suffix)."""
    suffix = '.lmdb' if backend == 'lmdb' else ''
    return {'name': 'cdd11', 'type': 'CompositeDegradationDataset', 'phase': 'train', 'gt_size': 16,
            'dataroot_gt': osp.join(root, f'clear{suffix}'),
            'sources': [{'name': t, 'dataroot_lq': osp.join(root, f'{t}{suffix}')} for t in types], **extra}


def _offset(image, gt):
    """The 8-bit value ``image - gt`` takes at every pixel (None when it is not one value: not aligned)."""
    difference = np.rint((image - gt).numpy() * 255)
    return int(difference.flat[0]) if np.all(difference == difference.flat[0]) else None


def test_lq_gt_and_negatives_share_the_crop_and_flips(cdd11_lmdbs):
    dataset = build_dataset(_opt(cdd11_lmdbs[0]))
    assert {source.backend for source in dataset.sources} == {'lmdb'}  # from dataroot_gt's suffix
    assert len(dataset) == 33 and dataset.source_counts() == [3] * 11
    random.seed(0)
    np.random.seed(0)
    seen_crops = set()
    for index in range(len(dataset)):
        sample = dataset[index]
        label = CDD11_TYPES.index(sample['source'])
        assert sample['label'] == label and sample['text'] == CDD11_PROMPTS[label]
        assert sample['lq'].shape == sample['gt'].shape == (3, 16, 16)
        assert sample['negatives'].shape == (10, 3, 16, 16) and sample['negatives'].dtype == torch.float32
        # a type's image is the clean image + 10 (label + 1): a constant offset only where the crops agree
        assert _offset(sample['lq'], sample['gt']) == 10 * (label + 1), index
        others = [i for i in range(11) if i != label]
        assert [_offset(n, sample['gt']) for n in sample['negatives']] == [10 * (i + 1) for i in others], index
        assert sample['lq_path'].endswith(osp.join(f"{sample['source']}.lmdb", sample['gt_path'][-6:]))
        seen_crops.add(sample['gt'][:, 0, 0].numpy().tobytes())
    assert len(seen_crops) > 3  # crops and flips differ between draws
    batch = next(iter(DataLoader(dataset, batch_size=4, shuffle=True)))
    assert batch['negatives'].shape == (4, 10, 3, 16, 16) and batch['label'].shape == (4,)


def test_disk_folders_a_subset_of_types_and_no_negatives(cdd11_lmdbs):
    raw = cdd11_lmdbs[1]
    dataset = build_dataset(_opt(raw, types=('snow', 'haze', 'low_haze'), backend='disk', gt_size=None))
    sample = dataset[dataset.source_counts()[0]]  # the first haze sample: full size, negatives snow, low_haze
    assert sample['source'] == 'haze' and sample['label'] == 0 and sample['gt'].shape == (3, 32, 32)
    assert [_offset(n, sample['gt']) for n in sample['negatives']] == [40, 50]
    plain = build_dataset(_opt(raw, types=('snow', 'haze'), backend='disk', with_negatives=False,
                               io_backend={'type': 'disk'}))[0]
    assert 'negatives' not in plain and _offset(plain['lq'], plain['gt']) == 40


def test_type_shares_are_configured_as_in_the_mixed_dataset(cdd11_lmdbs):
    opt = _opt(cdd11_lmdbs[0], types=('haze', 'low', 'rain'))
    opt['sources'][0]['repeat'], opt['sources'][2]['repeat'] = 2, 0
    dataset = build_dataset(opt)
    assert dataset.source_counts() == [6, 3, 0]
    assert dataset[0]['negatives'].shape[0] == 2  # rain is never an input but still a negative
    opt = _opt(cdd11_lmdbs[0], types=('haze', 'low', 'rain'), sampling='balanced', samples_per_epoch=40)
    for source, weight in zip(opt['sources'], (1, 1, 2)):
        source['weight'] = weight
    assert build_dataset(opt).source_counts() == [10, 10, 20]


def test_bad_sources_are_named(cdd11_lmdbs, tmp_path):
    root = cdd11_lmdbs[0]
    opt = _opt(root, types=('haze', 'fog'))
    with pytest.raises(ValueError, match=r"datasets.train.sources\[1\] \(fog\): not a type of the prompt set "
                                         r"'cdd11' \(haze, low, .*\); set label and text"):
        build_dataset(opt)
    opt['sources'][1].update(label=11, text='The image has fog degradation', dataroot_lq=osp.join(root, 'snow.lmdb'))
    fog = build_dataset(opt)[3]
    assert (fog['source'], fog['label'], fog['text']) == ('fog', 11, 'The image has fog degradation')
    with pytest.raises(ValueError, match=r"sources\[1\]: the type 'haze' is listed twice"):
        build_dataset(_opt(root, types=('haze', 'haze')))
    with pytest.raises(ValueError, match=r"datasets.train: prompts: 'cdd12' is not one of 'cdd11', 'release'"):
        build_dataset(_opt(root, prompts='cdd12'))
    # a type missing a scene: its keys differ from the clean set's
    raw = cdd11_lmdbs[1]
    partial = write_sets({'rain': [(k, osp.join(raw, 'rain', f'{k}.png')) for k in ('000000', '000001')]},
                         str(tmp_path), progress=False)['rain']
    opt = _opt(root, types=('haze',))
    opt['sources'].append({'name': 'rain', 'dataroot_lq': partial})
    with pytest.raises(ValueError, match=r"sources\[1\] \(rain\): GT and LQ LMDB keys differ: 1 GT keys have no LQ "
                                         r"\(e.g. \['000002'\]\)"):
        build_dataset(opt)


def test_negatives_with_a_single_type_per_scene_are_refused_at_build(cdd11_lmdbs):
    opt = _opt(cdd11_lmdbs[0], types=('haze',))
    with pytest.raises(ValueError, match=r"datasets.train.with_negatives: true needs two or more degradation types "
                                         r"per scene .* datasets.train.sources lists only 'haze' \(.*haze.lmdb\); list "
                                         'more types or set with_negatives: false'):
        build_dataset(opt)
    assert 'negatives' not in build_dataset({**opt, 'with_negatives': False})[0]


def test_a_negative_of_another_size_is_named(cdd11_lmdbs, tmp_path):
    raw = cdd11_lmdbs[1]
    folders = {name: str(tmp_path / name) for name in ('clear', 'haze', 'snow')}
    for name, folder in folders.items():
        os.makedirs(folder)
        for key in ('000000', '000001'):
            image = cv2.imread(osp.join(raw, name, f'{key}.png'))
            if name == 'snow' and key == '000001':
                image = image[:30]
            assert cv2.imwrite(osp.join(folder, f'{key}.png'), image)
    dataset = build_dataset(_opt(str(tmp_path), types=('haze', 'snow'), backend='disk'))
    dataset[0]
    with pytest.raises(ValueError, match=r'sources\[1\] \(snow\): .*snow/000001.png is 32x30 but the clean image '
                                         r'.*clear/000001.png is 32x32'):
        dataset[1]


def test_cdd11_prompt_set_is_the_papers_list_in_its_order():
    words = ['haze', 'low light', 'rain', 'snow', 'haze + low', 'haze + rain', 'haze + snow', 'low + rain',
             'low + snow', 'haze + low + rain', 'haze + low + snow']
    assert list(CDD11_PROMPTS) == [f'The image has {w} degradation' for w in words]
    # the label names are the release's folders, each naming the same degradations as the paper's words
    for name, word in zip(CDD11_TYPES, words):
        assert sorted(name.split('_')) == sorted(w.strip() for w in word.replace('low light', 'low').split('+'))
    assert resolve_prompts('cdd11') == list(CDD11_PROMPTS) and resolve_prompts(None) == list(DEGRADATION_PROMPTS)
    assert resolve_prompts(['a', 'b']) == ['a', 'b'] and prompt_set('release').prompts == DEGRADATION_PROMPTS
    assert all(len(s.names) == len(s.prompts) for s in PROMPT_SETS.values())
    with pytest.raises(ValueError, match="model.prompts: unknown prompt set 'cdd'; known: cdd11, release"):
        resolve_prompts('cdd', 'model.prompts')
    with pytest.raises(ValueError, match='the prompts must differ'):
        resolve_prompts(['a', 'a'])


def _option_file(name):
    with open(osp.join(REPO, 'options', name)) as f:
        return yaml.safe_load(f)


@pytest.mark.parametrize('name', ['train_clip_adapter_cdd11.yml', 'train_vlur_cdd11.yml', 'test_vlur_cdd11.yml'])
def test_cdd11_option_files_declare_valid_datasets_that_build(name, cdd11_lmdbs):
    """The data sections of the option files (not their models, written elsewhere) against the tiny CDD-11."""
    from basicsr.utils.registry import DATASET_REGISTRY
    opt = _option_file(name)
    assert opt['prompts'] == list(CDD11_PROMPTS)
    if 'class_names' in opt:
        assert opt['class_names'] == list(CDD11_TYPES)
    per_type = []
    for phase, entry in copy.deepcopy(opt['datasets']).items():
        cls = DATASET_REGISTRY.get(entry['type'])
        assert cls.option_problems(entry) == []
        assert set(entry) <= set(cls.OPTION_DEFAULTS) | {o.key for o in spec.DATASET_LOADER}
        split = 'train' if phase == 'train' else 'test'
        for key in ('dataroot_gt', 'dataroot_lq'):
            if key in entry:
                assert entry[key].startswith(f'datasets/cdd11_{split}/')
                entry[key] = osp.join(cdd11_lmdbs[0], osp.basename(entry[key]))
        for source in entry.get('sources', []):
            assert source['dataroot_lq'] == f"datasets/cdd11_{split}/{source['name']}.lmdb"
            source['dataroot_lq'] = osp.join(cdd11_lmdbs[0], osp.basename(source['dataroot_lq']))
        entry['phase'] = phase
        sample = build_dataset(entry)[0]
        if entry['type'] == 'CompositeDegradationDataset':
            assert [s.name for s in build_dataset(entry).sources] == list(CDD11_TYPES)
            assert ('negatives' in sample) == (name == 'train_vlur_cdd11.yml' and phase == 'train')
        else:
            per_type.append((sample['label'], sample['text'], osp.basename(entry['dataroot_lq'])))
            assert _offset(sample['lq'], sample['gt']) == 10 * (sample['label'] + 1)
    if name != 'train_clip_adapter_cdd11.yml':  # one set per Table I column, in its order
        assert per_type == [(i, p, f'{t}.lmdb') for i, (p, t) in enumerate(zip(CDD11_PROMPTS, CDD11_TYPES))]
