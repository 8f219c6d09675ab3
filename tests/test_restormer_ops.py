"""The hand-written backward passes of channel attention and the GDFN gate: exact gradients (gradcheck in
float64), equal to autograd's, in both memory layouts, with the gradient laid out like the packed input."""
import pytest
import torch

from vlunet_basicsr.archs.restormer_ops import channel_attention, gated_gelu

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
