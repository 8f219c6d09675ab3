"""What the PyTorch Lightning releases built on PromptIR's code share (PromptIR, AdaIR, MoCE-IR): a ``model.ckpt``
whose ``state_dict`` holds the network's keys prefixed ``net.`` (the Lightning module's attribute) and nothing
else, module names equal to this project's, and Restormer's U-Net shapes to read the constructor keywords from.

A system's layout subclasses `LightningNetCheckpoint` with its ``arch``, the ``markers`` only its network has,
and ``options_from_state`` (which may simply index the state: a missing key is named by `convert`); registering it
in its own ``<system>_checkpoint.py`` is all a new release needs.
"""
from vlunet_basicsr.tools.convert.conversion import Conversion, ConvertedPart, network_yaml_block
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, count_blocks

NET_PREFIX = 'net.'


def restormer_unet_options(state, levels, refinement='refinement'):
    """The Restormer U-Net keywords of a state dict, read from its shapes (KeyError when a key is missing).

    Args:
        state (dict): The network's state dict (``net.`` stripped).
        levels (tuple[str]): The prefixes of the four levels' block stacks (``<level>.<i>.attn...``).
        refinement (str): The prefix of the refinement blocks. Default: 'refinement'.

    Returns:
        dict: ``inp_channels``, ``out_channels``, ``dim``, ``num_blocks``, ``num_refinement_blocks``, ``heads``,
        ``ffn_expansion_factor``, ``bias``, ``LayerNorm_type``.
    """
    first = f'{levels[0]}.0.'
    dim, inp_channels = (int(n) for n in state['patch_embed.proj.weight'].shape[:2])
    hidden = state[first + 'ffn.project_in.weight'].shape[0] // 2
    return {
        'inp_channels': inp_channels,
        'out_channels': int(state['output.weight'].shape[0]),
        'dim': dim,
        'num_blocks': [count_blocks(state, level) for level in levels],
        'num_refinement_blocks': count_blocks(state, refinement),
        'heads': [int(state[f'{level}.0.attn.temperature'].shape[0]) for level in levels],
        'ffn_expansion_factor': 2.66 if int(dim * 2.66) == hidden else round(hidden / dim, 4),
        'bias': 'output.bias' in state,
        'LayerNorm_type': 'WithBias' if first + 'norm1.body.bias' in state else 'BiasFree',
    }


class LightningNetCheckpoint:
    """A published Lightning ``model.ckpt`` of one network (``net.*`` keys only).

    Subclasses set ``name`` (for messages), ``arch`` (the registered network class), ``markers`` (key prefixes,
    after ``net.``, that only this network has: all must be present) and ``options_from_state(state, source)``.
    """

    name = 'a Lightning checkpoint'
    arch = None
    markers = ()
    accepts = ()

    @classmethod
    def detect(cls, checkpoint):
        state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
        return isinstance(state, dict) and all(
            any(isinstance(key, str) and key.startswith(NET_PREFIX + marker) for key in state)
            for marker in cls.markers)

    @classmethod
    def network_state(cls, checkpoint, source='checkpoint'):
        """The network's state dict (``net.`` stripped), or None when ``checkpoint`` is not this layout.

        Raises:
            CheckpointFormatError: The file also holds keys outside ``net.``.
        """
        if not cls.detect(checkpoint):
            return None
        state = checkpoint['state_dict']
        other = [key for key in state if not (isinstance(key, str) and key.startswith(NET_PREFIX))]
        if other:
            raise CheckpointFormatError(f"{source}: a {cls.arch.__name__} checkpoint, but its state_dict also holds "
                                        f"keys outside 'net.' (e.g. {other[:3]}), which the published network does "
                                        'not have')
        return {key[len(NET_PREFIX):]: value for key, value in state.items()}

    @classmethod
    def options_from_state(cls, state, source):
        """``arch``'s constructor keywords read from the shapes of ``state`` (KeyError for a missing key;
        CheckpointFormatError naming ``source`` for shapes the arch cannot take)."""
        raise NotImplementedError

    @classmethod
    def convert(cls, checkpoint, source, options):
        state = cls.network_state(checkpoint, source)
        where = f'{source}: its network weights'
        try:
            keywords = cls.options_from_state(state, where)
        except KeyError as error:
            raise CheckpointFormatError(f"{where} lack {error}: not {cls.arch.__name__}'s state dict") from error
        arch = {'type': cls.arch.__name__, **keywords}
        return Conversion([ConvertedPart('network', 'net_g.pth', state, arch=arch)], network_yaml_block(arch))
