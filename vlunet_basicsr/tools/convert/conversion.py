"""What a checkpoint layout hands to the dispatch: the parts to write, each with the network it must load into.

`CHECKPOINT_LAYOUT_REGISTRY` holds one class per published file format. A layout class has:

- ``name`` (str): what the file is, for messages;
- ``accepts`` (tuple of str, optional): the ``options`` keys it reads (the dispatch refuses others);
- ``detect(checkpoint) -> bool`` (classmethod): whether ``checkpoint`` (what ``torch.load`` returned, a dict) has
  this layout; cheap, from the keys only;
- ``convert(checkpoint, source, options) -> Conversion`` (classmethod).
"""
from dataclasses import dataclass, field
from typing import Callable, Optional

from basicsr.utils.registry import Registry

CHECKPOINT_LAYOUT_REGISTRY = Registry('checkpoint_layout')


@dataclass
class ConvertedPart:
    """One file of a conversion.

    Attributes:
        part (str): 'network', 'clip_adapter', 'clip_backbone', ...
        filename (str): The file's name in the output folder ('net_g.pth', ...).
        state_dict (dict): The tensors, in the project's key layout.
        arch (dict | None): The ``network_g``-style options (``{'type': 'VLUNet', ...}``) of the ARCH_REGISTRY
            network that ``state_dict`` must load into with ``strict=True``.
        payload (object): What is saved. Default: ``{'params': state_dict}``.
        module_factory (callable | None): For a part that is not an ARCH_REGISTRY network: builds the module
            ``state_dict`` must load into. A part with neither ``arch`` nor ``module_factory`` is not checked.
    """
    part: str
    filename: str
    state_dict: dict
    arch: Optional[dict] = None
    payload: object = None
    module_factory: Optional[Callable] = None

    def __post_init__(self):
        if self.payload is None:
            self.payload = {'params': self.state_dict}


@dataclass
class Conversion:
    """What `convert` of a layout returns; the dispatch fills ``written`` ({part: path}) once it has written."""
    parts: list
    yaml_block: Optional[str] = None
    written: dict = field(default_factory=dict)


def _yaml_value(value):
    return str(value).lower() if isinstance(value, bool) else value


def network_yaml_block(arch):
    """The ``network_g:`` YAML block of ``arch`` (``{'type': ..., **kwargs}``)."""
    return '\n'.join(['network_g:'] + [f'  {key}: {_yaml_value(value)}' for key, value in arch.items()])


def pretrain_yaml_block(weights_path):
    """The ``path:`` YAML block that loads ``weights_path`` strictly as ``network_g``."""
    return '\n'.join(['path:', f'  pretrain_network_g: {weights_path}', '  param_key_g: params',
                      '  strict_load_g: true'])
