"""AdaIR: the published vectors through the converter (the default network, and its frequency modules on their own,
fre3 with a non-empty frequency window as on GoPro), the converter's detection and refusals, other widths."""
import pytest
import torch
from torch.nn import functional as F

import vlunet_basicsr  # noqa: F401
from conftest import TINY_ADAIR, lightning_checkpoint, published_state_dict, reference_file
from vlunet_basicsr.archs.adair_arch import AdaIR
from vlunet_basicsr.tools.convert import convert_loaded_checkpoint
from vlunet_basicsr.tools.convert.adair_checkpoint import AdaIRLightningCheckpoint
from vlunet_basicsr.tools.convert.promptir_checkpoint import PromptIRLightningCheckpoint
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

TINY = {key: value for key, value in TINY_ADAIR.items() if key != 'type'}  # AdaIR's keyword arguments


@pytest.fixture(scope='module')
def published():
    """The published default network, converted from its Lightning checkpoint and loaded strictly."""
    conversion = AdaIRLightningCheckpoint.convert(lightning_checkpoint(published_state_dict('adair_official_keys.tsv')),
                                                  'adair5d.ckpt', {})
    (part,) = conversion.parts
    arch = dict(part.arch)
    assert arch.pop('type') == 'AdaIR'
    net = AdaIR(**arch).eval()
    net.load_state_dict(part.state_dict, strict=True)
    return net, part


def test_the_default_vector_is_reproduced_through_the_converter(published):
    net, part = published
    ref = torch.load(reference_file('adair_official_default.pt'), weights_only=True)
    assert part.arch == {'type': 'AdaIR', **{k: v for k, v in ref['config'].items() if k != 'decoder'}}
    assert len(part.state_dict) == ref['num_state_keys'] == 587
    assert sum(p.numel() for p in net.parameters()) == ref['num_params'] == 28_784_824
    with torch.no_grad():
        assert (net(ref['input']) - ref['output']).abs().max().item() < 1e-5


def test_the_frequency_modules_reproduce_their_vectors_fre3_with_a_non_empty_window(published):
    net, _ = published
    ref = torch.load(reference_file('adair_official_modules.pt'), weights_only=True)
    with torch.no_grad():
        for entry in ref['fre_small']:
            output = getattr(net, entry['module'])(entry['image'], entry['features'])
            assert (output - entry['output']).abs().max().item() < 1e-5, entry['module']
        masked = ref['fre3_mask']
        torch.manual_seed(7)
        image, features = torch.rand(1, 3, 768, 768), torch.rand(1, 96, 384, 384)
        assert image.double().sum().item() == pytest.approx(masked['image_sum'], rel=1e-6)
        assert features.double().sum().item() == pytest.approx(masked['features_sum'], rel=1e-6)
        resized = F.interpolate(image, (384, 384), mode='bilinear')
        threshold, sizes = net.fre3.mask_half_sizes(net.fre3.conv1(resized))
        assert sizes == list(masked['mask_half_sizes']) == [(1, 1)]
        assert (threshold - masked['threshold']).abs().max().item() < 1e-5
        high, low = net.fre3.fft(resized)
        assert (high[:, :, ::16, ::16] - masked['fft_high_sub16']).abs().max().item() < 1e-5
        assert (low[:, :, ::16, ::16] - masked['fft_low_sub16']).abs().max().item() < 1e-5
        output = net.fre3(image, features)
        assert (output[:, :, ::16, ::16] - masked['output_sub16']).abs().max().item() < 1e-5
        assert output.double().sum().item() == pytest.approx(masked['output_sum'], rel=1e-6)
        assert output.double().abs().sum().item() == pytest.approx(masked['output_abs_sum'], rel=1e-6)


def test_an_empty_window_gives_the_fft_round_trip_up_to_round_off():
    torch.manual_seed(0)
    module = AdaIR(**TINY).fre3.eval()
    x = torch.rand(2, 3, 40, 24)
    with torch.no_grad():
        high, low = module.fft(x)
        spectrum = torch.fft.fft2(module.conv1(x), norm='forward')
        assert torch.equal(low, torch.zeros_like(low))
        assert (high - torch.fft.ifft2(spectrum, norm='forward').abs()).abs().max() < 1e-6


def test_the_unused_published_tensors_load_and_do_not_train():
    net = AdaIR(**TINY)
    for i in (1, 2, 3):
        fre = getattr(net, f'fre{i}')
        assert not fre.conv.weight.requires_grad and not fre.score_gen.bias.requires_grad
        assert fre.conv1.weight.requires_grad


def test_the_converter_tells_adair_from_promptir_and_reads_other_widths():
    torch.manual_seed(0)
    state = AdaIR(**TINY, bias=True, LayerNorm_type='BiasFree', ffn_expansion_factor=2.0).state_dict()
    checkpoint = lightning_checkpoint(state)
    assert AdaIRLightningCheckpoint.detect(checkpoint) and not PromptIRLightningCheckpoint.detect(checkpoint)
    assert not AdaIRLightningCheckpoint.detect(torch.load(reference_file('vlunet_official_small.pt')))
    options = AdaIRLightningCheckpoint.options_from_state(AdaIRLightningCheckpoint.network_state(checkpoint), 'x')
    assert options == {'inp_channels': 3, 'out_channels': 3, **TINY, 'bias': True, 'LayerNorm_type': 'BiasFree',
                       'ffn_expansion_factor': 2.0}


@pytest.mark.parametrize('change, message', [
    (lambda s: s.pop('fre2.conv1.weight'), r'missing fre2\.conv1\.weight'),
    (lambda s: s.update({'fre2.extra': torch.zeros(1)}), r'unexpected fre2\.extra'),
    (lambda s: s.update({'fre1.para1': torch.zeros(3, 1, 1)}), r'misshapen fre1\.para1 \(3, 1, 1\)'),
    (lambda s: s.pop('output.weight'),
     r"adair5d.ckpt: its network weights lack 'output.weight': not AdaIR's state dict"),
], ids=['missing', 'unexpected', 'misshapen', 'no-output'])
def test_the_converter_refuses_a_faulty_file_by_name_and_writes_nothing(tmp_path, change, message):
    state = AdaIR(**TINY).state_dict()
    change(state)
    with pytest.raises(CheckpointFormatError, match=message):
        convert_loaded_checkpoint(lightning_checkpoint(state), str(tmp_path / 'out'), 'adair5d.ckpt')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('options, message', [
    ({'dim': 12}, r'AdaIR: dim: 12 is not an integer >= 8 and a multiple of 8'),
    ({'heads': [1, 2, 3, 8]}, r'heads: \[1, 2, 3, 8\] do not divide the 64 channels of level 3 at dim 16'),
    ({'num_blocks': [1, 1, 1]}, r'num_blocks: \[1, 1, 1\] '),
])
def test_bad_constructor_values_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        AdaIR(**{**TINY, **options})
