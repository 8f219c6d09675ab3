"""The option pipeline: declared keys and values, required keys, plain names, numbers, plugins, the torch-free CLI."""
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

import vlunet_basicsr  # noqa: F401
from conftest import REPO, TINY_VLUNET, run_cli, run_front_door, write_image_pairs, write_yaml
from vlunet_basicsr.tools import options
from vlunet_basicsr.tools.options.reference import declaring_classes, render_reference

def _train_opt(gt, lq, name='opts'):
    return {'name': name, 'model_type': 'VLUNetModel', 'num_gpu': 0, 'manual_seed': 0,
            'datasets': {'train': {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16,
                                   'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2,
                                   'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq},
                                               {'name': 'noise', 'label': 0, 'dataroot_gt': gt, 'noise_sigma': 15}]}},
            'network_g': dict(TINY_VLUNET), 'network_clip': None, 'path': {},
            'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 2,
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [1000], 'gamma': 0.5},
                      'pixel_opt': {'type': 'L1Loss'}},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False}}


def _parse(tmp_path, opt, is_train=True, **flags):
    path = write_yaml(tmp_path / 'o.yml', opt)
    return path, options.parse_options(str(tmp_path), path, is_train, **flags)


def _problems(tmp_path, opt, error=ValueError, is_train=True, **flags):
    path = write_yaml(tmp_path / 'o.yml', opt)
    with pytest.raises(error) as info:
        options.parse_options(str(tmp_path), path, is_train, **flags)
    message = str(info.value)
    assert message.startswith(f'{path}:'), message
    return message


def _set(opt, dotted, value):
    *parents, last = dotted.split('.')
    node = opt
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[last] = value


@pytest.mark.parametrize('key, value, expected', [
    ('datasets.train.gt_size', 'big', "datasets.train.gt_size: 'big' is not an integer >= 1"),
    ('datasets.train.gt_size', 0, 'datasets.train.gt_size: 0 is out of range; expected an integer >= 1'),
    ('datasets.train.sources.1.noise_sigma', 'high', "datasets.train.sources[1].noise_sigma: 'high' is not a number"),
    ('datasets.train.sources.1.noise_sigma', -5, 'datasets.train.sources[1].noise_sigma: -5 is out of range'),
    ('datasets.train.sources.0.label', 'rain', "datasets.train.sources[0].label: 'rain' is not an integer"),
    ('train.optim_g.lr', 'fast', "train.optim_g.lr: 'fast' is not a number >= 0"),
    ('train.optim_g.weight_decay', 'lots', "train.optim_g.weight_decay: 'lots' is not a number"),
    ('datasets.train.batch_size_per_gpu', 0, 'datasets.train.batch_size_per_gpu: 0 is out of range'),
    ('network_g.dim', 8, 'network_g.dim: 8 is out of range; expected an integer >= 10'),
    ('network_g.num_blocks', [1, 1], 'network_g.num_blocks: [1, 1] has 2 entries; expected a list of 4 integers'),
    ('datasets.train.sampling', 'random', "datasets.train.sampling: 'random' is not one of 'repeat', 'balanced'"),
])
def test_a_wrong_value_names_the_key_the_file_and_the_value(tmp_path, key, value, expected):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    _set(opt, key, value)
    assert expected in _problems(tmp_path, opt)


def test_force_yml_values_are_checked_like_the_file(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    message = _problems(tmp_path, _train_opt(gt, lq), force_yml=['train:total_iter=many'])
    assert "train.total_iter: 'many' is not an integer >= 1" in message


def test_force_yml_addresses_list_items_by_index_and_names_a_bad_one():
    from vlunet_basicsr.tools.options.loading import force_values
    opt = {'datasets': {'train': {'sources': [{'name': 'a', 'repeat': 1}, {'name': 'b', 'repeat': 1}]}},
           'network_g': {'num_blocks': [4, 6, 6, 8]}, 'name': 'x'}
    force_values(opt, ['datasets:train:sources:1:repeat=6', 'network_g:num_blocks:0=2'])
    assert opt['datasets']['train']['sources'] == [{'name': 'a', 'repeat': 1}, {'name': 'b', 'repeat': 6}]
    assert opt['network_g']['num_blocks'] == [2, 6, 6, 8]
    for entry, message in [
            ('datasets:train:sources:2:repeat=6', "'datasets:train:sources' is a list of 2 items; '2' is not an index"),
            ('datasets:train:sources:b:repeat=6', "'datasets:train:sources' is a list of 2 items; 'b' is not an index"),
            ('network_g:num_blocks:-1=2', "'network_g:num_blocks' is a list of 4 items; '-1' is not an index of it"),
            ('name:sub=1', "'name' is a value, not a section"),
            ('datasets:val:x=1', "no option 'datasets:val'")]:
        with pytest.raises(KeyError, match=re.escape(message)):
            force_values(opt, [entry])
    assert opt['datasets']['train']['sources'][1]['repeat'] == 6 and opt['name'] == 'x'


@pytest.mark.parametrize('remove, expected', [
    ('name', 'name: required'),
    ('datasets', 'datasets: required'),
    ('network_g', 'network_g: required'),
    ('train.total_iter', 'train.total_iter: required'),
    ('datasets.train.batch_size_per_gpu', 'datasets.train.batch_size_per_gpu: required in training'),
    ('logger', 'logger: required in training'),
])
def test_a_missing_required_key_is_named(tmp_path, remove, expected):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    *parents, last = remove.split('.')
    node = opt
    for part in parents:
        node = node[part]
    del node[last]
    assert expected in _problems(tmp_path, opt)


def test_problems_of_several_keys_are_reported_together(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    opt['datasets']['train']['gt_size'] = 'big'
    opt['train']['optim_g']['lr'] = 'fast'
    opt['network_g']['dimm'] = 16
    message = _problems(tmp_path, opt)
    assert 'gt_size' in message and 'optim_g.lr' in message and "Did you mean 'dim'?" in message


def test_numbers_in_exponent_notation_are_numbers(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    path = write_yaml(tmp_path / 'o.yml', _train_opt(gt, lq))
    text = open(path).read().replace('lr: 0.001', 'lr: 2e-4')
    assert 'lr: 2e-4' in text
    open(path, 'w').write(text)
    opt, _ = options.parse_options(str(tmp_path), path)
    assert opt['train']['optim_g']['lr'] == 2e-4  # YAML 1.1 alone reads the string '2e-4'
    opt, _ = options.parse_options(str(tmp_path), path, force_yml=['train:optim_g:lr=1e-4',
                                                                        'logger:save_checkpoint_freq=5e3'])
    assert opt['train']['optim_g']['lr'] == 1e-4 and isinstance(opt['train']['optim_g']['lr'], float)
    assert opt['logger']['save_checkpoint_freq'] == 5000 and isinstance(opt['logger']['save_checkpoint_freq'], int)


@pytest.mark.parametrize('key, value', [
    ('name', '../../victim'), ('name', '/tmp/elsewhere'), ('name', 'a/b'), ('name', '..'),
    ('datasets.train.name', '../out'), ('val.suffix', '../x'),
])
def test_names_that_leave_their_folder_are_refused(tmp_path, key, value):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    opt['val'] = {'save_img': False}
    _set(opt, key, value)
    message = _problems(tmp_path, opt)
    assert f'{key}: {value!r} is not a plain name' in message


def test_an_escaping_experiment_name_touches_no_user_folder(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    victim = tmp_path / 'victim'
    victim.mkdir()
    (victim / 'thesis.tex').write_text('years of work')
    work = tmp_path / 'work' / 'deeper'
    work.mkdir(parents=True)
    opt_path = write_yaml(tmp_path / 'escape.yml', _train_opt(gt, lq, name='../../victim'))
    proc = run_cli(['train', '-opt', opt_path], cwd=work)
    assert proc.returncode != 0 and "name: '../../victim' is not a plain name" in proc.stderr
    assert sorted(os.listdir(tmp_path)) == ['data', 'escape.yml', 'victim', 'work']
    assert os.listdir(victim) == ['thesis.tex'] and (victim / 'thesis.tex').read_text() == 'years of work'
    assert os.listdir(work) == []
    test_opt = _train_opt(gt, lq, name='../../victim')
    test_opt['datasets'] = {'test_1': {'name': 'set', 'type': 'PairedDegradationDataset', 'label': 4,
                                       'dataroot_gt': gt, 'dataroot_lq': lq}}
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'escape_test.yml', test_opt)], cwd=work)
    assert proc.returncode != 0 and "name: '../../victim' is not a plain name" in proc.stderr
    assert os.listdir(victim) == ['thesis.tex'] and os.listdir(work) == []


_PLUGIN = '''
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class WorkingFolderNet(nn.Module):
    def forward(self, x):
        return x
'''


@pytest.mark.parametrize('network, expected', [
    ({'channels': 0}, 'network_g.channels: 0 is out of range; expected an integer >= 1'),
    ({'chanels': 4}, "network_g: unknown option 'chanels' for ToyDeclaredNet. Did you mean 'channels'?"),
])
def test_another_plugins_declared_options_are_checked(tmp_path, network, expected):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    opt.update(plugins=['toy_options_plugin'], model_type='SRModel', network_g={'type': 'ToyDeclaredNet', **network})
    del opt['network_clip']
    assert expected in _problems(tmp_path, opt)


def test_plugin_modules_are_found_in_the_working_folder(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    (tmp_path / 'my_folder_plugin.py').write_text(_PLUGIN)
    opt = _train_opt(gt, lq)
    opt['plugins'] = ['my_folder_plugin']
    opt['model_type'] = 'SRModel'
    opt['network_g'] = {'type': 'WorkingFolderNet'}
    del opt['network_clip']
    path = write_yaml(tmp_path / 'plugin.yml', opt)
    # -I: no script folder or '' on sys.path, as under the `basicsr` console script (pytest would add them).
    code = ('import sys; from vlunet_basicsr.tools import options\n'
            f'options.parse_options({str(tmp_path)!r}, {path!r})\n'
            'from basicsr.utils.registry import ARCH_REGISTRY\n'
            'print("REGISTERED", "WorkingFolderNet" in ARCH_REGISTRY)')
    proc = subprocess.run([sys.executable, '-I', '-c', code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert 'REGISTERED True' in proc.stdout


@pytest.mark.parametrize('argv', [['--help'], ['train', '--help'], ['test', '-h'], ['train'],
                                  ['train', '-opt', 'x.yml', '--launcher', 'mpi'], ['nonsense'],
                                  ['restore', '--help'], ['restore', 'x.png', '--tile', 'big']])
def test_help_and_argument_errors_answer_without_importing_torch(tmp_path, argv):
    proc, imported = run_front_door(argv, tmp_path)
    assert not imported & {'torch', 'basicsr', 'cv2', 'numpy'}, sorted(imported)
    assert proc.returncode == (0 if '--help' in argv or '-h' in argv else 2), proc.stdout + proc.stderr
    assert ('usage: basicsr' in proc.stdout + proc.stderr)


def test_every_class_documents_each_key_once_and_checks_its_values_itself():
    from vlunet_basicsr.tools.options.reference import class_keys
    found = declaring_classes()
    assert {cls.__name__ for _, _, cls in found} >= {'VLUNet', 'DegradationCLIP', 'MixedDegradationDataset',
                                                      'PairedDegradationDataset', 'DegradationContrastiveLoss',
                                                      'LinearWarmupCosineLR', 'VLUNetModel', 'CLIPAdapterModel'}
    for kind, _, cls in found:
        assert not hasattr(cls, 'OPTIONS'), f'{cls.__name__}: the constructor or OPTION_DEFAULTS is the schema'
        if kind in ('arch', 'loss', 'scheduler'):
            assert not hasattr(cls, 'OPTION_DEFAULTS') and hasattr(cls, 'argument_problems'), cls
        else:
            assert isinstance(cls.OPTION_DEFAULTS, dict) and hasattr(cls, 'option_problems'), cls
        for key, kind_text, text, _ in class_keys(cls):
            assert kind_text and text, f'{cls.__name__}: key {key} is not documented as `{key} (type): text`'


def test_an_arch_checks_its_arguments_in_its_constructor_and_the_pre_flight_calls_that_check():
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    from vlunet_basicsr.tools.options.checks import constructor_problems
    with pytest.raises(ValueError, match=re.escape('VLUNet: num_blocks: [1, 0, 1, 1] is out of range')):
        VLUNet(num_blocks=[1, 0, 1, 1])
    assert constructor_problems(VLUNet, {'type': 'VLUNet', 'num_blocks': [1, 0, 1, 1]}, 'network_g', 'VLUNet') == [
        'network_g.num_blocks: [1, 0, 1, 1] is out of range; expected a list of 4 integers >= 1']
    assert constructor_problems(VLUNet, {'type': 'VLUNet', 'dims': 4}, 'network_g', 'VLUNet') == [
        "network_g: unknown option 'dims' for VLUNet. Did you mean 'dim'?"]


def test_the_option_reference_page_is_generated_from_the_declarations():
    with open(osp.join(REPO, 'docs', 'option_reference.md'), encoding='utf-8') as f:
        committed = f.read()
    assert committed == render_reference(), 'docs/option_reference.md is stale: run python scripts/option_reference.py'


@pytest.mark.parametrize('section, key, closest', [
    ('val', 'tiles', 'tile'), ('train', 'grad_clip_nrom', 'grad_clip_norm'),
    ('path', 'trust_checkpiont', 'trust_checkpoint')])
def test_a_misspelled_model_key_names_the_closest_declared_key(tmp_path, section, key, closest):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    opt.setdefault(section, {})[key] = 1
    message = _problems(tmp_path, opt)
    assert f"{section}: unknown option '{key}' for VLUNetModel. Did you mean '{closest}'?" in message


def test_guidance_that_the_arch_does_not_take_is_refused_before_building(tmp_path):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = _train_opt(gt, lq)
    opt['model_type'] = 'GuidedRestorationModel'
    opt['network_g'] = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1.,
                        'depths': [1], 'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 2, 'upsampler': ''}
    opt['network_clip'] = {'type': 'DegradationCLIP', 'pretrained': None}
    message = _problems(tmp_path, opt)
    assert 'network_clip is set, but SwinIR takes no guidance' in message
    opt['network_clip'] = None
    opt['prompts'] = 'no_such_set'
    assert "prompts" in _problems(tmp_path, opt) and 'no_such_set' in _problems(tmp_path, opt)
