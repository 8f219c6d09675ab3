"""The released VLU-Net files: the Lightning checkpoint and the adapter file ``clip_tuned.pth``.

Inputs (see ``shared/reference/README.md`` for the layouts):
- a Lightning checkpoint (``3task_vlunet.ckpt``, ...): ``state_dict`` with ``net.*`` (the network),
  ``model_degradation.ad_{image,text}Encoder.adapter.*`` (the adapters) and
  ``model_degradation.ad_imageEncoder.clip_model.*`` (the open_clip backbone, stored twice);
- an adapter file (``clip_tuned.pth``): ``{'epoch', 'learnable_params': {'ad_*Encoder.adapter.*': ...}}``.

Outputs, each only when the input holds it:
- ``net_g.pth``: ``{'params': VLUNet state dict}``, for ``path.pretrain_network_g``;
- ``clip_adapter.pth``: ``{'params': {'image_adapter.*', 'text_adapter.*'}}``, for ``network_clip.adapter_path``;
- ``clip_backbone.pth``: the open_clip model's state dict as open_clip saves it, for ``network_clip.pretrained``
  (written as the checkpoint carries it: ``network_clip`` checks it against the model it names).
"""
from torch import nn

from vlunet_basicsr.archs.clip_adapter import ClipAdapter, adapters_from_release
from vlunet_basicsr.archs.vlunet_weights import infer_network_options
from vlunet_basicsr.tools.convert.conversion import (CHECKPOINT_LAYOUT_REGISTRY, Conversion, ConvertedPart,
                                               network_yaml_block)
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

NET_PREFIX = 'net.'
DEGRADATION_PREFIX = 'model_degradation.'
BACKBONE_PREFIX = 'model_degradation.ad_imageEncoder.clip_model.'


def _strip(state, prefix):
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def lightning_network_state(checkpoint):
    """The VLUNet state dict (``net.*`` without the prefix) of a loaded Lightning checkpoint."""
    return _strip(checkpoint['state_dict'], NET_PREFIX)


class _AdapterPair(nn.Module):
    """The two adapters under DegradationCLIP's names: what ``clip_adapter.pth`` must load into."""

    def __init__(self, dim):
        super().__init__()
        self.image_adapter = ClipAdapter(dim)
        self.text_adapter = ClipAdapter(dim)


def adapter_part(adapters):
    """The ``clip_adapter.pth`` part of converted adapters (checked against two `ClipAdapter` of their width)."""
    shape = getattr(adapters.get('image_adapter.0.weight', adapters.get('text_adapter.0.weight')), 'shape', ())
    dim = shape[-1] if len(shape) == 2 else 512  # with no first layer the check names it missing anyway
    return ConvertedPart('clip_adapter', 'clip_adapter.pth', adapters, module_factory=lambda: _AdapterPair(dim))


_VLUNET_MARKER = '.gradient_descent.'


@CHECKPOINT_LAYOUT_REGISTRY.register()
class VLUNetLightningCheckpoint:
    """The released VLU-Net Lightning checkpoint: network, adapters and CLIP backbone.

    Options: ``de_dim`` (int): refuse a network with another number of keys per database.
    """

    name = "VLU-Net Lightning checkpoint (state_dict with 'net.*' / 'model_degradation.*' keys)"
    accepts = ('de_dim',)

    @classmethod
    def detect(cls, checkpoint):
        # Other Lightning releases (PromptIR) also prefix their network 'net.': VLU-Net's has D-GDM stages.
        state = checkpoint.get('state_dict')
        return isinstance(state, dict) and any(
            isinstance(key, str) and (key.startswith(DEGRADATION_PREFIX)
                                      or key.startswith(NET_PREFIX) and _VLUNET_MARKER in key) for key in state)

    @classmethod
    def convert(cls, checkpoint, source, options):
        state = checkpoint['state_dict']
        parts, yaml_block = [], None
        network = _strip(state, NET_PREFIX)
        if network:
            arch = {'type': 'VLUNet', **infer_network_options(network, f'{source}: its network weights')}
            expected = options.get('de_dim')
            if expected is not None and arch['de_dim'] != expected:
                raise CheckpointFormatError(f"{source}: the network has de_dim={arch['de_dim']} keys per "
                                            f'database, not the expected {expected}')
            parts.append(ConvertedPart('network', 'net_g.pth', network, arch=arch))
            yaml_block = network_yaml_block(arch)
        adapters = adapters_from_release(_strip(state, DEGRADATION_PREFIX))
        if adapters:
            parts.append(adapter_part(adapters))
        backbone = _strip(state, BACKBONE_PREFIX)
        if backbone:
            parts.append(ConvertedPart('clip_backbone', 'clip_backbone.pth', backbone, payload=backbone))
        return Conversion(parts, yaml_block)


@CHECKPOINT_LAYOUT_REGISTRY.register()
class VLUNetAdapterFile:
    """The released adapter file ``clip_tuned.pth``: the image and text adapters only."""

    name = "VLU-Net adapter file clip_tuned.pth (key 'learnable_params')"

    @classmethod
    def detect(cls, checkpoint):
        return isinstance(checkpoint.get('learnable_params'), dict)

    @classmethod
    def convert(cls, checkpoint, source, options):
        adapters = adapters_from_release(checkpoint['learnable_params'])
        return Conversion([adapter_part(adapters)] if adapters else [])
