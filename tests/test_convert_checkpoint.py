"""scripts/convert_official_checkpoint.py on the shared release test vectors and on malformed inputs."""
import os.path as osp
import runpy
import subprocess
import sys
from argparse import Namespace

import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import REPO, reference_file, run_in_process
from vlunet_basicsr.archs.clip_adapter import ClipAdapter
from vlunet_basicsr.archs.vlunet_arch import VLUNet
from vlunet_basicsr.tools.convert import CHECKPOINT_LAYOUT_REGISTRY

SCRIPT = osp.join(REPO, 'scripts', 'convert_official_checkpoint.py')


def _convert(*args):
    """The script's main in this process, as `run_in_process` runs it (exit code, stdout, stderr)."""
    return run_in_process(runpy.run_path(SCRIPT)['main'], [str(arg) for arg in args], cwd=osp.dirname(SCRIPT))


def _convert_command(*args):
    """The script as a command, in a process of its own (one test shows that it runs so)."""
    return subprocess.run([sys.executable, SCRIPT, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_lightning_checkpoint_converts_and_reproduces_the_release(tmp_path):
    ref = torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)
    proc = _convert_command(reference_file('vlunet_official_small.pt'), '--output-dir', tmp_path, '--de-dim', 5)
    assert proc.returncode == 0, proc.stderr
    assert 'type: VLUNet' in proc.stdout and 'de_dim: 5' in proc.stdout and 'dim: 16' in proc.stdout
    assert not (tmp_path / 'clip_adapter.pth').exists()  # only what the input holds
    net = VLUNet(**ref['config']).eval()
    net.load_state_dict(torch.load(tmp_path / 'net_g.pth', weights_only=True)['params'], strict=True)
    with torch.no_grad():
        assert (net(ref['input'], ref['degradation_vector']) - ref['output']).abs().max() < 1e-5


def _load_adapters(path):
    params = torch.load(path, weights_only=True)['params']
    image, text = ClipAdapter(512), ClipAdapter(512)
    image.load_state_dict({k[len('image_adapter.'):]: v for k, v in params.items() if k.startswith('image_adapter.')})
    text.load_state_dict({k[len('text_adapter.'):]: v for k, v in params.items() if k.startswith('text_adapter.')})
    return image.eval(), text.eval()


def test_released_adapter_file_reproduces_the_adapter_vectors(tmp_path):
    proc = _convert(reference_file('clip_adapter_official_format.pth'), '--output-dir', tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / 'net_g.pth').exists()
    image, text = _load_adapters(tmp_path / 'clip_adapter.pth')
    io = torch.load(reference_file('clip_adapter_official_io.pt'), weights_only=True)
    with torch.no_grad():
        assert (image(io['clip_image_features']) - io['adapted_image_features']).abs().max() < 1e-5
        assert (text(io['clip_text_features']) - io['adapted_text_features']).abs().max() < 1e-5


def test_full_lightning_checkpoint_writes_network_adapters_and_backbone(tmp_path):
    ref = torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)
    adapters = torch.load(reference_file('clip_adapter_official_format.pth'), weights_only=True)['learnable_params']
    backbone = {'visual.conv1.weight': torch.rand(4, 3, 2, 2), 'logit_scale': torch.tensor(4.6)}
    state = dict(ref['state_dict'])
    state.update({f'model_degradation.{k}': v for k, v in adapters.items()})
    for encoder in ('ad_imageEncoder', 'ad_textEncoder'):
        state.update({f'model_degradation.{encoder}.clip_model.{k}': v for k, v in backbone.items()})
    torch.save({'epoch': 3, 'state_dict': state}, tmp_path / 'full.ckpt')
    proc = _convert(tmp_path / 'full.ckpt', '--output-dir', tmp_path / 'out')
    assert proc.returncode == 0, proc.stderr
    written = torch.load(tmp_path / 'out' / 'clip_backbone.pth', weights_only=True)
    assert sorted(written) == sorted(backbone) and torch.equal(written['logit_scale'], backbone['logit_scale'])
    assert len(torch.load(tmp_path / 'out' / 'clip_adapter.pth', weights_only=True)['params']) == 24
    assert len(torch.load(tmp_path / 'out' / 'net_g.pth', weights_only=True)['params']) == len(ref['state_dict'])


def test_de_dim_mismatch_is_refused(tmp_path):
    proc = _convert(reference_file('vlunet_official_small.pt'), '--output-dir', tmp_path, '--de-dim', 7)
    assert proc.returncode == 1
    assert 'de_dim=5' in proc.stderr and 'expected 7' in proc.stderr
    assert not (tmp_path / 'net_g.pth').exists()


def test_unknown_layout_is_refused_naming_what_was_found_and_the_known_layouts(tmp_path):
    torch.save({'model': {'w': torch.zeros(1)}}, tmp_path / 'other.pth')
    proc = _convert(tmp_path / 'other.pth', '--output-dir', tmp_path / 'out')
    assert proc.returncode == 1 and 'other.pth: not a known checkpoint layout' in proc.stderr
    assert "found keys like 'model'" in proc.stderr
    assert all(layout.name in proc.stderr for _, layout in CHECKPOINT_LAYOUT_REGISTRY)
    assert not (tmp_path / 'out').exists()


def _main(*args):
    """The script in-process (the first test runs it as a command)."""
    return runpy.run_path(SCRIPT)['main']([str(arg) for arg in args])


def _lightning_file(tmp_path, edit):
    """The reference's Lightning checkpoint with its network state passed through ``edit``; returns the path."""
    state = dict(torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)['state_dict'])
    edit(state)
    torch.save({'state_dict': state}, tmp_path / 'edited.ckpt')
    return tmp_path / 'edited.ckpt'


def _refused(path, output_dir, capsys):
    assert _main(path, '--output-dir', output_dir) == 1
    assert not output_dir.exists()
    return capsys.readouterr().err


def test_unexpected_key_is_refused_by_name_and_nothing_is_written(tmp_path, capsys):
    path = _lightning_file(tmp_path, lambda state: state.update({'net.extra.weight': torch.zeros(3)}))
    error = _refused(path, tmp_path / 'out', capsys)
    assert 'edited.ckpt: its network does not load into VLUNet: unexpected extra.weight' in error


def test_misshapen_tensor_is_refused_by_name_and_nothing_is_written(tmp_path, capsys):
    def widen(state):
        state['net.output.weight'] = torch.zeros(3, 32, 3, 5)
    error = _refused(_lightning_file(tmp_path, widen), tmp_path / 'out', capsys)
    assert 'misshapen output.weight (3, 32, 3, 5) (the network has (3, 32, 3, 3))' in error


def test_misshapen_adapter_is_refused_and_no_part_is_written(tmp_path, capsys):
    adapters = torch.load(reference_file('clip_adapter_official_format.pth'), weights_only=True)['learnable_params']

    def add_adapters(state):
        state.update({f'model_degradation.{k}': v for k, v in adapters.items()})
        state['model_degradation.ad_textEncoder.adapter.3.weight'] = torch.zeros(512, 256)
    error = _refused(_lightning_file(tmp_path, add_adapters), tmp_path / 'out', capsys)
    assert 'its clip_adapter does not load into _AdapterPair: misshapen text_adapter.3.weight (512, 256)' in error


def test_an_existing_output_is_kept_unless_overwrite(tmp_path, capsys):
    (tmp_path / 'net_g.pth').write_bytes(b'mine')
    assert _main(reference_file('vlunet_official_small.pt'), '--output-dir', tmp_path) == 1
    assert 'net_g.pth already exists: pass --overwrite to replace it' in capsys.readouterr().err
    assert (tmp_path / 'net_g.pth').read_bytes() == b'mine'
    assert _main(reference_file('vlunet_official_small.pt'), '--output-dir', tmp_path, '--overwrite') == 0
    assert 'params' in torch.load(tmp_path / 'net_g.pth', weights_only=True)
    assert [p.name for p in tmp_path.iterdir()] == ['net_g.pth']  # no staging folder left


def test_pickle_needing_more_than_weights_is_refused_unless_trusted(tmp_path):
    ref = torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)
    torch.save({'state_dict': ref['state_dict'], 'hyper_parameters': Namespace(lr=2e-4)}, tmp_path / 'pickled.ckpt')
    proc = _convert(tmp_path / 'pickled.ckpt', '--output-dir', tmp_path / 'out')
    assert proc.returncode == 1 and '--trust-checkpoint' in proc.stderr
    proc = _convert(tmp_path / 'pickled.ckpt', '--output-dir', tmp_path / 'out', '--trust-checkpoint')
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / 'out' / 'net_g.pth').is_file()

