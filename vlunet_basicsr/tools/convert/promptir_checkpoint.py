"""The published PromptIR checkpoints (github va1shn9v/PromptIR, ``model.ckpt``).

Input: a PyTorch Lightning checkpoint (`vlunet_basicsr.tools.convert.lightning_layout`), told from the other
Lightning releases by the prompt blocks' keys (``net.prompt1.*``, ``net.noise_level1.*``). The module names of
`vlunet_basicsr.archs.promptir_arch.PromptIR` are the published ones, so the key map is the prefix alone; the
constructor keywords are read from the shapes.

Output: ``net_g.pth`` = ``{'params': state dict}`` for ``path.pretrain_network_g``, loadable with ``strict=True``.
"""
from vlunet_basicsr.archs.promptir_arch import PromptIR, prompt_channels
from vlunet_basicsr.tools.convert.conversion import CHECKPOINT_LAYOUT_REGISTRY
from vlunet_basicsr.tools.convert.lightning_layout import LightningNetCheckpoint, restormer_unet_options
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

LEVELS = ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')


def promptir_state_dict(checkpoint, source='checkpoint'):
    """The network state dict of a published PromptIR checkpoint (``net.`` stripped), or None for another file.

    Raises:
        CheckpointFormatError: A PromptIR file that also holds keys outside ``net.``.
    """
    return PromptIRLightningCheckpoint.network_state(checkpoint, source)


def infer_promptir_options(state, source='checkpoint'):
    """The `PromptIR` keywords that ``state`` (a converted state dict) needs, read from its shapes.

    Raises:
        KeyError: A key the network needs is missing.
        CheckpointFormatError: Prompt widths that do not follow ``dim``.
    """
    options = restormer_unet_options(state, LEVELS)
    prompt = state['prompt1.prompt_param'].shape
    options.update(prompt_len=int(prompt[1]), prompt_size=int(prompt[-1]))
    widths = tuple(int(state[f'prompt{i}.prompt_param'].shape[2]) for i in (1, 2, 3))
    dim = options['dim']
    if dim % 3 or widths != prompt_channels(dim):
        raise CheckpointFormatError(f'{source}: prompt channels {widths} at dim {dim}; PromptIR here sizes them '
                                    f'from dim (4/3, 8/3 and 20/3 of it: 64, 128, 320 at dim 48)')
    return options


@CHECKPOINT_LAYOUT_REGISTRY.register()
class PromptIRLightningCheckpoint(LightningNetCheckpoint):
    """The published PromptIR ``model.ckpt`` (PyTorch Lightning, ``net.*`` keys)."""

    name = "PromptIR Lightning checkpoint ('net.prompt1.*', 'net.noise_level1.*' keys)"
    arch = PromptIR
    markers = ('prompt1.', 'noise_level1.')

    @classmethod
    def options_from_state(cls, state, source):
        return infer_promptir_options(state, source)
