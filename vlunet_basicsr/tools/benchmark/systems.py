"""The networks `scripts/benchmark.py` measures: built from an option file (any registered arch) or from the
tables of --arch / --preset / --clip (which also hold the release ports of --compare-release), with random weights,
and fed and scored through the arch protocol (`vlunet_basicsr.models.network_inputs`)."""
import warnings

import torch
import yaml

from vlunet_basicsr.utils.timing import count_parameters

PRESETS = {
    'default': {},  # the released network
    'small': {'dim': 24, 'num_blocks': [1, 2, 2, 2], 'num_refinement_blocks': 1},
    'tiny': {'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1},
}
DGUNET_PRESETS = {
    'default': {},  # the published deblurring / denoising widths (DGUNet 80/48/32, DGUNet+ 96/48/32)
    'small': {'n_feat': 40, 'scale_unetfeats': 20, 'scale_orsnetfeats': 16},  # the published deraining widths
    'tiny': {'n_feat': 16, 'scale_unetfeats': 8, 'scale_orsnetfeats': 8},
}
#: Each measured arch and the reference that computes it with the release's arithmetic (--compare-release).
RELEASE_PORTS = {'VLUNet': 'VLUNetReleasePort', 'DGUNet': 'DGUNetReleasePort', 'DGUNetPlus': 'DGUNetPlusReleasePort'}
ARCHS = [name for pair in RELEASE_PORTS.items() for name in pair] + ['VLURNet']
#: VL-UR's sizes (``--preset``): default = the arch's defaults (docs/vlur.md).
VLUR_PRESETS = {'default': {}, 'small': {'dim': 24}, 'tiny': {'dim': 8, 'heads': [1, 1, 1, 1]}}
CLIPS = {
    'vit-b-32': None,  # open_clip ViT-B-32 (random weights: speed does not depend on them)
    'small': {'embed_dim': 128, 'vision_cfg': {'image_size': 128, 'layers': 2, 'width': 128, 'patch_size': 16,
                                               'head_width': 32},
              'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 128, 'heads': 2, 'layers': 2}},
}


def is_dgunet(name):
    """DGUNet, DGUNetPlus and their release ports: unguided, multi-stage networks."""
    return name.startswith('DGUNet')


class System:
    """The measured network, its frozen guidance encoder (or None), its protocol (`NetworkInputs`), its
    `Guidance` and its size rule."""

    def __init__(self, net, clip, prompts, weights='random weights'):
        from vlunet_basicsr.models.guidance import Guidance
        from vlunet_basicsr.models.network_inputs import NetworkInputs, size_rule
        self.net, self.clip, self.prompts, self.weights = net, clip, prompts, weights
        self.inputs = NetworkInputs.of(type(net))
        self.inputs.check_encoder(clip is not None)
        self.guidance = Guidance(self.inputs, clip, prompts)
        self.rule = size_rule(net)

    def guide(self, images, evaluating):
        """The guidance input for ``images``: in training with label 0 for each (text-guided archs)."""
        labels = None if evaluating else torch.zeros(images.shape[0], dtype=torch.long)
        return self.guidance(images, labels, evaluating)

    def losses(self, model, lq, gt, guidance):
        """The training loss: L1 summed over every output image (the stages of a multi-stage arch)."""
        return sum((output.float() - gt).abs().mean() for output in self.inputs.outputs(model, lq, guidance,
                                                                                        self.rule))

    def restore(self, model, image, guidance, tile=None, tile_overlap=32):
        """The final image of ``model`` (``self.net`` or its compiled form) on ``image``, padded by the size rule."""
        from vlunet_basicsr.utils.restore_util import restore_image
        return restore_image(self.inputs.final(model, guidance), image, tile, tile_overlap, size_rule=self.rule)

    def describe(self):
        return {'arch': self.inputs.arch, 'guidance_input': self.inputs.guidance_input,
                'multi_stage_output': self.inputs.multi_stage_output, 'size_multiple': self.rule.multiple,
                'encoder': None if self.clip is None else type(self.clip).__name__, 'weights': self.weights,
                'params': count_parameters(self.net), 'guidance_params': count_parameters(self.clip)}


def build(args, device):
    """The `System` that -opt's YAML, or --arch / --preset / --clip, describe, on ``device``."""
    from vlunet_basicsr.utils.prompts import resolve_prompts
    weights = 'random weights'
    if args.onnx:  # the graph holds the YAML's weights: the torch side must too
        from vlunet_basicsr.tools.restore.restorer import load_networks
        net, _, clip, prompts, _, _ = load_networks(args.opt)
        weights = f'the weights of {args.opt}'
    elif args.opt:
        net, clip, prompts = build_from_options(args.opt, args.network_override)
    else:
        net, clip, prompts = *build_from_tables(args), None
    if clip is not None:
        clip = clip.to(device).eval().requires_grad_(False)
    return System(net.to(device), clip, resolve_prompts(prompts), weights)


def parse_overrides(pairs):
    """``--network-override key=value`` pairs -> {key: YAML value}; ValueError naming a pair without ``=``."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition('=')
        if not sep or not key:
            raise ValueError(f'--network-override takes key=value (e.g. dim=16); got {pair!r}')
        overrides[key] = yaml.safe_load(value)
    return overrides


def build_from_options(path, overrides=None):
    """network_g (with ``overrides``) and network_clip of the YAML ``path``, random weights, and its prompts."""
    from basicsr.archs import build_network
    with open(path) as f:
        opt = yaml.safe_load(f)
    if not isinstance(opt, dict) or not isinstance(opt.get('network_g'), dict) or 'type' not in opt['network_g']:
        raise ValueError(f'{path}: no network_g mapping with a type to build')
    net = build_network({**opt['network_g'], **(overrides or {})})
    clip_opt = opt.get('network_clip')
    if clip_opt is None:
        return net, None, opt.get('prompts')
    dropped = [key for key in ('pretrained', 'adapter_path') if clip_opt.get(key) is not None]
    if dropped:
        warnings.warn(f"{path}: network_clip's {' and '.join(dropped)} not loaded: the benchmark runs random "
                      'weights (speed does not depend on them)')
    return net, build_network({**clip_opt, 'pretrained': None, 'adapter_path': None}), opt.get('prompts')


def build_from_tables(args):
    """The network of --arch at --preset and the CLIP of --clip (none for the DGUNet archs)."""
    from vlunet_basicsr.archs.degradation_clip_arch import DegradationCLIP
    clip = None
    if args.clip != 'none' and not is_dgunet(args.arch):
        clip = DegradationCLIP(pretrained=None, model_cfg=CLIPS[args.clip])
    vector_dim = clip.backbone.visual.output_dim if clip is not None else 512
    return build_arch(args.arch, args, degradation_dim=vector_dim), clip


def build_arch(name, args, **overrides):
    from vlunet_basicsr.archs.vlunet_arch import VLUNet
    from vlunet_basicsr.tools.reference.vlunet_release_port import VLUNetReleasePort
    if is_dgunet(name):
        from basicsr.utils.registry import ARCH_REGISTRY
        from vlunet_basicsr.tools.reference import RELEASE_PORTS
        speed = {} if name.endswith('ReleasePort') else {'channels_last': args.channels_last}
        return (RELEASE_PORTS.get(name) or ARCH_REGISTRY.get(name))(**DGUNET_PRESETS[args.preset], **speed)
    if name == 'VLURNet':  # guided by a text embedding as long as the CLIP vector (its speed does not depend on it)
        from vlunet_basicsr.archs.vlur_arch import VLURNet
        return VLURNet(**VLUR_PRESETS[args.preset], text_dim=overrides['degradation_dim'])
    options = {**PRESETS[args.preset], **overrides}
    if name == 'VLUNetReleasePort':
        return VLUNetReleasePort(**options)
    return VLUNet(**options, channels_last=args.channels_last,
                  fused_backward=args.fused_backward == 'on')


def output_difference(args, arch='VLUNet'):
    """Max |arch - its release port| on shared random weights: the outputs (every stage image of a DGUNet), and
    the gradients of one step."""
    from vlunet_basicsr.models.network_inputs import NetworkInputs
    torch.manual_seed(0)
    fast, release = build_arch(arch, args), build_arch(RELEASE_PORTS[arch], args)
    release.load_state_dict(fast.state_dict())
    inputs = NetworkInputs.of(type(fast))
    lq = torch.rand(args.batch, 3, args.size, args.size)
    guidance = torch.randn(args.batch, fast.degradation_dim) if inputs.guided else None
    outputs, grads = [], []
    for net in (fast, release):
        out = torch.stack(inputs.outputs(net, lq, guidance))
        out.abs().mean().backward()
        outputs.append(out.detach())
        grads.append({name: p.grad for name, p in net.named_parameters() if p.grad is not None})
    if grads[0].keys() != grads[1].keys():
        raise RuntimeError(f'{arch} and {RELEASE_PORTS[arch]} give gradients to different parameters')
    grad_diff = max((grads[0][name] - grads[1][name]).abs().max().item() for name in grads[0])
    return {'max_abs_output_diff': (outputs[0] - outputs[1]).abs().max().item(), 'max_abs_grad_diff': grad_diff}
