"""PromptIR: the published key layout, size and MACs of the default network, prompt widths that follow dim, the
declarations for the model layer, option errors, gradients, and BasicSR's plain SRModel. The published test vector
itself is reproduced through the converter in tests/test_promptir_checkpoint.py."""
import csv
import inspect

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.models import build_model
from conftest import reference_file, step_then_test
from vlunet_basicsr.archs.promptir_arch import PromptIR, prompt_channels
from vlunet_basicsr.models.network_inputs import NetworkInputs

TINY = {'dim': 12, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'prompt_size': 16}
#: Keys of the published network that no forward uses (kept so that its checkpoints load strictly).
UNUSED = ('chnl_reduce1.', 'chnl_reduce2.', 'chnl_reduce3.', 'reduce_noise_channel_1.', 'reduce_noise_channel_2.',
          'reduce_noise_channel_3.')


def test_default_network_has_the_published_keys_shapes_order_and_parameter_count():
    with open(reference_file('promptir_official_keys.tsv')) as f:
        published = [(row['key'], row['shape']) for row in csv.DictReader(f, delimiter='\t')]
    with torch.device('meta'):
        net = PromptIR()
    assert [(key, 'x'.join(map(str, value.shape))) for key, value in net.state_dict().items()] == published
    assert len(published) == 548
    assert sum(p.numel() for p in net.parameters()) == 35_592_263
    assert net.prompt1.prompt_param.shape == (1, 5, 64, 64, 64)
    assert net.prompt3.prompt_param.shape == (1, 5, 320, 16, 16)


def test_default_network_macs_at_256_match_the_published():
    with torch.device('meta'):
        net = PromptIR().eval()
        image = torch.empty(1, 3, 256, 256)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image)
    assert round(counter.get_total_flops() / 2e9, 1) == 172.7


def test_prompt_widths_follow_dim_and_equal_the_published_constants_at_48():
    assert prompt_channels(48) == (64, 128, 320)
    assert prompt_channels(12) == (16, 32, 80)
    net = PromptIR(**TINY)
    assert [getattr(net, f'prompt{i}').prompt_param.shape for i in (1, 2, 3)] == [
        (1, 5, 16, 16, 16), (1, 5, 32, 8, 8), (1, 5, 80, 4, 4)]
    assert net.noise_level3.norm1.body.weight.shape == (12 * 8 + 80,)
    assert PromptIR(dim=24, prompt_len=3).prompt2.linear_layer.weight.shape == (3, 24 * 4)


def test_declarations_for_the_model_layer():
    inputs = NetworkInputs.of(PromptIR)
    assert inputs.guidance_input is None and inputs.multi_stage_output is False
    assert PromptIR.size_multiple == 8 and PromptIR(**TINY).size_multiple == 8


def test_sides_not_multiple_of_8_are_refused_with_the_rule_named():
    net = PromptIR(**TINY).eval()
    with torch.no_grad():
        assert net(torch.rand(2, 3, 24, 40)).shape == (2, 3, 24, 40)
        with pytest.raises(ValueError, match=r'multiples of 8, got \(24, 41\)'):
            net(torch.rand(1, 3, 24, 41))


@pytest.mark.parametrize('options, message', [
    ({'dim': 16}, 'PromptIR: dim: 16 is not an integer >= 3 and a multiple of 3'),
    ({'dim': 12, 'prompt_size': 18}, 'prompt_size: 18 is not an integer >= 4 and a multiple of 4'),
    ({'dim': 12, 'heads': [1, 2, 4]}, r'heads: \[1, 2, 4\] has 3 entries; expected a list of 4 integers'),
    ({'dim': 15, 'heads': [1, 2, 8, 8]}, r'heads: \[1, 2, 8, 8\] do not divide the channels of level 3'),
])
def test_bad_options_are_refused_with_the_option_named(options, message):
    with pytest.raises(ValueError, match=message):
        PromptIR(**options)


def test_the_constructor_keywords_are_documented_and_their_defaults_pass_the_constructors_check():
    parameters = inspect.signature(PromptIR).parameters
    for name in parameters:
        assert f'{name} (' in PromptIR.__doc__, name
    defaults = {name: parameter.default for name, parameter in parameters.items()}
    assert PromptIR.argument_problems(defaults) == []
    assert PromptIR.argument_problems({**defaults, 'dim': 50}) == [
        'dim: 50 is not an integer >= 3 and a multiple of 3']


@pytest.mark.parametrize('channels_last', [True, False])
def test_gradients_reach_every_used_parameter_and_the_unused_ones_are_frozen(channels_last):
    torch.manual_seed(0)
    net = PromptIR(**TINY, channels_last=channels_last)
    lq = torch.rand(2, 3, 16, 24)
    net(lq).sub(lq).abs().mean().backward()
    for name, param in net.named_parameters():
        if name.startswith(UNUSED):
            assert not param.requires_grad and param.grad is None, name
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_channels_last_and_nchw_agree():
    torch.manual_seed(0)
    net = PromptIR(**TINY).eval()
    lq = torch.rand(2, 3, 32, 16)
    with torch.no_grad():
        fast = net(lq)
        net.channels_last = False
        plain = net(lq)
    assert fast.is_contiguous() and (fast - plain).abs().max() < 1e-5


def test_promptir_inside_basicsr_srmodel():
    torch.manual_seed(0)
    model = build_model({'model_type': 'SRModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'rank': 0,
                         'world_size': 1, 'name': 'unit', 'network_g': {'type': 'PromptIR', **TINY},
                         'path': {'pretrain_network_g': None}, 'val': {},
                         'train': {'optim_g': {'type': 'AdamW', 'lr': 2e-4}, 'pixel_opt': {'type': 'L1Loss'},
                                   'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}}})
    step_then_test(model, size=(16, 24))
    assert build_network({'type': 'PromptIR', **TINY}).guidance_input is None
