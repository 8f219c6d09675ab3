"""VLUNet: faithful to the release (shared test vector, key layout, parameter count, FLOPs), any input size,
the w/o-CLIP path, gradient flow, interpretability trace, and use inside BasicSR's plain SRModel."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vlunet_basicsr  # noqa: F401
from basicsr.models import build_model
from conftest import reference_file, step_then_test
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.tools.convert.vlunet_checkpoint import infer_network_options, lightning_network_state
from vlunet_basicsr.tools.reference.vlunet_release_port import VLUNetReleasePort
from vlunet_basicsr.utils.padding import crop_to, pad_to_multiple

TINY = dict(dim=16, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, de_dim=5)


def _reference():
    return torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)


@pytest.mark.parametrize('arch', [VLUNet, VLUNetReleasePort], ids=['VLUNet', 'VLUNetReleasePort'])
@pytest.mark.parametrize('grad', [False, True])  # with a gradient, VLUNet takes its hand-written backward path
def test_release_test_vector_is_reproduced(arch, grad):
    ref = _reference()
    state = lightning_network_state(ref)
    net = arch(**ref['config']).eval()
    net.load_state_dict(state, strict=True)
    assert infer_network_options(state) == {**net_defaults(), **ref['config'], 'num_blocks': [1, 1, 1, 1]}
    with torch.set_grad_enabled(grad):
        output = net(ref['input'], ref['degradation_vector'])
    assert (output - ref['output']).abs().max().item() < 1e-5


def assert_fast_path_matches_release(options, device='cpu'):
    """A tiny VLUNet with ``options`` against VLUNetReleasePort on shared weights: outputs and the gradients of
    one loss agree to 1e-5 (relative for gradients above 1). Returns VLUNet's output."""
    torch.manual_seed(0)
    release = VLUNetReleasePort(**TINY).to(device)
    fast = VLUNet(**TINY, **options).to(device)
    fast.load_state_dict(release.state_dict())
    lq, vector = torch.rand(2, 3, 40, 32, device=device), torch.randn(2, 512, device=device)
    outputs, grads = [], []
    for net in (release, fast):
        out = net(lq, vector)
        out.sub(lq).square().mean().backward()
        outputs.append(out.detach())
        grads.append([p.grad for p in net.parameters() if p.requires_grad])
    assert (outputs[0] - outputs[1]).abs().max().item() < 1e-5
    for a, b in zip(*grads):
        assert (a - b).abs().max().item() < 1e-5 * max(1.0, a.abs().max().item())
    return outputs[1]


@pytest.mark.parametrize('options', [{}, {'channels_last': False}, {'fused_backward': False}])
def test_fast_paths_match_the_release_arithmetic_in_outputs_and_gradients(options):
    assert assert_fast_path_matches_release(options).is_contiguous()  # channels_last stays inside the network


def test_release_port_needs_a_vector():
    with pytest.raises(ValueError, match='needs a degradation vector'):
        VLUNetReleasePort(**TINY)(torch.rand(1, 3, 16, 16))


def test_release_ports_are_reference_code_outside_the_users_registry():
    from basicsr.utils.registry import ARCH_REGISTRY
    from vlunet_basicsr.tools.reference import RELEASE_PORTS
    assert set(RELEASE_PORTS) == {'VLUNetReleasePort', 'DGUNetReleasePort', 'DGUNetPlusReleasePort'}
    assert not set(RELEASE_PORTS) & set(ARCH_REGISTRY.keys())


def net_defaults():
    return {'inp_channels': 3, 'out_channels': 3, 'degradation_dim': 512, 'key_size': 96}


def test_default_network_matches_the_release_key_layout_and_size():
    net = VLUNet()
    lines = open(reference_file('vlunet_official_keys_de7_dim48.tsv')).read().splitlines()[1:]
    expected = [(key[len('net.'):], shape) for key, shape in (line.split('\t') for line in lines)]
    actual = [(key, str(tuple(value.shape))) for key, value in net.state_dict().items()]
    assert actual == expected
    assert sum(p.numel() for p in net.parameters()) == 35_353_028
    assert sum(p.numel() for p in VLUNet(de_dim=5).parameters()) == 34_364_852


def test_default_network_flops_match_the_release():
    with torch.device('meta'):  # shapes only: the count needs no arithmetic
        net = VLUNet().eval()
        image, vector = torch.empty(1, 3, 256, 256), torch.empty(1, 512)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image, vector)
    assert round(counter.get_total_flops() / 2e9, 1) == 186.2  # GMACs, as the reference README states


def test_any_input_size_gives_same_size_output():
    torch.manual_seed(0)
    net = VLUNet(**TINY).eval()
    with torch.no_grad():
        for h, w in [(37, 50), (8, 8), (5, 3), (64, 48)]:
            lq = torch.rand(2, 3, h, w)
            assert net(lq, torch.rand(2, 512)).shape == lq.shape


def test_padding_rule():
    x = torch.rand(1, 3, 40, 32)
    assert pad_to_multiple(x)[0] is x  # multiples of 8 are left alone
    x = torch.rand(1, 3, 37, 50)
    padded, size = pad_to_multiple(x)
    assert padded.shape[-2:] == (40, 56) and torch.equal(crop_to(padded, size), x)
    assert torch.equal(padded[..., 37, :50], x[..., 35, :])  # reflection about the last row
    tiny, _ = pad_to_multiple(torch.rand(1, 1, 3, 2))
    assert tiny.shape[-2:] == (8, 8)  # too small to reflect: edges are replicated


def test_without_vector_is_a_uniform_key_mixture():
    torch.manual_seed(0)
    net = VLUNet(**TINY).eval()
    lq = torch.rand(2, 3, 32, 24)
    with torch.no_grad():
        without = net(lq)
        for module in net.modules():
            if hasattr(module, 'linear') and hasattr(module, 'prompt_param'):
                module.linear.weight.zero_()
                module.linear.bias.zero_()
        uniform = net(lq, torch.rand(2, 512))  # zero logits: softmax is uniform whatever the vector
    assert torch.allclose(without, uniform, atol=1e-6)


def test_gradients_reach_every_parameter_the_release_trains():
    torch.manual_seed(0)
    net = VLUNet(**TINY)
    lq = torch.rand(2, 3, 32, 32)
    net(lq, torch.randn(2, 512)).sub(lq).abs().mean().backward()
    for name, param in net.named_parameters():
        if name.startswith('down1_2_i.'):
            assert not param.requires_grad and param.grad is None  # unused by the release's wiring
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_trace_reports_mixture_weights_and_residuals_per_stage():
    torch.manual_seed(0)
    net = VLUNet(**TINY).eval()
    lq, vector = torch.rand(2, 3, 37, 50), torch.randn(2, 512)
    with torch.no_grad():
        output, trace = net.forward_with_trace(lq, vector)
        assert torch.equal(output, net(lq, vector))
    assert [record['stage'] for record in trace] == list(VLUNet.stage_names())
    # padded size 40x56; channels per stage: 16, 32, 64, 128, 64, 32, 32, 32
    shapes = [(16, 40, 56), (32, 20, 28), (64, 10, 14), (128, 5, 7), (64, 10, 14), (32, 20, 28), (32, 40, 56),
              (32, 40, 56)]
    for record, shape in zip(trace, shapes):
        assert record['mixture_weights'].shape == (2, 5)
        assert torch.allclose(record['mixture_weights'].sum(1), torch.ones(2))
        assert record['residual'].shape == (2, *shape)


def test_bad_vector_shape_and_dim_are_clear_errors():
    net = VLUNet(**TINY)
    with pytest.raises(ValueError, match=r'degradation_vector must have shape \(1, 512\)'):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 256))
    with pytest.raises(ValueError, match='VLUNet: dim: 8 is out of range; expected an integer >= 10'):
        VLUNet(dim=8)


def test_vlunet_inside_basicsr_srmodel():
    opt = {
        'model_type': 'SRModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'scale': 1,
        'network_g': {'type': 'VLUNet', **TINY},
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'train': {'optim_g': {'type': 'AdamW', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [9], 'gamma': 0.5},
                  'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}},
    }
    model = build_model(opt)
    step_then_test(model)


def test_compile_regions_traces_each_block_and_gdm_with_the_same_outputs():
    import torch._dynamo
    from torch._dynamo.testing import CompileCounter
    torch.manual_seed(0)
    net = VLUNet(**TINY).eval()
    lq, vector = torch.rand(1, 3, 32, 32), torch.randn(1, 512)
    with torch.no_grad():
        expected = net(lq, vector)
    torch._dynamo.reset()
    counter = CompileCounter()  # a backend that counts graphs and runs them eagerly
    assert net.compile_regions(backend=counter) is net
    with torch.no_grad():
        out = net(lq, vector)
    torch._dynamo.reset()
    # One graph per region kind and shape: blocks and D-GDMs of 16, 32, 64 and 128 channels, and of 32 channels
    # at full size (decoder level 1 and refinement); the decoder's levels 2-3 reuse the encoder's graphs.
    assert counter.frame_count == 5 + 5
    assert torch.allclose(out, expected, atol=1e-6)
