"""The published PromptIR test vector reproduced through the converter (shared/reference: the default network's
weights rebuilt from the key list, wrapped as its Lightning ``model.ckpt``), the layout's detection and option
inference, and scripts/convert_official_checkpoint.py end to end."""
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import lightning_checkpoint, published_state_dict, reference_file, run_script
from vlunet_basicsr.archs.promptir_arch import PromptIR
from vlunet_basicsr.tools.convert.promptir_checkpoint import (PromptIRLightningCheckpoint, infer_promptir_options,
                                                        promptir_state_dict)
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

TINY = {'dim': 12, 'num_blocks': [1, 2, 1, 2], 'num_refinement_blocks': 1, 'heads': [1, 2, 2, 4], 'prompt_size': 16,
        'prompt_len': 3, 'bias': True, 'LayerNorm_type': 'BiasFree', 'ffn_expansion_factor': 2.0}


def test_published_vector_is_reproduced_through_the_converter():
    ref = torch.load(reference_file('promptir_official_default.pt'), weights_only=True)
    assert ref['config'] == {'decoder': True}
    checkpoint = lightning_checkpoint(published_state_dict('promptir_official_keys.tsv'))
    assert PromptIRLightningCheckpoint.detect(checkpoint)
    conversion = PromptIRLightningCheckpoint.convert(checkpoint, 'model.ckpt', {})
    (part,) = conversion.parts
    assert (part.part, part.filename) == ('network', 'net_g.pth')
    assert part.arch == {'type': 'PromptIR', 'inp_channels': 3, 'out_channels': 3, 'dim': 48,
                         'num_blocks': [4, 6, 6, 8], 'num_refinement_blocks': 4, 'heads': [1, 2, 4, 8],
                         'ffn_expansion_factor': 2.66, 'bias': False, 'LayerNorm_type': 'WithBias', 'prompt_len': 5,
                         'prompt_size': 64}
    assert 'type: PromptIR' in conversion.yaml_block
    net = PromptIR().eval()
    net.load_state_dict(part.state_dict, strict=True)
    assert len(part.state_dict) == ref['num_state_keys'] == 548
    assert sum(p.numel() for p in net.parameters()) == ref['num_params'] == 35_592_263
    with torch.no_grad():
        assert (net(ref['input']) - ref['output']).abs().max().item() < 1e-5


def test_options_are_read_from_the_shapes_of_a_non_default_network():
    torch.manual_seed(0)
    state = PromptIR(**TINY).state_dict()
    options = infer_promptir_options(promptir_state_dict(lightning_checkpoint(state)))
    assert options == {'inp_channels': 3, 'out_channels': 3, **TINY}
    assert set(PromptIR(**options).state_dict()) == set(state)


def test_detection_tells_promptir_from_vlunet_and_other_files():
    vlunet = torch.load(reference_file('vlunet_official_small.pt'), weights_only=True)
    assert not PromptIRLightningCheckpoint.detect(vlunet)  # a Lightning file with 'net.' keys too
    assert not PromptIRLightningCheckpoint.detect({'params': PromptIR(**TINY).state_dict()})  # already converted
    assert not PromptIRLightningCheckpoint.detect({'state_dict': PromptIR(**TINY).state_dict()})  # no 'net.'
    assert not PromptIRLightningCheckpoint.detect([1, 2])
    assert promptir_state_dict(vlunet) is None


def test_malformed_promptir_files_are_refused_naming_the_fault():
    state = PromptIR(**TINY).state_dict()
    extra = lightning_checkpoint(state)
    extra['state_dict']['model_degradation.w'] = torch.zeros(1)
    with pytest.raises(CheckpointFormatError, match=r"model.ckpt: .*keys outside 'net.' .*model_degradation.w"):
        promptir_state_dict(extra, 'model.ckpt')
    missing = {key: value for key, value in state.items() if key != 'output.weight'}
    with pytest.raises(CheckpointFormatError,
                       match="model.ckpt: its network weights lack 'output.weight': not PromptIR's state dict"):
        PromptIRLightningCheckpoint.convert(lightning_checkpoint(missing), 'model.ckpt', {})
    resized = dict(state, **{'prompt2.prompt_param': torch.zeros(1, 3, 40, 8, 8)})
    with pytest.raises(CheckpointFormatError, match=r'prompt channels \(16, 40, 80\) at dim 12'):
        infer_promptir_options(resized)


def test_converter_script_writes_a_network_that_loads_strictly_and_restores_as_the_original(tmp_path):
    torch.manual_seed(0)
    original = PromptIR(**TINY).eval()
    torch.save(lightning_checkpoint(original.state_dict()), tmp_path / 'model.ckpt')
    proc = run_script('convert_official_checkpoint', [tmp_path / 'model.ckpt', '--output-dir', tmp_path / 'out'])
    assert proc.returncode == 0, proc.stderr
    assert 'type: PromptIR' in proc.stdout and 'dim: 12' in proc.stdout and 'prompt_len: 3' in proc.stdout
    converted = PromptIR(**TINY).eval()
    converted.load_state_dict(torch.load(tmp_path / 'out' / 'net_g.pth', weights_only=True)['params'], strict=True)
    lq = torch.rand(1, 3, 16, 24)
    with torch.no_grad():
        assert torch.equal(converted(lq), original(lq))
    proc = run_script('convert_official_checkpoint', [tmp_path / 'model.ckpt', '--output-dir', tmp_path / 'de',
                                                      '--de-dim', 7])
    assert proc.returncode == 1 and '--de-dim' in proc.stderr  # a VLU-Net option, refused for PromptIR
