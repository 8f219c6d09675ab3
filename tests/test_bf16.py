"""The bf16 policy (`vlunet_basicsr.utils.precision.precision_scope`): weights lowered once per call with float32
masters, the hand-written attention and gate paths in bf16, agreement with float32, and float32 with one
warning where the device has no bf16 arithmetic."""
import warnings

import cv2
import numpy as np
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from basicsr.models import build_model
from conftest import restore_main
from test_precision import _opt
from vlunet_basicsr.archs import restormer_ops
from vlunet_basicsr.archs.dgunet_arch import DGUNet, DGUNetPlus
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.archs.vlur_arch import VLURNet
from vlunet_basicsr.utils import precision

from test_dgunet_arch import TINY as DGUNET_KWARGS
from test_precision import NET as VLUNET_KWARGS
from test_vlur_arch import TINY as VLUR_KWARGS

needs_bf16 = pytest.mark.skipif(not precision.bf16_supported('cpu'),
                                reason='this CPU has no native bf16 arithmetic (avx512_bf16 or AMX)')

#: (network, its guidance input or None). Random weights.
NETWORKS = {
    'VLUNet': (lambda: VLUNet(**VLUNET_KWARGS), lambda b: torch.randn(b, VLUNET_KWARGS['degradation_dim'])),
    'DGUNet': (lambda: DGUNet(**DGUNET_KWARGS), None),
    'DGUNetPlus': (lambda: DGUNetPlus(**DGUNET_KWARGS), None),
    'VLURNet': (lambda: VLURNet(**VLUR_KWARGS), lambda b: torch.randn(b, VLUR_KWARGS['text_dim'])),
}


def _run(net, lq, guidance):
    return net(lq) if guidance is None else net(lq, guidance)


class FusedCalls:
    """Counts the calls of the hand-written attention and gate functions (``autograd.Function.apply``)."""

    def __init__(self, monkeypatch):
        self.count = 0
        for function in (restormer_ops._ChannelAttention, restormer_ops._GatedGELU):
            apply = function.apply
            monkeypatch.setattr(function, 'apply', self._counting(apply))

    def _counting(self, apply):
        def counted(*args):
            self.count += 1
            return apply(*args)
        return counted


@needs_bf16
@pytest.mark.parametrize('arch', sorted(NETWORKS))
def test_bf16_restores_within_a_stated_bound_of_float32(arch):
    """Random tiny networks on a random image: bf16 within 0.02 (max) and 0.003 (mean) of float32, in [0, 1]
    units (measured here: max 0.0019-0.0050, mean 0.0004-0.0010)."""
    build, guidance_of = NETWORKS[arch]
    torch.manual_seed(0)
    net = build().eval()
    lq = torch.rand(1, 3, 32, 40)
    guidance = guidance_of(1) if guidance_of else None
    with torch.no_grad():
        reference = _run(net, lq, guidance)
        with precision.precision_scope('cpu', torch.bfloat16, net):
            lowered = _run(net, lq, guidance)
    difference = (lowered.float() - reference).abs()
    assert 0 < difference.max() < 0.02 and difference.mean() < 0.003
    assert all(p.dtype == torch.float32 for p in net.parameters())  # the masters are back


@needs_bf16
@pytest.mark.parametrize('arch', sorted(NETWORKS))
def test_bf16_training_step_runs_in_bf16_and_updates_float32_masters(arch, monkeypatch):
    build, guidance_of = NETWORKS[arch]
    torch.manual_seed(0)
    net = build().train()
    optimizer = torch.optim.AdamW(net.parameters(), lr=1e-3)
    before = {name: p.detach().clone() for name, p in net.named_parameters()}
    weight_dtypes = set()
    for module in net.modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(lambda m, _: weight_dtypes.add(m.weight.dtype))
    fused = FusedCalls(monkeypatch)
    lq = torch.rand(2, 3, 32, 32).contiguous(memory_format=torch.channels_last)
    gt = torch.rand(2, 3, 32, 32)
    with precision.precision_scope('cpu', torch.bfloat16, net):
        loss = (_run(net, lq, guidance_of(2) if guidance_of else None).float() - gt).abs().mean()
    loss.backward()
    optimizer.step()
    assert weight_dtypes == {torch.bfloat16}  # each convolution met bf16 weights, not a cast per call
    if arch in ('VLUNet', 'VLURNet'):  # Restormer blocks: the hand-written paths ran in bf16
        assert fused.count > 0
    params = dict(net.named_parameters())
    assert all(p.dtype == torch.float32 and p.grad.dtype == torch.float32
               for p in params.values() if p.grad is not None)
    assert all(value.dtype == torch.float32 for state in optimizer.state.values() for value in state.values()
               if torch.is_tensor(value) and value.is_floating_point())
    changed = [name for name, p in params.items() if not torch.equal(p, before[name])]
    assert len(changed) > 0.9 * len(params)


@needs_bf16
def test_bf16_attention_keeps_norms_and_softmax_in_float32_and_its_backward_matches_autograd():
    """bf16 features: the per-channel norms, the cosine matrix and the softmax come out in float32; the
    hand-written backward in bf16 is as close to float64 autograd as bf16 autograd of the same forward is
    (measured here: 0.3-0.4% of the largest value in both)."""
    torch.manual_seed(0)
    packed = torch.randn(2, 48, 8, 8).contiguous(memory_format=torch.channels_last)
    temperature = torch.rand(2, 1, 1) + 0.5
    qt, kt, _, _ = restormer_ops._split(packed.bfloat16(), None, 2)
    assert {t.dtype for t in restormer_ops._attention_weights(qt, kt, temperature.bfloat16())} == {torch.float32}
    grad_out = torch.randn(2, 16, 8, 8)
    grads = {}
    for name, dtype, fused in (('exact', torch.float64, False), ('fused', torch.bfloat16, True),
                               ('plain', torch.bfloat16, False)):
        x = packed.to(dtype).requires_grad_()
        t = temperature.to(dtype).requires_grad_()
        out = restormer_ops.channel_attention(x, 2, t, fused_backward=fused)
        out.backward(grad_out.to(dtype))
        assert x.grad.dtype == t.grad.dtype == dtype
        grads[name] = (out.double(), x.grad.double(), t.grad.double())
    for exact, fused, plain in zip(grads['exact'], grads['fused'], grads['plain']):
        scale = exact.abs().max()
        assert (fused - exact).abs().max() <= max(1.25 * (plain - exact).abs().max(), 0.01 * scale)


def test_bf16_without_bf16_arithmetic_warns_once_naming_the_option_and_runs_float32(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, 'bf16_supported', lambda device: False)
    monkeypatch.setattr(precision, '_WARNED', set())
    with pytest.warns(RuntimeWarning, match='train.amp bf16: this CPU has no native bf16 arithmetic') as caught:
        model = build_model(_opt(tmp_path, True, train_amp='bf16', val_amp='bf16'))
    assert model.train_amp is None and model.val_amp is None
    assert {str(w.message).split(' bf16')[0] for w in caught if w.category is RuntimeWarning} == \
        {'train.amp', 'val.amp'}
    with warnings.catch_warnings():
        warnings.simplefilter('error', RuntimeWarning)  # once: a second model says nothing more
        build_model(_opt(tmp_path, True, train_amp='bf16'))
    assert precision.supported_dtype(torch.float16, 'cpu') is torch.float16  # fp16 is not bf16's question


def test_restore_amp_bf16_without_bf16_arithmetic_says_so_and_restores_in_float32(monkeypatch, tmp_path):
    monkeypatch.setattr(precision, 'bf16_supported', lambda device: False)
    monkeypatch.setattr(precision, '_WARNED', set())
    torch.manual_seed(0)
    torch.save({'params': VLUNet(**VLUNET_KWARGS).state_dict()}, tmp_path / 'net_g.pth')
    cv2.imwrite(str(tmp_path / 'in.png'), np.random.default_rng(0).integers(0, 256, (20, 28, 3), dtype=np.uint8))
    for amp in ('none', 'bf16'):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter('always')
            assert restore_main([str(tmp_path / 'in.png'), '-o', str(tmp_path / amp), '--weights',
                                 str(tmp_path / 'net_g.pth'), '--device', 'cpu', '--amp', amp]) == 0
        said = [str(w.message) for w in caught if 'no native bf16' in str(w.message)]
        assert said == ([] if amp == 'none' else ['--amp bf16: this CPU has no native bf16 arithmetic (it would be '
                                                  'emulated, slower than float32); running float32'])
    assert (tmp_path / 'none' / 'in.png').read_bytes() == (tmp_path / 'bf16' / 'in.png').read_bytes()
