"""DGUNet training as published: MixUp of the pairs within a batch (`vlunet_basicsr.models.mixup`), and the
recipe option files run end to end through ``basicsr train`` and ``basicsr test`` with a tiny DGUNet."""
import copy
import glob
import json
import os.path as osp

import numpy as np
import pytest
import torch
import yaml
from torch.nn import functional as F
from torch.utils.data import DataLoader

import vlunet_basicsr  # noqa: F401
from basicsr.data import build_dataset
from basicsr.models import build_model
from basicsr.utils.registry import LOSS_REGISTRY
from conftest import REPO, TINY_CLIP_NET, TINY_DGUNET, TINY_VLUNET, run_cli, write_image_pairs, write_yaml
import toy_protocol_plugin  # noqa: F401  (registers ToyStagesNet, ToyTextGuidedNet and ToyReferenceLoss)
from vlunet_basicsr.models.guided_restoration_model import GuidedRestorationModel
from vlunet_basicsr.models.mixup import PairMixUp, mix_pairs, mixup_problems

TOY_STAGES = {'type': 'ToyStagesNet', 'channels': 4, 'stages': 2}


@LOSS_REGISTRY.register()
class MixupTestLqLoss(torch.nn.Module):
    """``L1(pred, lq)``: a loss that takes the batch's ``lq``, which must be the mixed one."""

    batch_inputs = ('lq',)

    def forward(self, pred, target, lq):
        return F.l1_loss(pred, lq)


def _model(mixup=None, network_g=TOY_STAGES, seed=3, network_clip=None, **losses):
    train = {'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'pixel_opt': {'type': 'L1Loss'},
             'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, **losses}
    if mixup is not None:
        train['mixup'] = mixup
    return build_model({'model_type': 'GuidedRestorationModel', 'num_gpu': 0, 'is_train': True, 'dist': False,
                        'rank': 0, 'world_size': 1, 'name': 'unit', 'manual_seed': seed, 'network_g': dict(network_g),
                        'network_clip': network_clip, 'path': {'pretrain_network_g': None}, 'val': {}, 'train': train})


def _batch(size=4, side=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return {'lq': torch.rand(size, 3, side, side, generator=generator),
            'gt': torch.rand(size, 3, side, side, generator=generator), 'lq_path': [f'p{i}' for i in range(size)]}


def test_mixup_with_a_fixed_generator_equals_the_published_formula():
    mixup = PairMixUp(seed=7, rank=1, alpha=0.6, beta=0.6)
    permutation, factors = mixup.draw(4, current_iter=5)
    rng = np.random.default_rng([7, 1, 5])  # the documented generator of (seed, rank, iteration), drawn in order
    assert permutation.tolist() == rng.permutation(4).tolist()
    assert np.array_equal(factors.numpy(), rng.beta(0.6, 0.6, size=4))
    assert sorted(permutation.tolist()) == [0, 1, 2, 3] and bool(((factors > 0) & (factors < 1)).all())

    batch = _batch()
    lq, gt = mixup(batch['lq'], batch['gt'], 5)
    for i in range(4):  # the published MixUp_AUG: one factor per sample, the same for lq and gt
        j, lam = int(permutation[i]), float(factors[i])
        assert torch.allclose(lq[i], lam * batch['lq'][i] + (1 - lam) * batch['lq'][j], atol=1e-6)
        assert torch.allclose(gt[i], lam * batch['gt'][i] + (1 - lam) * batch['gt'][j], atol=1e-6)
    assert torch.equal(mix_pairs(batch['lq'], batch['gt'], permutation, factors)[0], lq)

    again, _ = PairMixUp(seed=7, rank=1)(batch['lq'], batch['gt'], 5)  # the run's seed gives the same mixes
    assert torch.equal(again, lq)
    other_iteration, _ = mixup(batch['lq'], batch['gt'], 6)
    other_rank, _ = PairMixUp(seed=7, rank=0)(batch['lq'], batch['gt'], 5)
    assert not torch.equal(other_iteration, lq) and not torch.equal(other_rank, lq)
    late = PairMixUp(seed=7, start_iter=10)
    assert late(batch['lq'], batch['gt'], 9)[0] is batch['lq']  # before start_iter: untouched
    assert not torch.equal(late(batch['lq'], batch['gt'], 10)[0], batch['lq'])


def test_mixup_is_off_by_default_and_bad_values_name_the_key():
    model = _model()
    assert model.mixup is None and _model(False).mixup is None
    batch = _batch()
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert torch.equal(model.lq, batch['lq']) and torch.equal(model.gt, batch['gt'])
    assert GuidedRestorationModel.option_problems({'network_g': dict(TOY_STAGES), 'train': {}}, True) == []

    assert mixup_problems(True) == [] and mixup_problems({'start_iter': 5}) == []
    assert mixup_problems('yes') == ["train.mixup: 'yes' is not true, false or a mapping of alpha, beta, start_iter"]
    assert mixup_problems({'alpha': 0}) == ['train.mixup.alpha: 0 must be > 0 (a Beta concentration)']
    assert mixup_problems({'start_iter': 0})[0].startswith('train.mixup.start_iter: 0 is out of range')
    assert "unknown option 'alfa' for MixUp. Did you mean 'alpha'?" in mixup_problems({'alfa': 1.2})[0]
    with pytest.raises(ValueError, match='train.mixup.beta: -1 must be > 0'):
        _model({'beta': -1})
    problems = GuidedRestorationModel.option_problems(
        {'network_g': {'type': 'ToyTextGuidedNet'}, 'network_clip': {'type': 'DegradationCLIP'},
         'train': {'mixup': True}}, True)
    assert len(problems) == 1 and "train.mixup: ToyTextGuidedNet is guided by the prompt of each sample's label" \
        in problems[0]
    with pytest.raises(ValueError, match=r"train.mixup mixes lq and gt only, but a training loss also takes the "
                                         r"batch's 'reference'"):
        _model(True, reference_opt={'type': 'ToyReferenceLoss'})


def test_mixup_mixes_the_training_step_only_and_the_loss_sees_the_mixed_pairs(tmp_path):
    torch.manual_seed(0)
    model = _model({'start_iter': 2}, seed=11, lq_opt={'type': 'MixupTestLqLoss'})
    batch = _batch()
    model.feed_data(batch)
    model.optimize_parameters(1)  # before start_iter
    assert torch.equal(model.lq, batch['lq'])
    net = copy.deepcopy(model.net_g)
    model.feed_data(batch)
    model.optimize_parameters(2)
    lq, gt = mix_pairs(batch['lq'], batch['gt'], *PairMixUp(11).draw(4, 2))
    assert not torch.allclose(lq, batch['lq'])
    assert torch.allclose(model.lq, lq) and torch.allclose(model.gt, gt)
    with torch.no_grad():
        stages = net(lq, return_stages=True)
    assert model.log_dict['l_pix'] == pytest.approx(sum(F.l1_loss(s, gt) for s in stages).item(), rel=1e-5)
    assert model.log_dict['l_lq'] == pytest.approx(sum(F.l1_loss(s, lq) for s in stages).item(), rel=1e-5)

    # validation: never mixed (the MixUp is not called), the metric is that of the unmixed pairs
    gt_dir, lq_dir = write_image_pairs(tmp_path, count=2, size=(8, 8))
    dataset = build_dataset({'name': 'val', 'type': 'PairedDegradationDataset', 'phase': 'val', 'label': 4,
                             'dataroot_gt': gt_dir, 'dataroot_lq': lq_dir})
    calls = []
    mixup = model.mixup
    model.mixup = lambda *args: calls.append(args) or mixup(*args)
    model.opt['val'] = {'metrics': {'psnr': {'type': 'calculate_psnr_float'}}}
    model.nondist_validation(DataLoader(dataset, batch_size=2), 2, None, False)
    assert calls == []
    sample = next(iter(DataLoader(dataset, batch_size=2)))
    with torch.no_grad():
        output = model.net_g.eval()(sample['lq']).clamp(0, 1)
    mse = ((output - sample['gt']) ** 2).mean(dim=(1, 2, 3))
    assert model.metric_results['psnr'] == pytest.approx((10 * torch.log10(1 / mse)).mean().item(), rel=1e-4)


def test_image_feature_guidance_is_computed_from_the_mixed_images():
    torch.manual_seed(0)
    model = _model(True, network_g=TINY_VLUNET, network_clip=dict(TINY_CLIP_NET))
    batch = _batch(size=2, side=32)
    model.feed_data(batch)
    unmixed = model.guidance_features.clone()
    assert model.mixup.draw(2, 2)[0].tolist() == [1, 0]  # iteration 2 swaps the two (1 and 3 keep them)
    model.optimize_parameters(2)
    assert not torch.allclose(model.lq, batch['lq'])
    with torch.no_grad():
        expected = model.net_clip.degradation_vector(model.lq)
    assert torch.allclose(model.guidance_features, expected) and not torch.allclose(unmixed, expected)


def _log(folder):
    return '\n'.join(open(p).read() for p in sorted(glob.glob(osp.join(folder, '*.log'))))


def _tiny(opt, network=True):
    """A recipe file made tiny: the DGUNet sizes above, CPU, no weights."""
    opt['num_gpu'] = 0
    if network:
        opt['network_g'].update(TINY_DGUNET)
    opt.pop('dist_params', None)
    return opt


def test_a_tiny_dgunet_trains_and_tests_through_basicsr_from_the_recipe_files(tmp_path):
    """options/train_dgunet_rain13k.yml (Charbonnier + edge loss over the stages) with MixUp on, then
    options/test_dgunet_derain.yml, both made tiny, through the real basicsr command."""
    work = tmp_path / 'work'
    work.mkdir()
    gt, lq = write_image_pairs(tmp_path / 'data', count=3, size=(32, 32))
    folders = {'dataroot_gt': gt, 'dataroot_lq': lq, 'io_backend': {'type': 'disk'}}

    train = _tiny(yaml.safe_load(open(osp.join(REPO, 'options', 'train_dgunet_rain13k.yml'))))
    data = train['datasets']
    data['train'].update(gt_size=32, batch_size_per_gpu=2, num_worker_per_gpu=0)
    data['train']['sources'][0].update(folders)
    data['val_1'].update(folders)
    train['train'].update(total_iter=3, mixup={'start_iter': 2})
    train['train']['scheduler'].update(warmup_iter=1, total_iter=3)
    train['val']['val_freq'] = 3
    train['logger'].update(print_freq=1, save_checkpoint_freq=3, use_tb_logger=False)
    proc = run_cli(['train', '-opt', write_yaml(tmp_path / 'train.yml', train)], cwd=work,
                   env_extra={'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    exp = work / 'experiments' / 'train_dgunet_rain13k'
    log = _log(exp)
    assert 'Network DGUNet: unguided: net(lq); returns stage images, loss summed over them.' in log
    assert 'Training pairs are mixed: MixUp(Beta(0.6, 0.6), from iteration 2).' in log
    for it in (1, 2, 3):
        line = next(line for line in log.splitlines() if f'iter:{it:8,d},' in line)
        assert 'l_pix: ' in line and 'l_edge: ' in line, line
    assert 'Validation Rain100L\n\t # psnr: ' in log and '(3 images)' in log
    assert (exp / 'models' / 'net_g_3.pth').is_file()

    test = _tiny(yaml.safe_load(open(osp.join(REPO, 'options', 'test_dgunet_derain.yml'))))
    test['datasets'] = {key: {**test['datasets'][key], **folders} for key in ('test_1', 'test_2')}
    test['path']['pretrain_network_g'] = str(exp / 'models' / 'net_g_3.pth')
    proc = run_cli(['test', '-opt', write_yaml(tmp_path / 'test.yml', test)], cwd=work,
                   env_extra={'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = work / 'results' / 'test_dgunet_derain'
    metrics = json.load(open(results / 'metrics.json'))
    assert set(metrics) == {'Rain100L', 'Rain100H'}
    for name in metrics:
        assert metrics[name]['counts']['images'] == 3
        assert all(np.isfinite(metrics[name][key]) for key in ('psnr', 'ssim', 'psnr_y', 'ssim_y'))
        assert 0 < metrics[name]['ssim'] <= 1
    assert 'Average over 2 sets (Rain100L, Rain100H)' in _log(results)
    assert osp.isfile(results / 'visualization' / 'Rain100L' / 'img00_test_dgunet_derain.png')
