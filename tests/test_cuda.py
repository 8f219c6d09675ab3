"""On a CUDA device (skipped without one): the fast paths against the release's arithmetic, and bf16 autocast.

CI has no GPU; these run where one is lent (see README, "Speed and memory").
"""
import json

import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import reference_file
from test_vlunet_arch import TINY, assert_fast_path_matches_release
from vlunet_basicsr.archs import restormer_ops
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.tools.convert.vlunet_checkpoint import lightning_network_state
from vlunet_basicsr.tools.reference.vlunet_release_port import VLUNetReleasePort
from vlunet_basicsr.utils.precision import autocast

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA device')


@pytest.fixture(autouse=True)
def exact_float32():
    """TF32 off, so that float32 on the GPU is compared as float32."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


@pytest.mark.parametrize('arch', [VLUNet, VLUNetReleasePort], ids=['VLUNet', 'VLUNetReleasePort'])
@pytest.mark.parametrize('gram_chunk', [restormer_ops.GRAM_CHUNK, 64])  # 64: Gram matrices summed from chunks
def test_release_test_vector_on_cuda(arch, gram_chunk, monkeypatch):
    monkeypatch.setattr(restormer_ops, 'GRAM_CHUNK', gram_chunk)
    ref = torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)
    net = arch(**ref['config']).cuda().eval()
    net.load_state_dict(lightning_network_state(ref), strict=True)
    with torch.no_grad():
        output = net(ref['input'].cuda(), ref['degradation_vector'].cuda())
    assert (output.cpu() - ref['output']).abs().max().item() < 1e-5


@pytest.mark.parametrize('options', [{}, {'channels_last': False}, {'fused_backward': False}])
def test_fast_paths_match_the_release_arithmetic_on_cuda(options):
    assert_fast_path_matches_release(options, device='cuda')


def test_bf16_autocast_forward_and_backward_on_cuda():
    torch.manual_seed(0)
    net = VLUNet(**TINY).cuda()
    lq, vector = torch.rand(2, 3, 48, 40, device='cuda'), torch.randn(2, 512, device='cuda')
    reference = net(lq, vector)
    with autocast(lq.device, torch.bfloat16):
        output = net(lq, vector)
    error = (output.float() - reference).norm() / reference.norm()
    assert 0 < error < 1e-2
    output.float().sub(lq).abs().mean().backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_benchmark_on_cuda_records_the_tf32_settings(tmp_path):
    from vlunet_basicsr.tools.benchmark.command import main
    out = tmp_path / 'cuda.json'
    assert main(['--device', 'cuda', '--preset', 'tiny', '--clip', 'small', '--size', '32', '--batch', '1',
                           '--warmup', '0', '--repeat', '1', '--infer-size', '32', '--json', str(out)]) == 0
    machine = json.loads(out.read_text())['machine']
    assert machine['cudnn_allow_tf32'] is False and machine['matmul_allow_tf32'] is False  # exact_float32 fixture
