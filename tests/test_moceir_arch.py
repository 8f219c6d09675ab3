"""MoCE-IR: the published vectors through the converter (MoCE-IR and MoCE-IR-S, per sample after the same seed,
noise-free, the routing logits and choices, every expert), the batch routed per sample, the balance loss, the
converter's detection and refusals."""
import pytest
import torch

import vlunet_basicsr  # noqa: F401
from conftest import lightning_checkpoint, published_state_dict, reference_file
from vlunet_basicsr.archs.moceir_arch import MoCEIR
from vlunet_basicsr.tools.convert import convert_loaded_checkpoint
from vlunet_basicsr.tools.convert.adair_checkpoint import AdaIRLightningCheckpoint
from vlunet_basicsr.tools.convert.moceir_checkpoint import MoCEIRLightningCheckpoint
from vlunet_basicsr.tools.convert.promptir_checkpoint import PromptIRLightningCheckpoint
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

TINY = {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_dec_blocks': [1, 1, 1], 'num_refinement_blocks': 1,
        'heads': [1, 1, 2, 2]}
VARIANTS = {'MoCE_IR': ('moceir_official_default.pt', 'moceir_official_keys.tsv'),
            'MoCE_IR_S': ('moceir_s_official_default.pt', 'moceir_s_official_keys.tsv')}


@pytest.fixture(scope='module', params=sorted(VARIANTS))
def published(request):
    """(reference, state dict, converted options) of a published variant, converted from its Lightning file."""
    vectors, keys = VARIANTS[request.param]
    ref = torch.load(reference_file(vectors), weights_only=True)
    conversion = MoCEIRLightningCheckpoint.convert(lightning_checkpoint(published_state_dict(keys)), 'last.ckpt', {})
    (part,) = conversion.parts
    options = dict(part.arch)
    assert options.pop('type') == 'MoCEIR' and ref['model_option'] == request.param
    return ref, part.state_dict, options


def _net(published, **overrides):
    _, state, options = published
    net = MoCEIR(**options, **overrides).eval()
    net.load_state_dict(state, strict=True)
    return net


def test_the_converted_network_is_the_published_one(published):
    ref, state, options = published
    config = {k: v for k, v in ref['config'].items() if k in options}
    assert {k: options[k] for k in config} == config
    assert options['ffn_expansion_factor'] == ref['implicit_defaults']['ffn_expansion_factor'] == 2
    net = _net(published)
    assert len(state) == ref['num_state_keys'] == 1262
    assert sum(p.numel() for p in net.parameters()) == ref['num_params']


def test_each_image_reproduces_the_published_eval_after_the_same_seed(published):
    ref = published[0]
    net = _net(published)
    with torch.no_grad():
        for i in range(2):
            torch.manual_seed(ref['forward_seed'])
            output = net(ref['input'][i:i + 1])
            assert (output - ref['output_per_sample'][i:i + 1]).abs().max().item() < 1e-5
            for mine, theirs in zip([a.last_routing for a in net.adapters()], ref['routing_per_sample'][i]):
                assert (mine['logits'] - theirs['logits']).abs().max().item() < 1e-5, theirs['block']
                assert (mine['noise'] - theirs['noise']).abs().max().item() < 1e-6, theirs['block']
                assert torch.equal(mine['top_k_indices'], theirs['top_k_indices']), theirs['block']


def test_without_routing_noise_it_is_deterministic_and_reproduces_the_noise_free_vectors(published):
    ref = published[0]
    net = _net(published, routing_noise=False)
    with torch.no_grad():
        outputs = torch.cat([net(ref['input'][i:i + 1]) for i in range(2)])
        assert (outputs - ref['output_per_sample_noise_free']).abs().max().item() < 1e-5
        assert torch.equal(net(ref['input'][:1]), net(ref['input'][:1]))
        chosen = [a.last_routing['top_k_indices'] for a in net.adapters()]
        assert all(torch.equal(mine, theirs['top_k_indices'])
                   for mine, theirs in zip(chosen, ref['routing_per_sample_noise_free'][0]))


def test_every_expert_and_router_reproduces_its_module_vector(published):
    ref = published[0]
    net = _net(published, routing_noise=False)
    with torch.no_grad():
        for entry in ref['expert_vectors']:
            adapter = net.get_submodule(entry['adapter'])
            for expert, expected in zip(adapter.experts, entry['expert_outputs']):
                assert (expert[0](entry['x'], entry['shared']) - expected).abs().max().item() < 1e-5
            output = adapter(entry['x'], entry['freq_emb'], entry['shared'])
            assert (output - entry['adapter_output_noise_free']).abs().max().item() < 1e-5
            assert (adapter.last_routing['logits'] - entry['logits']).abs().max().item() < 1e-5
            assert torch.equal(adapter.last_routing['top_k_indices'], entry['top_k_indices'])


def test_a_batch_is_routed_per_sample_not_mixed_as_the_published_eval(published):
    quirk = published[0]['adapter_batch_quirk']
    adapter = _net(published, routing_noise=False).get_submodule(quirk['adapter'])
    with torch.no_grad():
        output = adapter(quirk['x'], quirk['freq_emb'], quirk['shared'])
    assert adapter.last_routing['top_k_indices'].flatten().tolist() == quirk['top_k_indices']
    assert (output - quirk['output_per_sample']).abs().max().item() < 1e-5
    assert (output - quirk['output_published_batch']).abs().max().item() > 0.1


def test_training_adds_the_balance_loss_and_every_router_gets_a_gradient():
    torch.manual_seed(0)
    net = MoCEIR(**TINY).train()
    net(torch.rand(4, 3, 16, 16)).abs().mean().backward()
    # The pixel loss alone gives the routers (almost) nothing, as published: the expert's scale cancels in the
    # normalised attention that reads it.
    assert max(a.routing.gate[2].weight.grad.abs().max().item() for a in net.adapters()) < 1e-6
    net.zero_grad()
    output = net(torch.rand(4, 3, 16, 16))
    (terms,) = [net.training_losses()]
    assert set(terms) == {'l_balance'} and terms['l_balance'].item() > 0
    (output.abs().mean() + terms['l_balance']).backward()
    assert all(a.routing.gate[2].weight.grad.abs().max() > 1e-4 for a in net.adapters())
    net.eval()
    with torch.no_grad():
        net(torch.rand(1, 3, 16, 16))
    assert net.training_losses() == {}


def test_the_converter_tells_moceir_from_the_other_lightning_files_and_reads_other_widths():
    torch.manual_seed(0)
    state = MoCEIR(**TINY, bias=True, ffn_expansion_factor=2.5).state_dict()
    checkpoint = lightning_checkpoint(state)
    assert MoCEIRLightningCheckpoint.detect(checkpoint)
    assert not AdaIRLightningCheckpoint.detect(checkpoint) and not PromptIRLightningCheckpoint.detect(checkpoint)
    options = MoCEIRLightningCheckpoint.options_from_state(MoCEIRLightningCheckpoint.network_state(checkpoint), 'x')
    assert options == {'inp_channels': 3, 'out_channels': 3, **TINY, 'bias': True, 'ffn_expansion_factor': 2.5,
                       'LayerNorm_type': 'WithBias', 'num_experts': 4}


@pytest.mark.parametrize('change, message', [
    (lambda s: s.pop('dec.1.2.layers.0.adapter.routing.complexity'), r'missing dec\.1\.2\.layers\.0\.adapter\.routing'),
    (lambda s: s.update({'dec.1.extra': torch.zeros(1)}), r'unexpected dec\.1\.extra'),
    (lambda s: s.update({'freq_embed.mlp.0.bias': torch.zeros(5)}), r'misshapen freq_embed\.mlp\.0\.bias \(5,\)'),
    (lambda s: s.pop('output.weight'), r"last.ckpt: its network weights lack 'output.weight': not MoCEIR's state dict"),
], ids=['missing', 'unexpected', 'misshapen', 'no-output'])
def test_the_converter_refuses_a_faulty_file_by_name_and_writes_nothing(tmp_path, change, message):
    state = MoCEIR(**TINY).state_dict()
    change(state)
    with pytest.raises(CheckpointFormatError, match=message):
        convert_loaded_checkpoint(lightning_checkpoint(state), str(tmp_path / 'out'), 'last.ckpt')
    assert not (tmp_path / 'out').exists()


@pytest.mark.parametrize('options, message', [
    ({'dim': 12}, r'MoCEIR: dim: 12 is not an integer >= 8 and a multiple of 8'),
    ({'topk': 5}, r'topk: 5 is out of range'),
    ({'heads': [1, 3, 2, 2]}, r'heads: \[1, 3, 2, 2\] do not divide the 32 channels of level 2'),
    ({'balance_loss_weight': -1}, r'balance_loss_weight: -1 is out of range'),
])
def test_bad_constructor_values_are_named(options, message):
    with pytest.raises(ValueError, match=message):
        MoCEIR(**{**TINY, **options})
