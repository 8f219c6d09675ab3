"""The published DGUNet / DGUNet+ checkpoints.

Input: what the release's training scripts save, ``{'epoch', 'state_dict', 'optimizer'}``, with the network's keys
with or without the ``module.`` prefix of DataParallel (a bare state dict is accepted too). The two networks are
told apart by their keys (DGUNet keeps its shared middle stage under ``basic.``), and the constructor keywords are
read from the shapes.

Output: ``net_g.pth`` = ``{'params': state dict}`` for ``path.pretrain_network_g``, loadable with
``strict=True`` into `vlunet_basicsr.archs.dgunet_arch.DGUNet` / ``DGUNetPlus``.
"""
import re

from vlunet_basicsr.tools.convert.conversion import (CHECKPOINT_LAYOUT_REGISTRY, Conversion, ConvertedPart,
                                               network_yaml_block)
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

DATA_PARALLEL_PREFIX = 'module.'
#: Keys only the given network has.
_MARKERS = {'DGUNet': 'basic.r1', 'DGUNetPlus': 'stage6_encoder.body.0.conv_1.weight'}
#: The published weight tying: every key of a group names the same tensor, so the values must be equal.
_TIED_GROUPS = {
    'DGUNet': (r'(basic\.)?phit?_\d\.body\.1\.weight', r'shallow_feat[17]\.1\.body\.1\.weight'),
    'DGUNetPlus': (r'phit?_\d\.body\.1\.weight', r'shallow_feat\d\.1\.body\.1\.weight'),
}


def dgunet_state_dict(checkpoint):
    """The network state dict of a published DGUNet/DGUNet+ file (``module.`` stripped), or None if it is not one.

    Args:
        checkpoint: What ``torch.load`` returned.

    Returns:
        dict | None: The state dict, or None when ``checkpoint`` holds no DGUNet/DGUNet+ network.
    """
    if not isinstance(checkpoint, dict):
        return None
    state = checkpoint.get('state_dict', checkpoint)
    if not isinstance(state, dict) or not state:
        return None
    if all(isinstance(key, str) and key.startswith(DATA_PARALLEL_PREFIX) for key in state):
        state = {key[len(DATA_PARALLEL_PREFIX):]: value for key, value in state.items()}
    return state if dgunet_variant(state) else None


def dgunet_variant(state):
    """'DGUNet', 'DGUNetPlus' or None, from the keys of a (prefix-free) state dict."""
    if 'r0' not in state or 'shallow_feat1.0.weight' not in state:
        return None
    for variant, marker in _MARKERS.items():
        if marker in state:
            return variant
    return None


def _check_tied_weights(variant, state, source):
    for pattern in _TIED_GROUPS[variant]:
        keys = [key for key in state if re.fullmatch(pattern, key)]
        different = [key for key in keys[1:] if not state[key].equal(state[keys[0]])]
        if different:
            raise CheckpointFormatError(
                f'{source}: {different[0]} differs from {keys[0]}, but the published network ties them (one PReLU); '
                'this is not a checkpoint of the published DGUNet code')


def infer_dgunet_options(variant, state, source='checkpoint'):
    """The constructor keywords of ``variant`` that ``state`` needs, read from its shapes.

    DGUNet's ``depth`` (how often the shared middle stage runs) is not in the weights: every release uses 5.
    DGUNet+ has no weight that ``scale_orsnetfeats`` sizes, so it is left out (the arch ignores it).

    Raises:
        CheckpointFormatError: A key the networks need is missing.
    """
    try:
        n_feat, in_c, kernel_size = state['shallow_feat1.0.weight'].shape[:3]
        reduced = state['shallow_feat1.1.CA.conv_du.0.weight'].shape[0]
        level1 = state['stage1_encoder.body.0.conv_1.weight'].shape[0]
        options = {'in_c': int(in_c), 'out_c': int(state['tail.weight'].shape[0]), 'n_feat': int(n_feat),
                   'scale_unetfeats': int(level1 - n_feat)}
        if variant == 'DGUNet':
            options['scale_orsnetfeats'] = int(state['concat67.weight'].shape[0] - n_feat)
        options.update(kernel_size=int(kernel_size), reduction=int(n_feat // reduced),
                       bias='shallow_feat1.0.bias' in state)
        if variant == 'DGUNet':
            options['depth'] = 5
    except KeyError as error:
        raise CheckpointFormatError(f'{source}: network weights lack {error}: not a {variant} state dict') from error
    if n_feat // options['reduction'] != reduced:
        raise CheckpointFormatError(f'{source}: channel attention of {reduced} channels for n_feat={n_feat}: '
                                    'no integer reduction gives it')
    return options


@CHECKPOINT_LAYOUT_REGISTRY.register()
class DGUNetPublishedCheckpoint:
    """What the published DGUNet / DGUNet+ training scripts save; refused when its weight tying is broken."""

    name = "published DGUNet checkpoint (DGUNet or DGUNet+: 'r0', 'shallow_feat1.*' keys, 'module.' or not)"

    @classmethod
    def detect(cls, checkpoint):
        return dgunet_state_dict(checkpoint) is not None

    @classmethod
    def convert(cls, checkpoint, source, options):
        state = dgunet_state_dict(checkpoint)
        variant = dgunet_variant(state)
        arch = {'type': variant, **infer_dgunet_options(variant, state, source)}
        _check_tied_weights(variant, state, source)
        return Conversion([ConvertedPart('network', 'net_g.pth', state, arch=arch)], network_yaml_block(arch))
