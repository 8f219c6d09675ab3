"""GuidedRestorationModel: the arch protocol (BasicSR's SwinIR, a multi-stage toy, a text-guided toy, VLUNet),
the non-finite guard's stop and resume, and metrics that cannot be computed for one image."""
import copy
import glob
import json
import os.path as osp
import re

import cv2
import numpy as np
import pytest
import torch
from torch.nn import functional as F

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.models import build_model
from basicsr.utils.registry import ARCH_REGISTRY
from conftest import TINY_CLIP_NET, TINY_VLUNET, degradation_datasets, run_cli, write_image_pairs, write_yaml
import toy_protocol_plugin  # noqa: F401  (registers ToyStagesNet and ToyTextGuidedNet here too)
from vlunet_basicsr.archs.vlunet_arch import DGDM
from vlunet_basicsr.models.network_inputs import NetworkInputs
from vlunet_basicsr.utils.prompts import DEGRADATION_PROMPTS

TESTS = osp.dirname(osp.abspath(__file__))
PLUGIN_ENV = {'PYTHONPATH': TESTS, 'OMP_NUM_THREADS': '1'}
TINY_SWINIR = {'type': 'SwinIR', 'upscale': 1, 'img_size': 16, 'window_size': 4, 'img_range': 1.0, 'depths': [1],
               'embed_dim': 12, 'num_heads': [2], 'mlp_ratio': 2, 'upsampler': ''}
TOY_STAGES = {'type': 'ToyStagesNet', 'channels': 8, 'stages': 3}


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def _output(proc):
    return proc.stdout[-3000:] + proc.stderr[-3000:]


def _model_opt(network_g, network_clip=None, is_train=True, **val):
    opt = {'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'is_train': is_train, 'dist': False, 'rank': 0,
           'world_size': 1, 'name': 'unit', 'network_g': dict(network_g), 'network_clip': network_clip,
           'path': {'pretrain_network_g': None}, 'val': val}
    if is_train:
        opt['train'] = {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'pixel_opt': {'type': 'L1Loss'},
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}}
    return opt


def test_the_protocol_is_declared_by_the_arch_with_defaults_for_any_basicsr_arch():
    assert NetworkInputs.of(ARCH_REGISTRY.get('SwinIR')) == NetworkInputs('SwinIR', None, False)
    assert NetworkInputs.of(ARCH_REGISTRY.get('VLUNet')) == NetworkInputs('VLUNet', 'image_features', False, True)
    assert NetworkInputs.of(ARCH_REGISTRY.get('ToyStagesNet')).multi_stage_output
    assert NetworkInputs.of(ARCH_REGISTRY.get('ToyTextGuidedNet')).guidance_input == 'text_features'

    class Misdeclared(torch.nn.Module):
        guidance_input = 'clip'

    with pytest.raises(ValueError, match=r"Misdeclared.guidance_input must be one of \(None, 'image_features'"):
        NetworkInputs.of(Misdeclared)


def test_network_clip_must_fit_the_arch():
    with pytest.raises(ValueError, match='network_clip is set, but SwinIR takes no guidance'):
        build_model(_model_opt(TINY_SWINIR, dict(TINY_CLIP_NET), is_train=False))
    with pytest.raises(ValueError, match=r"ToyTextGuidedNet .*'text_features'.*needs network_clip"):
        build_model(_model_opt({'type': 'ToyTextGuidedNet'}, None, is_train=False))


def test_vlunet_model_runs_a_single_input_basicsr_arch():
    """The issue's case: SwinIR in VLUNetModel without network_clip got ``net_g(lq, None)`` (TypeError)."""
    torch.manual_seed(0)
    model = build_model({**_model_opt(TINY_SWINIR), 'model_type': 'VLUNetModel'})
    lq = torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': lq, 'gt': lq, 'lq_path': ['a', 'b']})
    assert model.guidance_features is None
    model.optimize_parameters(1)
    assert np.isfinite(model.log_dict['l_pix'])
    model.feed_data({'lq': lq[:1]})
    model.test()
    assert model.output.shape == (1, 3, 16, 16)


def test_vlunet_without_clip_freezes_only_its_guidance_layers():
    unguided = build_model({**_model_opt(TINY_VLUNET), 'model_type': 'VLUNetModel'})
    guided = build_model({**_model_opt(TINY_VLUNET, dict(TINY_CLIP_NET)), 'model_type': 'VLUNetModel'})
    for model, frozen in ((unguided, True), (guided, False)):
        linears = [m.linear for m in model.net_g.modules() if isinstance(m, DGDM)]
        assert len(linears) == 8
        assert all(p.requires_grad != frozen for linear in linears for p in linear.parameters())
        assert model.net_g.output.weight.requires_grad


def test_multi_stage_loss_is_summed_over_the_stages_and_the_final_image_is_restored():
    torch.manual_seed(0)
    model = build_model(_model_opt(TOY_STAGES))
    before = copy.deepcopy(model.net_g)
    lq, gt = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': lq, 'gt': gt, 'lq_path': ['a', 'b']})
    model.optimize_parameters(1)
    with torch.no_grad():
        stages = before(lq, return_stages=True)
    assert len(stages) == 3
    expected = sum(F.l1_loss(stage, gt) for stage in stages).item()
    assert model.log_dict['l_pix'] == pytest.approx(expected, rel=1e-5)
    assert torch.allclose(model.output, stages[0])  # the final image, first
    model.feed_data({'lq': lq})
    model.test()
    with torch.no_grad():
        assert torch.allclose(model.output, model.net_g.eval()(lq))


def test_every_train_loss_is_summed_over_the_stages_and_gets_the_batch_inputs_it_declares():
    torch.manual_seed(0)
    opt = _model_opt(TOY_STAGES)
    opt['train']['reference_opt'] = {'type': 'ToyReferenceLoss', 'loss_weight': 0.5}
    model = build_model(opt)
    before = copy.deepcopy(model.net_g)
    lq, gt, reference = torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16), torch.rand(2, 3, 16, 16)
    model.feed_data({'lq': lq, 'gt': gt, 'reference': reference})
    model.optimize_parameters(1)
    with torch.no_grad():
        stages = before(lq, return_stages=True)
    expected = sum(0.5 * (F.l1_loss(stage, lq) + F.l1_loss(stage, reference)) for stage in stages).item()
    assert list(model.log_dict) == ['l_pix', 'l_reference']
    assert model.log_dict['l_reference'] == pytest.approx(expected, rel=1e-5)
    with pytest.raises(ValueError, match="a training loss needs the batch's 'reference'"):
        model.feed_data({'lq': lq, 'gt': gt})


def test_text_guidance_is_the_label_prompt_in_training_and_the_predicted_or_given_one_in_evaluation():
    torch.manual_seed(0)
    model = build_model(_model_opt({'type': 'ToyTextGuidedNet'}, dict(TINY_CLIP_NET)))
    clip = model.net_clip
    prompts = clip.encode_text(list(DEGRADATION_PROMPTS)).float()
    lq = torch.rand(2, 3, 32, 32)
    model.feed_data({'lq': lq, 'gt': lq, 'label': torch.tensor([4, 1])})
    assert torch.allclose(model.guidance_features, prompts[[4, 1]])
    model.optimize_parameters(1)
    assert torch.allclose(model.net_g.seen[-1], prompts[[4, 1]])
    predicted = clip.prompt_probabilities(clip.degradation_vector(lq), list(DEGRADATION_PROMPTS)).argmax(dim=1)
    encode_text, text_calls = clip.encode_text, []
    clip.encode_text = lambda prompts: text_calls.append(prompts) or encode_text(prompts)
    with model._feeding_under(model.val_amp):
        model.feed_data({'lq': lq, 'label': torch.tensor([4, 1])})
    assert text_calls == []  # the prompts were encoded once, when the model was built
    assert torch.equal(model.guidance.last_prompts, predicted)
    assert torch.allclose(model.guidance_features, prompts[predicted])
    model.test()
    assert model.output.shape == lq.shape and torch.allclose(model.net_g.seen[-1], prompts[predicted])

    given = build_model(_model_opt({'type': 'ToyTextGuidedNet'}, dict(TINY_CLIP_NET), is_train=False,
                                   degradation_type='image with haze'))
    given.feed_data({'lq': lq})
    assert given.guidance.last_prompts.tolist() == [3, 3]
    by_name = build_model(_model_opt({'type': 'ToyTextGuidedNet'}, dict(TINY_CLIP_NET), is_train=False,
                                     degradation_type='rain'))  # the label's name in the release's prompt set
    by_name.feed_data({'lq': lq})
    assert by_name.guidance.last_prompts.tolist() == [4, 4]
    with pytest.raises(ValueError, match=r"val.degradation_type must be a label 0-6, one of the names \['noise15'"):
        build_model(_model_opt({'type': 'ToyTextGuidedNet'}, dict(TINY_CLIP_NET), is_train=False,
                               degradation_type='fog'))


def test_ssim_float_names_the_minimum_size():
    image = np.random.default_rng(0).random((5, 5, 3))
    with pytest.raises(ValueError, match='SSIM needs images of at least 7x7 pixels .*got 5x5'):
        calculate_metric({'img': image, 'img2': image}, {'type': 'calculate_ssim_float'})


def _datasets(root, train_size=32):
    gt, lq = write_image_pairs(root, count=3, size=(train_size, train_size))
    return degradation_datasets(gt, lq, seed=0)


METRICS = {'psnr': {'type': 'calculate_psnr_float'}, 'ssim': {'type': 'calculate_ssim_float'}}


def _train_opt(name, network_g, datasets, **train):
    return {'name': name, 'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'manual_seed': 0,
            'plugins': ['toy_protocol_plugin'], 'datasets': datasets, 'network_g': dict(network_g), 'path': {},
            'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3}, 'total_iter': 3, 'pixel_opt': {'type': 'L1Loss'},
                      'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, **train},
            'val': {'val_freq': 3, 'save_img': False, 'size_multiple': 4, 'metrics': METRICS},
            'logger': {'print_freq': 1, 'save_checkpoint_freq': 3, 'use_tb_logger': False}}


@pytest.mark.parametrize('network_g, describe', [
    (TINY_SWINIR, 'Network SwinIR: unguided: net(lq); returns one image.'),
    ({**TOY_STAGES, 'nan_steps': 1}, 'Network ToyStagesNet: unguided: net(lq); returns stage images'),
], ids=['SwinIR', 'ToyStagesNet'])
def test_any_arch_trains_validates_resumes_and_tests_through_basicsr(tmp_path, network_g, describe):
    work = tmp_path / 'work'
    work.mkdir()
    datasets = _datasets(tmp_path / 'data')
    opt_path = write_yaml(tmp_path / 'train.yml', _train_opt('run', network_g, datasets, ema_decay=0.9))
    proc = run_cli(['train', '-opt', opt_path], cwd=work, env_extra=PLUGIN_ENV)
    assert proc.returncode == 0, _output(proc)
    exp = work / 'experiments' / 'run'
    log = _log(exp)
    assert describe in log
    assert 'Validation val_rain\n\t # psnr: ' in log and '# ssim: ' in log and '(3 images)' in log
    assert 'Average over 2 sets (val_rain, val_noise)' in log
    if network_g.get('nan_steps'):  # a non-finite first step is skipped and logged, not a crash
        assert 'iter 1: non-finite loss (nan), step skipped (1 in a row)' in log and 'l_pix: nan' in log
    assert set(torch.load(exp / 'models' / 'net_g_3.pth', weights_only=True)) == {'params', 'params_ema'}

    force = ['train:total_iter=4'] + (['network_g:nan_steps=0'] if 'nan_steps' in network_g else [])
    proc = run_cli(['train', '-opt', opt_path, '--auto_resume', '--force_yml', *force], cwd=work,
                   env_extra=PLUGIN_ENV)
    assert proc.returncode == 0, _output(proc)
    assert 'Resuming training from epoch: 0, iter: 3.' in _log(exp)
    assert 'iter:       4,' in _log(exp) and (exp / 'models' / 'net_g_latest.pth').is_file()

    # test, with a 5x5 image among the normal ones: SSIM leaves it out, PSNR does not, the run goes on
    test_set = {key: value for key, value in datasets['val_1'].items()}
    tiny = np.random.default_rng(0).integers(0, 256, (5, 5, 3), dtype=np.uint8)
    for folder in ('dataroot_gt', 'dataroot_lq'):
        cv2.imwrite(osp.join(test_set[folder], 'tiny.png'), tiny)
    test_opt = {'name': 'run_test', 'model_type': 'GuidedRestorationModel', 'num_gpu': 0,
                'plugins': ['toy_protocol_plugin'], 'datasets': {'test_1': {**test_set, 'name': 'rain_test'}},
                'network_g': dict(network_g),
                'path': {'pretrain_network_g': str(exp / 'models' / 'net_g_latest.pth'), 'param_key_g': 'params_ema'},
                'val': {'save_img': True, 'size_multiple': 4, 'metrics': METRICS}}
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'test.yml', test_opt)], cwd=work, env_extra=PLUGIN_ENV)
    assert proc.returncode == 0, _output(proc)
    results = work / 'results' / 'run_test'
    metrics = json.load(open(results / 'metrics.json'))['rain_test']
    assert metrics['counts'] == {'images': 4, 'psnr': 4, 'ssim': 3}
    assert np.isfinite(metrics['psnr']) and 0 < metrics['ssim'] <= 1
    log = _log(results)
    assert re.search(r'rain_test: metric ssim cannot be computed for image tiny \(ValueError: SSIM needs images of '
                     r'at least 7x7 pixels .*got 5x5\); the image is left out of the ssim average', log)
    assert '# psnr: ' in log and '(4 images)' in log and '(3 of 4 images)' in log
    restored = cv2.imread(str(results / 'visualization' / 'rain_test' / 'tiny_run_test.png'))
    assert restored.shape == (5, 5, 3)


def test_diverging_training_stops_with_the_last_good_weights_and_resumes_with_a_lower_rate(tmp_path):
    work = tmp_path / 'work'
    work.mkdir()
    datasets = {'train': _datasets(tmp_path / 'data')['train']}
    opt = _train_opt('diverge', TINY_VLUNET, datasets, total_iter=20, max_nonfinite_steps=3, ema_decay=0.5)
    opt['network_clip'] = None
    opt['train']['optim_g']['lr'] = 1e6
    opt['logger']['save_checkpoint_freq'] = 1
    del opt['val']
    opt_path = write_yaml(tmp_path / 'diverge.yml', opt)
    proc = run_cli(['train', '-opt', opt_path], cwd=work, env_extra=PLUGIN_ENV)
    assert proc.returncode != 0
    found = re.search(r'3 non-finite losses in a row \(iterations (\d+)-(\d+)\); stopped. The last good weights, '
                      r'those of iteration (\d+) \(they gave the last finite loss, at iteration (\d+)\), are saved as '
                      r'iteration (\d+) ', proc.stderr)
    assert found, _output(proc)
    first, stop, good, finite, saved = map(int, found.groups())
    assert stop == saved and finite == good + 1 and first == finite + 1
    exp = work / 'experiments' / 'diverge'
    net = build_network(dict(TINY_VLUNET)).eval()
    image = torch.rand(1, 3, 32, 32)
    checkpoint = torch.load(exp / 'models' / f'net_g_{stop}.pth', weights_only=True)
    for key in ('params', 'params_ema'):
        net.load_state_dict(checkpoint[key])
        with torch.no_grad():
            assert torch.isfinite(net(image)).all(), key
    broken = torch.load(exp / 'models' / f'net_g_{stop - 1}.pth', weights_only=True)['params']
    net.load_state_dict(broken)  # a regular checkpoint written after the step that broke the weights
    with torch.no_grad():
        assert not torch.isfinite(net(image)).all()

    proc = run_cli(['train', '-opt', opt_path, '--auto_resume', '--force_yml', 'train:optim_g:lr=0.0001',
                    f'train:total_iter={stop + 3}'], cwd=work, env_extra=PLUGIN_ENV)
    assert proc.returncode == 0, _output(proc)
    log = _log(exp)
    assert 'Resuming training from epoch' in log and f'iter: {stop}.' in log
    assert 'base learning rate 1e+06 in the training state, 0.0001 in the options; using 0.0001' in log
    assert 'non-finite loss' not in log.split('Resuming training from epoch')[-1]
    net.load_state_dict(torch.load(exp / 'models' / f'net_g_{stop + 3}.pth', weights_only=True)['params'])
    with torch.no_grad():
        assert torch.isfinite(net(image)).all()
