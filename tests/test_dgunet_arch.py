"""DGUNet / DGUNet+: faithful to the published code (converted test vectors, key layouts, parameter counts, MACs,
weight tying), any input size, no sharing across instances, the edge loss, the converter, and BasicSR's SRModel."""
import copy
import csv
import inspect
import os.path as osp
import runpy

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

import vlunet_basicsr  # noqa: F401
from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models import build_model
from conftest import REPO, reference_file, run_script, step_then_test
from vlunet_basicsr.archs.dgunet_arch import DGUNet, DGUNetPlus, pad_for_dgunet
from vlunet_basicsr.archs.dgunet_blocks import half_instance_norm, half_instance_norm_leaky_relu
from vlunet_basicsr.losses.edge_loss import EdgeLoss, gaussian_kernel, laplacian_residual
from vlunet_basicsr.tools.convert import convert_loaded_checkpoint
from vlunet_basicsr.tools.convert.dgunet_checkpoint import dgunet_state_dict, infer_dgunet_options
from vlunet_basicsr.tools.reference.dgunet_release_port import DGUNetPlusReleasePort, DGUNetReleasePort
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError
from vlunet_basicsr.utils.padding import crop_to

SCRIPT = osp.join(REPO, 'scripts', 'convert_official_checkpoint.py')
REFERENCES = {'DGUNet': 'dgunet_official_small.pt', 'DGUNetPlus': 'dgunet_plus_official_small.pt'}
RELEASE_PORTS = {'DGUNet': DGUNetReleasePort, 'DGUNetPlus': DGUNetPlusReleasePort}
TINY = dict(n_feat=16, scale_unetfeats=8, scale_orsnetfeats=8)
#: From shared/reference/README.md: parameters (a tied tensor counted once) of the published configurations.
PUBLISHED_PARAMS = {('DGUNet', 80, 48, 32): 17_331_512, ('DGUNet', 40, 20, 16): 3_661_912,
                    ('DGUNetPlus', 96, 48, 32): 69_572_915, ('DGUNetPlus', 80, 40, 32): 48_361_987,
                    ('DGUNetPlus', 40, 20, 16): 12_176_107}
#: state_dict keys / distinct tensors of the published networks (the tied PReLUs appear under several keys).
PUBLISHED_KEYS = {'DGUNet': (216, 210), 'DGUNetPlus': (666, 647)}


def _reference(variant):
    return torch.load(reference_file(REFERENCES[variant]), weights_only=True)


def _published_file(variant, folder):
    """Write the reference's checkpoint as the release's training script saves it; returns the path."""
    path = folder / f'{variant}_model_best.pth'
    torch.save(_reference(variant)['checkpoint'], path)
    return str(path)


def _published_layouts():
    """{(variant, n_feat, scale_unetfeats, scale_orsnetfeats): [(key, shape string), ...]} from the key list."""
    layouts = {}
    with open(reference_file('dgunet_official_keys.tsv')) as f:
        for row in csv.DictReader(f, delimiter='\t'):
            config = (row['variant'], int(row['n_feat']), int(row['scale_unetfeats']), int(row['scale_orsnetfeats']))
            layouts.setdefault(config, []).append((row['key'], row['shape']))
    return layouts


def _distinct_tensors(net):
    return len({value.data_ptr() for value in net.state_dict().values()})


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_converted_published_checkpoint_reproduces_every_stage(variant, tmp_path):
    ref = _reference(variant)
    proc = run_script('convert_official_checkpoint', [_published_file(variant, tmp_path), '--output-dir', tmp_path])
    assert proc.returncode == 0, proc.stderr
    assert f'type: {variant}\n' in proc.stdout and 'n_feat: 16' in proc.stdout and 'scale_unetfeats: 8' in proc.stdout
    assert ('depth: 5' in proc.stdout) == (variant == 'DGUNet')
    state = torch.load(tmp_path / 'net_g.pth', weights_only=True)['params']
    assert not any(key.startswith('module.') for key in state)
    net = build_network({'type': variant, **ref['config']}).eval()
    net.load_state_dict(state, strict=True)
    assert len(net.state_dict()) == ref['num_state_keys']
    assert sum(p.numel() for p in net.parameters()) == ref['num_params']
    with torch.no_grad():
        stages = net(ref['input'], return_stages=True)
        final = net(ref['input'])
    assert len(stages) == len(ref['outputs']) == 7
    for stage, expected in zip(stages, ref['outputs']):
        assert stage.shape == expected.shape and (stage - expected).abs().max().item() < 1e-5
    assert torch.equal(final, stages[0])


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_nchw_path_and_training_mode_match_the_published_outputs_and_each_other(variant):
    """channels_last (default) and NCHW both reproduce the release, also with autograd on; their gradients agree."""
    ref = _reference(variant)
    state = dgunet_state_dict(ref['checkpoint'])
    grads = []
    for channels_last in (True, False):
        net = build_network({'type': variant, **ref['config'], 'channels_last': channels_last}).eval()
        net.load_state_dict(state, strict=True)
        stages = net(ref['input'], return_stages=True)
        for stage, expected in zip(stages, ref['outputs']):
            assert (stage.detach() - expected).abs().max().item() < 1e-5
        sum(stage.square().mean() for stage in stages).backward()
        grads.append({name: p.grad for name, p in net.named_parameters() if p.requires_grad})
    for name, grad in grads[0].items():
        assert (grad - grads[1][name]).abs().max().item() < 1e-5 * max(1.0, grad.abs().max().item()), name


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_release_port_reproduces_the_published_outputs_and_the_fast_path_in_float64(variant):
    """The release port (the published arithmetic) on the published test vector; then, in float64 on shared
    weights and a corner of the vector's input, the fast path (channels_last and NCHW) against it: every stage image
    and every gradient."""
    ref = _reference(variant)
    release = RELEASE_PORTS[variant](**ref['config']).eval()
    release.load_state_dict(dgunet_state_dict(ref['checkpoint']), strict=True)
    with torch.no_grad():
        for stage, expected in zip(release(ref['input'], return_stages=True), ref['outputs']):
            assert (stage - expected).abs().max().item() < 1e-5
    release.double()
    lq = ref['input'][:, :, :32, :48].double()  # a corner of the vector's input: the agreement of any input
    results = {}
    for name, net in (('release', release), ('channels_last', build_network({'type': variant, **ref['config']})),
                      ('nchw', build_network({'type': variant, **ref['config'], 'channels_last': False}))):
        net.double().load_state_dict(release.state_dict())
        stages = net(lq, return_stages=True)
        sum(stage.sub(lq).square().mean() for stage in stages).backward()
        results[name] = ([stage.detach() for stage in stages],
                         {key: p.grad for key, p in net.named_parameters() if p.grad is not None})
    stages, grads = results.pop('release')
    for name, (fast_stages, fast_grads) in results.items():
        assert max((a - b).abs().max().item() for a, b in zip(fast_stages, stages)) < 1e-10, name
        assert fast_grads.keys() == grads.keys()
        for key, grad in grads.items():
            assert (fast_grads[key] - grad).abs().max().item() < 1e-10 * max(1.0, grad.abs().max().item()), key


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_channels_last_features_stay_channels_last_through_every_block(variant):
    """No layout flips: every 4-D tensor a block takes or returns is channels_last (1x1 maps are both)."""
    torch.manual_seed(0)
    net = build_network({'type': variant, **TINY})
    layouts = []

    def record(module, inputs, outputs):
        outputs = outputs if isinstance(outputs, (tuple, list)) else (outputs,)
        for tensor in (*inputs, *outputs):
            if torch.is_tensor(tensor) and tensor.dim() == 4:
                layouts.append((type(module).__name__, tensor.is_contiguous(memory_format=torch.channels_last)))

    for module in net.modules():
        if module is not net:
            module.register_forward_hook(record)
    net(torch.rand(1, 3, 24, 32), return_stages=True)
    assert len(layouts) > 300 and [name for name, channels_last in layouts if not channels_last] == []


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_half_instance_norm_is_the_published_chunk_norm_cat(memory_format):
    torch.manual_seed(0)
    norm = torch.nn.InstanceNorm2d(6, affine=True).double()
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = (torch.randn(2, 12, 9, 7, dtype=torch.float64) * 3 + 1).contiguous(memory_format=memory_format)
    x.requires_grad_()
    first, second = torch.chunk(x, 2, dim=1)
    expected = torch.cat([norm(first), second], 1)
    out = half_instance_norm(x, 6, norm)
    assert out.is_contiguous(memory_format=memory_format)
    assert torch.equal(out[:, 6:], x[:, 6:]) and (out - expected).abs().max().item() < 1e-12
    upstream = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, norm.weight, norm.bias), upstream, retain_graph=True)
    expected_grads = torch.autograd.grad(expected, (x, norm.weight, norm.bias), upstream, retain_graph=True)
    for grad, expected_grad in zip(grads, expected_grads):
        assert (grad - expected_grad).abs().max().item() < 1e-12
    # with the leaky ReLU, the hand-written backward (training) and the plain operations (no gradient)
    expected = torch.nn.functional.leaky_relu(expected, 0.2)
    fused = half_instance_norm_leaky_relu(x, 6, norm, 0.2)
    assert fused.grad_fn is not None and 'HalfInstanceNormLeakyReLU' in type(fused.grad_fn).__name__
    assert fused.is_contiguous(memory_format=memory_format) and (fused - expected).abs().max().item() < 1e-12
    grads = torch.autograd.grad(fused, (x, norm.weight, norm.bias), upstream)
    expected_grads = torch.autograd.grad(expected, (x, norm.weight, norm.bias), upstream)
    assert grads[0].is_contiguous(memory_format=memory_format)
    for grad, expected_grad in zip(grads, expected_grads):
        assert (grad - expected_grad).abs().max().item() < 1e-12
    with torch.no_grad():
        assert (half_instance_norm_leaky_relu(x, 6, norm, 0.2) - expected).abs().max().item() < 1e-12


@pytest.mark.parametrize('config', sorted(_published_layouts()))
def test_key_layout_parameter_count_and_inferred_options_match_each_published_configuration(config):
    variant, n_feat, scale_unetfeats, scale_orsnetfeats = config
    kwargs = dict(n_feat=n_feat, scale_unetfeats=scale_unetfeats, scale_orsnetfeats=scale_orsnetfeats)
    with torch.device('meta'):  # no memory and no initialisation for the big configurations
        net = {'DGUNet': DGUNet, 'DGUNetPlus': DGUNetPlus}[variant](**kwargs)
    state = net.state_dict()
    assert [(key, 'x'.join(map(str, value.shape))) for key, value in state.items()] == _published_layouts()[config]
    assert sum(p.numel() for p in net.parameters()) == PUBLISHED_PARAMS[config]
    options = infer_dgunet_options(variant, state)
    assert {key: options[key] for key in ('n_feat', 'scale_unetfeats')} == {'n_feat': n_feat,
                                                                          'scale_unetfeats': scale_unetfeats}
    assert options.get('scale_orsnetfeats', scale_orsnetfeats) == scale_orsnetfeats
    assert options['in_c'] == options['out_c'] == 3 and options['reduction'] == 4 and options['bias'] is False


@pytest.mark.parametrize('variant, expected_gmacs', [('DGUNet', 843.2), ('DGUNetPlus', 1082.8)])
def test_default_network_macs_at_256_match_the_published(variant, expected_gmacs):
    with torch.device('meta'):
        net = {'DGUNet': DGUNet, 'DGUNetPlus': DGUNetPlus}[variant]().eval()
        image = torch.empty(1, 3, 256, 256)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image)
    assert round(counter.get_total_flops() / 2e9, 1) == expected_gmacs


def test_weight_tying_is_the_published_one_within_a_network():
    net = DGUNet(**TINY)
    gradient_prelus = {id(getattr(module, name).body[1]) for module, names in
                       ((net, ('phi_0', 'phit_0', 'phi_6', 'phit_6')), (net.basic, ('phi_1', 'phit_1')))
                       for name in names}
    assert len(gradient_prelus) == 1
    assert net.shallow_feat1[1].body[1] is net.shallow_feat7[1].body[1]
    assert net.basic.shallow_feat2[1].body[1] is not net.shallow_feat1[1].body[1]
    assert net.basic.shallow_feat2[1].body[1] is not net.phi_0.body[1]
    plus = DGUNetPlus(**TINY)
    assert len({id(getattr(plus, f'{op}_{k}').body[1]) for op in ('phi', 'phit') for k in range(7)}) == 1
    assert len({id(getattr(plus, f'shallow_feat{k}')[1].body[1]) for k in range(1, 8)}) == 1
    for variant, model in (('DGUNet', net), ('DGUNetPlus', plus)):
        assert (len(model.state_dict()), _distinct_tensors(model)) == PUBLISHED_KEYS[variant]


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_instances_and_deep_copies_share_no_parameter(variant):
    """The published default-argument PReLU ties every network of a process (net_g to net_g_ema): not here."""
    nets = [build_network({'type': variant, **TINY}) for _ in range(2)]
    nets.append(copy.deepcopy(nets[0]))  # how BasicSR makes net_g_ema
    pointers = [{p.data_ptr() for p in net.parameters()} for net in nets]
    assert not pointers[0] & pointers[1] and not pointers[0] & pointers[2]
    assert (len(nets[2].state_dict()), _distinct_tensors(nets[2])) == PUBLISHED_KEYS[variant]  # tying kept
    with torch.no_grad():
        nets[0].phi_0.body[1].weight.fill_(0.7)
    assert nets[1].phi_0.body[1].weight.item() != 0.7 and nets[2].phi_0.body[1].weight.item() != 0.7


@pytest.mark.parametrize('variant', ['DGUNet', 'DGUNetPlus'])
def test_any_input_size_gives_same_size_outputs(variant):
    torch.manual_seed(0)
    net = build_network({'type': variant, **TINY}).eval()
    with torch.no_grad():
        for h, w in [(37, 50), (5, 3), (16, 16), (9, 24)]:
            lq = torch.rand(1, 3, h, w)
            assert net(lq).shape == lq.shape
            stages = net(lq, return_stages=True)
            assert len(stages) == 7 and all(stage.shape == lq.shape for stage in stages)


def test_padding_rule():
    x = torch.rand(1, 3, 16, 24)
    assert pad_for_dgunet(x)[0] is x  # multiples of 8, at least 16: left alone
    x = torch.rand(1, 3, 37, 50)
    padded, size = pad_for_dgunet(x)
    assert padded.shape[-2:] == (40, 56) and torch.equal(crop_to(padded, size), x)
    assert torch.equal(padded[..., 37, :50], x[..., 35, :])  # reflection about the last row (the published rule)
    assert pad_for_dgunet(torch.rand(1, 3, 8, 40))[0].shape[-2:] == (16, 40)  # at least 16 (instance norm)
    tiny, _ = pad_for_dgunet(torch.rand(1, 1, 5, 3))
    assert tiny.shape[-2:] == (16, 16) and tiny[0, 0, 15, 15] == tiny[0, 0, 4, 2]  # too small to reflect: edges


def test_depth_sets_the_number_of_middle_stages():
    torch.manual_seed(0)
    net = DGUNet(**TINY, depth=2).eval()
    with torch.no_grad():
        assert len(net(torch.rand(1, 3, 16, 16), return_stages=True)) == 4


def test_declarations_for_the_model_layer_and_bad_channels():
    for cls in (DGUNet, DGUNetPlus):
        assert cls.guidance_input is None and cls.multi_stage_output is True
        with pytest.raises(ValueError, match='in_c and out_c must be equal'):
            cls(in_c=3, out_c=1, **TINY)
    net = DGUNet(in_c=1, out_c=1, **TINY).eval()
    with torch.no_grad():
        assert net(torch.rand(1, 1, 20, 20)).shape == (1, 1, 20, 20)


@pytest.mark.parametrize('cls', [DGUNet, DGUNetPlus, EdgeLoss])
def test_the_constructor_keywords_are_documented_and_their_defaults_pass_the_constructors_check(cls):
    parameters = inspect.signature(cls).parameters
    for name in parameters:
        assert f'{name} (' in cls.__doc__, name  # documented in Args
    assert cls.argument_problems({name: parameter.default for name, parameter in parameters.items()}) == []


def test_gradients_reach_every_parameter_the_published_network_uses():
    torch.manual_seed(0)
    net = DGUNet(**TINY)
    lq = torch.rand(2, 3, 32, 32)
    sum(stage.sub(lq).abs().mean() for stage in net(lq, return_stages=True)).backward()
    for name, param in net.named_parameters():
        if name.startswith('basic.concat12.'):
            assert not param.requires_grad and param.grad is None  # kept for the checkpoints, used by no stage
        else:
            assert param.grad is not None and param.grad.abs().sum() > 0, name


def test_bfloat16_autocast_runs_the_subspace_projection_in_float32():
    torch.manual_seed(0)
    net = DGUNetPlus(**TINY).eval()
    lq = torch.rand(1, 3, 24, 32)
    with torch.no_grad():
        expected = net(lq)
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = net(lq)
    assert out.shape == lq.shape and torch.isfinite(out).all()
    assert (out.float() - expected).abs().mean() < 0.05


def test_edge_and_charbonnier_losses_match_the_published():
    ref = torch.load(reference_file('dgunet_official_losses.pt'), weights_only=True)
    edge = build_loss({'type': 'EdgeLoss', 'loss_weight': 1.0})
    charbonnier = build_loss({'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'eps': 1.0e-6})
    assert abs(edge(ref['x'], ref['y']).item() - ref['edge'].item()) < 1e-6
    assert abs(charbonnier(ref['x'], ref['y']).item() - ref['charbonnier_eps1e-3'].item()) < 1e-6


def test_edge_loss_weight_reduction_and_gradient():
    torch.manual_seed(0)
    pred, target = torch.rand(2, 3, 21, 30, requires_grad=True), torch.rand(2, 3, 21, 30)
    per_pixel = build_loss({'type': 'EdgeLoss', 'reduction': 'none'})(pred, target)
    assert per_pixel.shape == pred.shape
    mean = build_loss({'type': 'EdgeLoss'})(pred, target)
    assert torch.allclose(build_loss({'type': 'EdgeLoss', 'reduction': 'sum'})(pred, target), per_pixel.sum())
    assert torch.allclose(mean, per_pixel.mean())
    assert torch.allclose(build_loss({'type': 'EdgeLoss', 'loss_weight': 0.05})(pred, target), 0.05 * mean)
    weight = torch.zeros(2, 1, 21, 30)
    weight[0] = 1
    assert torch.allclose(build_loss({'type': 'EdgeLoss'})(pred, target, weight), per_pixel[0].mean())
    residual = laplacian_residual(torch.full((1, 3, 16, 16), 0.3), gaussian_kernel(3))
    assert residual[..., 4:-4, 4:-4].abs().max() < 1e-6  # a flat image has no edges (inside the border)
    mean.backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0


def test_converter_accepts_a_bare_state_dict_and_refuses_other_files(tmp_path):
    ref = _reference('DGUNetPlus')
    bare = {key[len('module.'):]: value for key, value in ref['checkpoint']['state_dict'].items()}
    conversion = convert_loaded_checkpoint(bare, str(tmp_path))
    assert conversion.parts[0].arch == {'type': 'DGUNetPlus', 'in_c': 3, 'out_c': 3, 'n_feat': 16,
                                        'scale_unetfeats': 8, 'kernel_size': 3, 'reduction': 4, 'bias': False}
    with pytest.raises(CheckpointFormatError, match='not a known checkpoint layout'):
        convert_loaded_checkpoint({'state_dict': {'r0': torch.ones(1)}}, str(tmp_path / 'other'))
    untied = dict(bare)
    untied['phit_3.body.1.weight'] = untied['phit_3.body.1.weight'] + 1
    with pytest.raises(CheckpointFormatError, match='phit_3.body.1.weight differs'):
        convert_loaded_checkpoint(untied, str(tmp_path / 'untied'))
    assert not (tmp_path / 'untied').exists()


def test_converter_refuses_a_published_checkpoint_missing_a_weight_and_writes_nothing(tmp_path, capsys):
    checkpoint = _reference('DGUNet')['checkpoint']
    del checkpoint['state_dict']['module.stage1_decoder.body.0.up.weight']
    torch.save(checkpoint, tmp_path / 'incomplete.pth')
    main = runpy.run_path(SCRIPT)['main']
    assert main([str(tmp_path / 'incomplete.pth'), '--output-dir', str(tmp_path / 'out')]) == 1
    assert 'its network does not load into DGUNet: missing stage1_decoder.body.0.up.weight' in capsys.readouterr().err
    assert not (tmp_path / 'out').exists()


def test_converter_script_refuses_de_dim_for_dgunet(tmp_path, capsys):
    main = runpy.run_path(SCRIPT)['main']  # in-process, as the conversions above
    assert main([_published_file('DGUNet', tmp_path), '--output-dir', str(tmp_path), '--de-dim', '7']) == 1
    error = capsys.readouterr().err
    assert 'DGUNet checkpoint' in error and '--de-dim' in error
    assert not (tmp_path / 'net_g.pth').exists()


def test_dgunet_inside_basicsr_srmodel():
    opt = {
        'model_type': 'SRModel', 'num_gpu': 0, 'is_train': True, 'dist': False, 'scale': 1,
        'network_g': {'type': 'DGUNet', **TINY},
        'path': {'pretrain_network_g': None, 'strict_load_g': True},
        'train': {'ema_decay': 0.999, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
                  'scheduler': {'type': 'MultiStepLR', 'milestones': [9], 'gamma': 0.5},
                  'pixel_opt': {'type': 'CharbonnierLoss', 'loss_weight': 1.0, 'eps': 1e-6}},
    }
    model = build_model(opt)
    assert not ({p.data_ptr() for p in model.net_g.parameters()} & {p.data_ptr() for p in model.net_g_ema.parameters()})
    step_then_test(model)
