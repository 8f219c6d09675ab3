"""Deprecated, for one release: checkpoint conversion lives in `vlunet_basicsr.convert` (`convert_checkpoint`;
the VLU-Net layouts in ``convert/vlunet_checkpoint.py``). The old names below call it."""
import warnings

from vlunet_basicsr.convert import convert_checkpoint
from vlunet_basicsr.convert.dispatch import find_layout
from vlunet_basicsr.convert.vlunet_checkpoint import adapters_from_release as convert_adapters  # noqa: F401
from vlunet_basicsr.convert.vlunet_checkpoint import infer_network_options  # noqa: F401
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError  # noqa: F401

warnings.warn('vlunet_basicsr.utils.release_checkpoint is deprecated and goes in the next release: use '
              'vlunet_basicsr.convert.convert_checkpoint', DeprecationWarning, stacklevel=2)
_OLD_PART_NAMES = {'network': 'network', 'clip_adapter': 'adapters', 'clip_backbone': 'backbone'}


def split_release_checkpoint(checkpoint, path='checkpoint'):
    """Deprecated: the parts' state dicts, ``{'network', 'adapters', 'backbone'}`` (those present)."""
    conversion = find_layout(checkpoint, path).convert(checkpoint, path, {})
    return {_OLD_PART_NAMES[part.part]: part.state_dict for part in conversion.parts}


def convert_release_file(input_path, output_dir, trust_checkpoint=False, expected_de_dim=None):
    """Deprecated: `vlunet_basicsr.convert.convert_checkpoint` (this one still replaces existing files)."""
    conversion = convert_checkpoint(input_path, output_dir, trust_checkpoint, {'de_dim': expected_de_dim},
                                    overwrite=True)
    result = {'written': {_OLD_PART_NAMES[part]: path for part, path in conversion.written.items()}}
    for part in conversion.parts:
        if part.part == 'network':
            result['network_options'] = {key: value for key, value in part.arch.items() if key != 'type'}
    return result
