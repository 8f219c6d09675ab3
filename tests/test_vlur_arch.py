"""VLURNet (VL-UR's scene restorer): PGCA on a hand-computed example, the key pooling, the FFN's gate, the text
changes the output, any input size, gradients, parameter count and MACs, and the declared model-layer interface."""
import math

import pytest
import torch
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from vlunet_basicsr.archs.restormer_blocks import GDFN
from vlunet_basicsr.archs.vlur_arch import PGCA, VLURNet, area_pool, area_pool_matrix

TINY = dict(dim=8, num_blocks=[1, 1, 1, 1], heads=[1, 2, 2, 4], text_dim=12, text_query_size=4)


def _identity_pgca(dim, text_dim, text_query_size, num_heads=1):
    """A PGCA whose q, k and v are all the input and whose output projection is the identity."""
    pgca = PGCA(dim, num_heads, text_dim, text_query_size)
    with torch.no_grad():
        pgca.qkv.weight.copy_(torch.eye(dim).repeat(3, 1)[:, :, None, None])
        pgca.qkv_dwconv.weight.zero_()[:, :, 1, 1] = 1
        pgca.project_out.weight.copy_(torch.eye(dim)[:, :, None, None])
    return pgca


@pytest.mark.parametrize('temperature', [1.0, 2.0])
@pytest.mark.parametrize('grad', [False, True])  # with a gradient, the image term takes the hand-written backward
def test_pgca_on_a_hand_computed_example(temperature, grad):
    # Two channels over 2x2 pixels: channel 0 = e1, channel 1 = e2 (orthogonal, unit norm); q = k = v = x.
    # Image term: each channel attends to itself with cosine 1 and to the other with 0, so with
    # a = softmax([t, 0])[0]: out0 = a v0 + (1-a) v1, out1 = (1-a) v0 + a v1.
    # Text term: Q_T = e1 (identity text projection, 2x2 grid = no pooling) has cosine 1 with k0 and 0 with
    # k1, so every channel receives a v0 + (1-a) v1.
    pgca = _identity_pgca(dim=2, text_dim=4, text_query_size=2)
    with torch.no_grad():
        pgca.text_query.weight.copy_(torch.eye(4))
        pgca.temperature.fill_(temperature)
    x = torch.tensor([[1., 0., 0., 0.], [0., 1., 0., 0.]]).view(1, 2, 2, 2).requires_grad_(grad)
    text = torch.tensor([[3., 0., 0., 0.]])  # the query is normalised: its length does not matter
    with torch.set_grad_enabled(grad):
        out = pgca(x, text)
    a = math.exp(temperature) / (math.exp(temperature) + 1)
    expected = torch.tensor([[2 * a, 2 * (1 - a), 0, 0], [1, 1, 0, 0]]).view(1, 2, 2, 2)
    assert torch.allclose(out.detach(), expected, atol=1e-6)
    if grad:
        out.sum().backward()
        assert pgca.temperature.grad is not None and pgca.text_query.weight.grad is not None


def test_pgca_text_term_pools_the_keys_and_splits_heads():
    # Four channels in two heads over 4x4 pixels; the text grid is 2x2, so the keys are 2x2 block means.
    torch.manual_seed(0)
    pgca = _identity_pgca(dim=4, text_dim=4, text_query_size=2, num_heads=2)
    with torch.no_grad():
        pgca.text_query.weight.copy_(torch.randn(4, 4))
        pgca.temperature.copy_(torch.tensor([0.5, 3.0]).view(2, 1, 1))
    x, text = torch.randn(1, 4, 4, 4), torch.randn(1, 4)
    with torch.no_grad():
        weights = pgca.text_attention(x, text)
        out = pgca(x, text)
    query = F.normalize(text @ pgca.text_query.weight.t(), dim=-1)[0]
    pooled = F.avg_pool2d(x, 2).flatten(2)[0]  # (4, 4): channel x pooled pixel
    expected_out = torch.empty(4, 4, 4)
    for head in range(2):
        channels = slice(2 * head, 2 * head + 2)
        cosine = F.normalize(pooled[channels], dim=-1) @ query
        expected_weights = torch.softmax(cosine * pgca.temperature[head, 0, 0], dim=0)
        assert torch.allclose(weights[0, head], expected_weights, atol=1e-6)
        v = x[0, channels]
        q = F.normalize(v.flatten(1), dim=-1)
        image_attention = torch.softmax(q @ q.t() * pgca.temperature[head, 0, 0], dim=-1)
        attention = image_attention + expected_weights[None, :]  # Eq. 6: the maps add, then multiply V
        expected_out[channels] = torch.einsum('ij,jhw->ihw', attention, v)
    assert torch.allclose(out[0], expected_out, atol=1e-5)


@pytest.mark.parametrize('size,out_size', [(7, 3), (13, 16), (32, 16), (5, 5), (1, 4)])
def test_area_pooling_equals_adaptive_average_pooling(size, out_size):
    matrix = area_pool_matrix(size, out_size)
    assert matrix.shape == (out_size, size)
    assert torch.allclose(matrix.sum(1), torch.ones(out_size))
    x = torch.randn(2, 3, size, size + 2)
    assert torch.allclose(area_pool(x, out_size), F.adaptive_avg_pool2d(x, out_size), atol=1e-6)


def test_ffn_keeps_the_shape_and_gates_the_gelu_half_by_the_other_half():
    ffn = GDFN(dim=6, ffn_expansion_factor=2.66, bias=False)
    assert ffn.project_out.in_channels == int(6 * 2.66)  # hidden width 15
    assert ffn(torch.randn(2, 6, 5, 7)).shape == (2, 6, 5, 7)

    # Hidden width 2: x1 = x (gate), x2 = -x (value), identity depthwise and output convolutions.
    ffn = GDFN(dim=2, ffn_expansion_factor=1.0, bias=False)
    with torch.no_grad():
        ffn.project_in.weight.copy_(torch.cat([torch.eye(2), -torch.eye(2)])[:, :, None, None])
        ffn.dwconv.weight.zero_()[:, :, 1, 1] = 1
        ffn.project_out.weight.copy_(torch.eye(2)[:, :, None, None])
    x = torch.linspace(-2, 2, 2 * 3 * 3).view(1, 2, 3, 3)
    gelu = 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))
    assert torch.allclose(ffn(x), gelu * -x, atol=1e-6)  # GELU(x1) * x2
    assert not torch.allclose(ffn(x), F.gelu(-x) * x, atol=1e-3)  # not the halves the other way round


def test_the_text_embedding_changes_the_output():
    torch.manual_seed(0)
    net = VLURNet(**TINY).eval()
    lq = torch.rand(1, 3, 24, 24)
    first, second = torch.randn(2, 1, 12)
    with torch.no_grad():
        a, b, a_again = net(lq, first), net(lq, second), net(lq, first)
    assert torch.equal(a, a_again)
    assert (a - b).abs().max() > 1e-4


def test_two_degradation_types_give_different_outputs_from_their_own_embeddings_in_a_batch():
    torch.manual_seed(0)
    net = VLURNet(**TINY).eval()
    lq = torch.rand(1, 3, 16, 16).expand(2, -1, -1, -1)  # the same image twice, two types
    text = torch.randn(2, 12)
    with torch.no_grad():
        out = net(lq, text)
        alone = net(lq[:1], text[1:])
    assert (out[0] - out[1]).abs().max() > 1e-4
    assert torch.allclose(out[1:], alone, atol=1e-5)  # each image is guided by its own embedding only


@pytest.mark.parametrize('size', [(37, 50), (8, 8), (5, 3), (33, 17)])
def test_any_input_size_gives_a_same_size_output(size):
    torch.manual_seed(0)
    net = VLURNet(**TINY).eval()
    lq = torch.rand(2, 3, *size)
    with torch.no_grad():
        out = net(lq, torch.randn(2, 12))
    assert out.shape == lq.shape and out.is_contiguous() and torch.isfinite(out).all()


def test_gradients_reach_every_parameter_in_both_backward_paths():
    torch.manual_seed(0)
    lq, text = torch.rand(2, 3, 24, 16), torch.randn(2, 12)
    grads = []
    for fused in (True, False):
        torch.manual_seed(1)
        net = VLURNet(**TINY, fused_backward=fused)
        net(lq, text).sub(lq).square().mean().backward()
        for name, param in net.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name
        grads.append([param.grad for param in net.parameters()])
    for fused, plain in zip(*grads):
        assert torch.allclose(fused, plain, atol=1e-6, rtol=1e-4)


def test_default_size_and_macs():
    net = build_network({'type': 'VLURNet'}).eval()
    assert sum(p.numel() for p in net.parameters()) == 5_166_844  # OneRestore, the reference: 5.98M
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(torch.rand(1, 3, 256, 256), torch.rand(1, 512))
    assert round(counter.get_total_flops() / 2e9, 2) == 9.61  # GMACs of convolutions and matrix products


def test_declared_interface_and_clear_errors():
    assert VLURNet.guidance_input == 'text_features' and VLURNet.multi_stage_output is False
    net = VLURNet(**TINY)
    with pytest.raises(ValueError, match=r'text_embedding of shape \(1, 12\), got \(1, 512\)'):
        net(torch.rand(1, 3, 16, 16), torch.rand(1, 512))
    with pytest.raises(ValueError, match=r'got None'):
        net(torch.rand(1, 3, 16, 16), None)
    with pytest.raises(ValueError, match='do not split into 3 heads'):
        VLURNet(dim=8, heads=[3, 2, 2, 4])
    with pytest.raises(ValueError, match='has 3 entries; expected a list of 4'):
        VLURNet(num_blocks=[1, 1, 1])
