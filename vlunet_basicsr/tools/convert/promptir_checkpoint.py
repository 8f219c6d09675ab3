"""The published PromptIR checkpoints (github va1shn9v/PromptIR, ``model.ckpt``).

Input: a PyTorch Lightning checkpoint whose ``state_dict`` holds the network's keys prefixed ``net.`` (the
Lightning module's attribute; its L1 loss has no weights). Told from VLU-Net's Lightning files, which share the
prefix, by the prompt blocks' keys (``net.prompt1.*``, ``net.noise_level1.*``). The module names of
`vlunet_basicsr.archs.promptir_arch.PromptIR` are the published ones, so the key map is the prefix alone; the
constructor keywords are read from the shapes.

Output: ``net_g.pth`` = ``{'params': state dict}`` for ``path.pretrain_network_g``, loadable with ``strict=True``.
"""
from vlunet_basicsr.archs.promptir_arch import PromptIR, prompt_channels
from vlunet_basicsr.tools.convert.conversion import (CHECKPOINT_LAYOUT_REGISTRY, Conversion, ConvertedPart,
                                               network_yaml_block)
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, count_blocks

NET_PREFIX = 'net.'
#: Key prefixes that only PromptIR's network has (after ``net.``).
MARKERS = ('prompt1.', 'noise_level1.')
LEVELS = ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')


def promptir_state_dict(checkpoint, source='checkpoint'):
    """The network state dict of a published PromptIR checkpoint, in `PromptIR`'s key layout, or None.

    Args:
        checkpoint: What ``torch.load`` returned.
        source (str): The file, for messages. Default: 'checkpoint'.

    Returns:
        dict | None: The state dict (``net.`` stripped), or None when ``checkpoint`` is not a PromptIR file.

    Raises:
        CheckpointFormatError: A PromptIR file that also holds keys outside ``net.``.
    """
    if not PromptIRLightningCheckpoint.detect(checkpoint):
        return None
    state = checkpoint['state_dict']
    other = [key for key in state if not (isinstance(key, str) and key.startswith(NET_PREFIX))]
    if other:
        raise CheckpointFormatError(f"{source}: a PromptIR checkpoint, but its state_dict also holds keys outside "
                                    f"'net.' (e.g. {other[:3]}), which the published network does not have")
    return {key[len(NET_PREFIX):]: value for key, value in state.items()}


def infer_promptir_options(state, source='checkpoint'):
    """The `PromptIR` keywords that ``state`` (a converted state dict) needs, read from its shapes.

    Raises:
        CheckpointFormatError: A key the network needs is missing, or prompt widths that do not follow ``dim``.
    """
    try:
        dim, inp_channels = (int(n) for n in state['patch_embed.proj.weight'].shape[:2])
        hidden = state['encoder_level1.0.ffn.project_in.weight'].shape[0] // 2
        prompt = state['prompt1.prompt_param'].shape
        options = {
            'inp_channels': inp_channels,
            'out_channels': int(state['output.weight'].shape[0]),
            'dim': dim,
            'num_blocks': [count_blocks(state, level) for level in LEVELS],
            'num_refinement_blocks': count_blocks(state, 'refinement'),
            'heads': [int(state[f'{level}.0.attn.temperature'].shape[0]) for level in LEVELS],
            'ffn_expansion_factor': 2.66 if int(dim * 2.66) == hidden else round(hidden / dim, 4),
            'bias': 'output.bias' in state,
            'LayerNorm_type': 'WithBias' if 'encoder_level1.0.norm1.body.bias' in state else 'BiasFree',
            'prompt_len': int(prompt[1]),
            'prompt_size': int(prompt[-1]),
        }
        widths = tuple(int(state[f'prompt{i}.prompt_param'].shape[2]) for i in (1, 2, 3))
    except KeyError as error:
        raise CheckpointFormatError(f'{source}: network weights lack {error}: not a PromptIR state dict') from error
    if dim % 3 or widths != prompt_channels(dim):
        raise CheckpointFormatError(f'{source}: prompt channels {widths} at dim {dim}; PromptIR here sizes them '
                                    f'from dim (4/3, 8/3 and 20/3 of it: 64, 128, 320 at dim 48)')
    return options


@CHECKPOINT_LAYOUT_REGISTRY.register()
class PromptIRLightningCheckpoint:
    """The published PromptIR ``model.ckpt`` (PyTorch Lightning, ``net.*`` keys)."""

    name = "PromptIR Lightning checkpoint ('net.prompt1.*', 'net.noise_level1.*' keys)"
    accepts = ()

    @classmethod
    def detect(cls, checkpoint):
        state = checkpoint.get('state_dict') if isinstance(checkpoint, dict) else None
        return isinstance(state, dict) and all(
            any(isinstance(key, str) and key.startswith(NET_PREFIX + marker) for key in state) for marker in MARKERS)

    @classmethod
    def convert(cls, checkpoint, source, options):
        state = promptir_state_dict(checkpoint, source)
        arch = {'type': PromptIR.__name__, **infer_promptir_options(state, f'{source}: its network weights')}
        return Conversion([ConvertedPart('network', 'net_g.pth', state, arch=arch)], network_yaml_block(arch))
