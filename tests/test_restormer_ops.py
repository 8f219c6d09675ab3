"""The hand-written backward passes of channel attention and the GDFN gate: exact gradients (gradcheck in
float64), equal to autograd's, in both memory layouts, with the gradient laid out like the packed input."""
import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from conftest import TINY_ADAIR, TINY_PROMPTIR, TINY_VLUNET, TINY_VLUR
from vlunet_basicsr.archs import restormer_ops
from vlunet_basicsr.archs.restormer_ops import channel_attention, gated_gelu, gram, gram_chunks, head_matmul

CL = torch.channels_last


def _layout(x, channels_last):
    return x.contiguous(memory_format=CL) if channels_last else x


@pytest.mark.parametrize('channels_last', [False, True])
@pytest.mark.parametrize('heads', [1, 2])
@pytest.mark.parametrize('cross', [False, True])
def test_channel_attention_backward(channels_last, heads, cross):
    torch.manual_seed(0)
    c = 4
    packed = _layout(torch.randn(2, (2 if cross else 3) * c, 5, 6, dtype=torch.float64), channels_last)
    key = _layout(torch.randn(2, c, 5, 6, dtype=torch.float64), channels_last) if cross else None
    temperature = torch.rand(heads, 1, 1, dtype=torch.float64) + 0.5
    inputs = [t.requires_grad_() for t in (packed, temperature, key) if t is not None]

    def fused(p, t, k=None):
        return channel_attention(p, heads, t, key=k)

    assert torch.autograd.gradcheck(fused, inputs)
    out = fused(*inputs)
    assert out.is_contiguous(memory_format=CL if channels_last else torch.contiguous_format)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, inputs, grad)
    plain = torch.autograd.grad(channel_attention(packed, heads, temperature, key=key, fused_backward=False),
                                inputs, grad)
    for a, b in zip(ours, plain):
        assert (a - b).abs().max().item() < 1e-12
    assert ours[0].stride() == packed.stride()  # written straight into one buffer laid out like the input


def test_channel_attention_forward_is_the_plain_forward():
    torch.manual_seed(0)
    packed, temperature = torch.randn(2, 12, 8, 8), torch.rand(2, 1, 1)
    with torch.no_grad():
        expected = channel_attention(packed, 2, temperature)
    packed.requires_grad_()
    assert torch.equal(channel_attention(packed, 2, temperature), expected)


@pytest.mark.parametrize('channels_last', [False, True])
def test_chunked_gram_equals_one_product(channels_last):
    torch.manual_seed(0)
    packed = _layout(torch.randn(2, 12, 16, 8, dtype=torch.float64), channels_last)
    q, k = (x.flatten(2).unflatten(1, (2, 2)).transpose(-2, -1) for x in packed.chunk(3, dim=1)[:2])
    one = gram(q, k)
    assert one.shape == (2, 2, 2, 2)
    for chunks in (2, 8, 128):
        assert (gram(q, k, chunks) - one).abs().max().item() < 1e-12


def test_gram_chunks_only_on_cuda_for_batched_products_of_many_pixels(monkeypatch):
    class FakeCuda:  # gram_chunks reads the shape and the device only
        is_cuda = True

        def __init__(self, shape):
            self.shape = shape

    monkeypatch.setattr(restormer_ops, 'GRAM_CHUNK', 4096)
    assert gram_chunks(FakeCuda((1, 2, 512 * 512, 48))) == 64
    assert gram_chunks(FakeCuda((2, 1, 1000 * 1000, 48))) == 64  # 10^6 = 2^6 * 15625
    assert gram_chunks(FakeCuda((1, 1, 1024 * 1024, 48))) == 1  # a single product is fast already
    assert gram_chunks(FakeCuda((2, 4, 63 * 63, 48))) == 1
    assert gram_chunks(torch.empty(2, 2, 512 * 512, 1)) == 1  # CPU


def test_gram_chunks_are_used_for_inference_only(monkeypatch):
    from test_vlunet_arch import TINY
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    asked = []

    def four_chunks(qt):  # stands in for CUDA's choice on this CPU
        asked.append(qt.shape)
        return 4 if qt.shape[2] % 4 == 0 else 1

    torch.manual_seed(0)
    net = VLUNet(**TINY).eval()
    lq, vector = torch.rand(2, 3, 32, 32), torch.randn(2, 512)
    with torch.no_grad():
        expected = net(lq, vector)
    monkeypatch.setattr(restormer_ops, 'gram_chunks', four_chunks)
    net(lq, vector).mean().backward()
    assert not asked  # training: one product
    with torch.no_grad():
        chunked = net(lq, vector)
    assert asked and (chunked - expected).abs().max().item() < 1e-5


class _FullSizeCopies(TorchDispatchMode):
    """Counts operations that copy a tensor of at least ``numel`` elements."""

    def __init__(self, numel):
        super().__init__()
        self.numel, self.copies = numel, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        if name in ('clone', 'copy_', '_to_copy', 'contiguous', 'cat') and out.numel() >= self.numel:
            self.copies.append(name)
        return out


@pytest.mark.parametrize('cross', [False, True])
def test_channel_attention_copies_no_features_of_channels_last_heads(cross):
    # A product over (B, heads) token views of channels_last features would copy both operands first.
    torch.manual_seed(0)
    packed = torch.randn(2, (2 if cross else 3) * 8, 8, 8).contiguous(memory_format=CL).requires_grad_()
    key = torch.randn(2, 8, 8, 8).contiguous(memory_format=CL).requires_grad_() if cross else None
    temperature = torch.ones(2, 1, 1, requires_grad=True)
    with _FullSizeCopies(2 * 8 * 8 * 8) as inference:
        with torch.no_grad():
            channel_attention(packed, 2, temperature, key=key)
    with _FullSizeCopies(2 * 8 * 8 * 8) as training:
        out = channel_attention(packed, 2, temperature, key=key)
        out.backward(torch.randn_like(out))
    assert inference.copies == [] and training.copies == []


def test_head_matmul_writes_each_head_into_a_channels_last_output():
    torch.manual_seed(0)
    a = restormer_ops._tokens(torch.randn(2, 6, 4, 5).contiguous(memory_format=CL), 3)
    b = torch.randn(2, 3, 2, 2)
    out = torch.empty(2, 6, 4, 5).contiguous(memory_format=CL)
    head_matmul(a, b, out=restormer_ops._tokens(out, 3))
    assert torch.allclose(restormer_ops._tokens(out, 3), a @ b, atol=1e-6)
    assert torch.allclose(head_matmul(a.transpose(-2, -1), a), a.transpose(-2, -1) @ a, atol=1e-6)


def test_bf16_autocast_inference_attends_in_bf16_like_autograd():
    # Without a gradient the output is written head by head with out=, which autocast does not cast.
    torch.manual_seed(0)
    packed = torch.randn(2, 24, 8, 8).contiguous(memory_format=CL)
    temperature = torch.rand(2, 1, 1) + 0.5
    with torch.autocast('cpu', dtype=torch.bfloat16):
        with torch.no_grad():
            written = channel_attention(packed.bfloat16(), 2, temperature)
        plain = channel_attention(packed.bfloat16(), 2, temperature.requires_grad_(), fused_backward=False)
    assert written.dtype == plain.dtype == torch.bfloat16 and written.is_contiguous(memory_format=CL)
    assert (written.float() - plain.float()).abs().max().item() < 1e-2


def test_zero_features_get_no_gradient_through_their_norm():
    packed = torch.randn(1, 6, 4, 4, dtype=torch.float64)
    packed[:, 0] = 0  # a q channel that is all zero: its norm is clamped, as F.normalize does
    packed.requires_grad_()
    temperature = torch.ones(1, 1, 1, dtype=torch.float64)
    grad = torch.randn(1, 2, 4, 4, dtype=torch.float64)
    ours = torch.autograd.grad(channel_attention(packed, 1, temperature), packed, grad)[0]
    plain = torch.autograd.grad(channel_attention(packed, 1, temperature, fused_backward=False), packed, grad)[0]
    assert torch.allclose(ours, plain, atol=1e-12)


@pytest.mark.parametrize('channels_last', [False, True])
def test_gated_gelu_backward(channels_last):
    torch.manual_seed(0)
    packed = _layout(torch.randn(2, 6, 5, 4, dtype=torch.float64), channels_last).requires_grad_()
    assert torch.autograd.gradcheck(gated_gelu, [packed])
    out = gated_gelu(packed)
    grad = torch.randn_like(out)
    ours = torch.autograd.grad(out, packed, grad)[0]
    plain = torch.autograd.grad(gated_gelu(packed, fused_backward=False), packed, grad)[0]
    assert torch.allclose(ours, plain, atol=1e-12) and ours.stride() == packed.stride()


@pytest.mark.parametrize('bias', [False, True])
def test_gdfn_on_cpu_channels_last_computes_gate_and_value_apart_with_the_same_numbers(bias, monkeypatch):
    from vlunet_basicsr.archs import restormer_blocks
    torch.manual_seed(0)
    gdfn = restormer_blocks.GDFN(8, 2.66, bias).double()
    x = torch.randn(2, 8, 6, 5, dtype=torch.float64)
    results = {}
    for layout in ('nchw', 'channels_last'):
        inp = _layout(x, layout == 'channels_last').detach().requires_grad_()
        gdfn.zero_grad()
        out = gdfn(inp)
        out.square().sum().backward()
        results[layout] = [out.detach(), inp.grad] + [p.grad.clone() for p in gdfn.parameters()]
    for a, b in zip(*results.values()):
        assert (a - b).abs().max().item() < 1e-12
    monkeypatch.setattr(restormer_blocks, 'gated_gelu', None)  # the packed path is not taken for channels_last
    assert gdfn(_layout(x, True)).shape == x.shape


@pytest.mark.parametrize('network', [TINY_VLUNET, TINY_PROMPTIR, TINY_VLUR, TINY_ADAIR], ids=lambda net: net['type'])
def test_an_archs_fused_backward_argument_reaches_every_attention_and_gate(network):
    from basicsr.archs import build_network
    for fused in (False, True):
        net = build_network({**network, 'fused_backward': fused})
        switches = [module.fused_backward for module in net.modules() if hasattr(module, 'fused_backward')]
        assert len(switches) > 4 and set(switches) == {fused}
