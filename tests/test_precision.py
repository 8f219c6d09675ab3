"""Speed options: ``train.amp`` / ``val.amp`` / ``val.compile`` in VLUNetModel, ``basicsr restore --amp``, and
their errors."""
import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.models import build_model
from conftest import TINY_CLIP_NET, TINY_VLUNET, restore_main, write_image_pairs, write_yaml
from vlunet_basicsr.tools import options
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.utils.precision import bf16_supported

NET = {key: value for key, value in TINY_VLUNET.items() if key != 'type'}
needs_bf16 = pytest.mark.skipif(not bf16_supported('cpu'),
                                reason='this CPU has no native bf16 arithmetic: bf16 runs float32')


def _opt(tmp_path, is_train, train_amp=None, val_amp=None):
    opt = {'name': 'amp', 'model_type': 'VLUNetModel', 'num_gpu': 0, 'is_train': is_train, 'dist': False,
           'rank': 0, 'world_size': 1, 'network_g': dict(TINY_VLUNET), 'network_clip': dict(TINY_CLIP_NET),
           'path': {'models': str(tmp_path / 'models'), 'training_states': str(tmp_path / 'states')},
           'val': {'amp': val_amp or 'none'}}
    if is_train:
        opt['train'] = {'amp': train_amp or 'none', 'optim_g': {'type': 'AdamW', 'lr': 1e-3},
                        'pixel_opt': {'type': 'L1Loss'},
                        'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}}
    return opt


class ConvDtypes:
    """Records the dtype of every convolution output of a network (autocast makes them bf16)."""

    def __init__(self, net):
        self.seen = set()
        for module in net.modules():
            if isinstance(module, torch.nn.Conv2d):
                module.register_forward_hook(lambda m, i, o: self.seen.add(o.dtype))


@needs_bf16
def test_val_amp_runs_clip_and_restoration_under_bf16_and_returns_float32(tmp_path):
    torch.manual_seed(0)
    fp32 = build_model(_opt(tmp_path, False))
    bf16 = build_model(_opt(tmp_path, False, val_amp='bf16'))
    bf16.net_g.load_state_dict(fp32.net_g.state_dict())
    bf16.net_clip.load_state_dict(fp32.net_clip.state_dict())
    convs = ConvDtypes(bf16.net_g)
    lq = torch.rand(1, 3, 40, 36)
    outputs = []
    for model in (fp32, bf16):
        model.feed_data({'lq': lq})
        model.test()
        outputs.append((model.guidance_features, model.output))
    assert convs.seen == {torch.bfloat16}
    (vector32, out32), (vector16, out16) = outputs
    assert vector16.dtype == out16.dtype == torch.float32 and out16.shape == lq.shape
    assert not torch.equal(vector16, vector32) and torch.allclose(vector16, vector32, atol=0.1)
    assert not torch.equal(out16, out32) and (out16 - out32).abs().max() < 0.1


@needs_bf16
def test_train_amp_bf16_trains_and_validation_uses_val_amp(tmp_path):
    torch.manual_seed(0)
    model = build_model(_opt(tmp_path, True, train_amp='bf16'))
    convs = ConvDtypes(model.net_g)
    gt = torch.rand(2, 3, 32, 32)
    model.feed_data({'lq': (gt + 0.1 * torch.randn_like(gt)).clamp(0, 1), 'gt': gt, 'lq_path': ['a', 'b']})
    before = model.net_g.output.weight.detach().clone()
    model.optimize_parameters(1)
    assert convs.seen == {torch.bfloat16} and model.output.dtype == torch.float32
    assert model.net_g.output.weight.dtype == torch.float32 and not torch.equal(before, model.net_g.output.weight)
    assert np.isfinite(model.log_dict['l_pix'])
    convs.seen.clear()
    with model._feeding_under(model.val_amp):  # validation during training: val.amp is none here
        model.feed_data({'lq': gt[:1]})
    model.test()
    assert convs.seen == {torch.float32}


def test_val_compile_restores_through_torch_compile_with_the_given_arguments(tmp_path):
    graphs = []

    def recording_backend(graph_module, example_inputs):
        graphs.append(graph_module)
        return graph_module.forward

    torch.manual_seed(0)
    plain = build_model(_opt(tmp_path, False))
    model = build_model({**_opt(tmp_path, False), 'val': {'compile': {'backend': recording_backend}}})
    model.net_g.load_state_dict(plain.net_g.state_dict())
    model.net_clip.load_state_dict(plain.net_clip.state_dict())
    lq = torch.rand(1, 3, 32, 32)
    for m in (plain, model):
        m.feed_data({'lq': lq})
        m.test()
    assert graphs and torch.allclose(model.output, plain.output, atol=1e-6)
    captured = len(graphs)
    model.feed_data({'lq': lq})
    model.test()
    assert len(graphs) == captured  # compiled once, reused


@pytest.mark.parametrize('section, key, value, message', [
    ('val', 'amp', 'fp32', "val.amp must be one of none, bf16, fp16; got 'fp32'"),
    ('train', 'amp', 'fp16', 'train.amp: fp16 training needs loss scaling'),
    ('val', 'compile', 'yes please', "val.compile must be true, false or a mapping of torch.compile arguments"),
])
def test_bad_speed_options_name_the_yaml_file_and_the_key(tmp_path, section, key, value, message):
    gt, lq = write_image_pairs(tmp_path / 'data', count=2)
    opt = {'name': 'bad', 'model_type': 'VLUNetModel', 'num_gpu': 0,
           'datasets': {'train': {'name': 't', 'type': 'PairedDegradationDataset', 'dataroot_gt': gt,
                                  'dataroot_lq': lq, 'io_backend': {'type': 'disk'}}},
           'network_g': dict(TINY_VLUNET), 'path': {}, 'train': {}, 'val': {}}
    opt[section][key] = value
    path = write_yaml(tmp_path / 'bad_speed.yml', opt)
    with pytest.raises(ValueError) as info:
        options.parse_options(str(tmp_path), path)
    assert str(info.value).startswith(f'{path}: ') and message in str(info.value)


@needs_bf16
def test_restore_amp_bf16_is_close_to_float32(tmp_path):
    torch.manual_seed(0)
    torch.save({'params': VLUNet(**NET).state_dict()}, tmp_path / 'net_g.pth')
    image = np.random.default_rng(0).integers(0, 256, (40, 36, 3), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'in.png'), image)
    results = {}
    for amp in ('none', 'bf16'):
        assert restore_main([str(tmp_path / 'in.png'), '-o', str(tmp_path / amp), '--weights',
                             str(tmp_path / 'net_g.pth'), '--device', 'cpu', '--amp', amp]) == 0
        results[amp] = cv2.imread(str(tmp_path / amp / 'in.png')).astype(int)
    difference = np.abs(results['none'] - results['bf16'])
    assert 0 < difference.max() and difference.mean() < 3
