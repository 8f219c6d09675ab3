"""The `VLUNet` keyword arguments read from a state dict's shapes: for weights given without options (the converter,
``basicsr restore --weights``)."""
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, count_blocks


def infer_network_options(state, source='network weights'):
    """The ``VLUNet`` keyword arguments that a converted network state dict needs (from its shapes)."""
    try:
        dim, inp_channels = state['patch_embed.proj.weight'].shape[:2]
        de_dim, degradation_dim = state['encoder_level1.gradient_descent.linear.weight'].shape
        hidden = state['encoder_level1.denoiser.blocks.0.ffn.project_in.weight'].shape[0] // 2
        heads = [state[f'{stage}.denoiser.blocks.0.attn.temperature'].shape[0]
                 for stage in ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')]
        options = {
            'inp_channels': int(inp_channels),
            'out_channels': int(state['output.weight'].shape[0]),
            'dim': int(dim),
            'num_blocks': [count_blocks(state, f'{s}.denoiser.blocks')
                           for s in ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')],
            'num_refinement_blocks': count_blocks(state, 'refinement.denoiser.blocks'),
            'heads': [int(h) for h in heads],
            'ffn_expansion_factor': 2.66 if int(dim * 2.66) == hidden else round(hidden / dim, 4),
            'bias': 'output.bias' in state,
            'LayerNorm_type': 'WithBias' if 'encoder_level1.denoiser.blocks.0.norm1.body.bias' in state else 'BiasFree',
            'de_dim': int(de_dim),
            'degradation_dim': int(degradation_dim),
            'key_size': int(state['encoder_level1.gradient_descent.prompt_param'].shape[-1]),
        }
    except KeyError as error:
        raise CheckpointFormatError(f'{source} lack {error}: not a VLU-Net state dict') from error
    return options
