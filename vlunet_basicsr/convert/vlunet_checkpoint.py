"""Converting the released VLU-Net checkpoints to BasicSR files.

Inputs (see ``shared/reference/README.md`` for the layouts):
- a Lightning checkpoint (``3task_vlunet.ckpt``, ...): ``state_dict`` with ``net.*`` (the network),
  ``model_degradation.ad_{image,text}Encoder.adapter.*`` (the adapters) and
  ``model_degradation.ad_imageEncoder.clip_model.*`` (the open_clip backbone, stored twice);
- an adapter file (``clip_tuned.pth``): ``{'epoch', 'learnable_params': {'ad_*Encoder.adapter.*': ...}}``.

Outputs, each written only when the input holds it:
- ``net_g.pth``: ``{'params': VLUNet state dict}``, for ``path.pretrain_network_g``;
- ``clip_adapter.pth``: ``{'params': {'image_adapter.*', 'text_adapter.*'}}``, for ``network_clip.adapter_path``;
- ``clip_backbone.pth``: the open_clip model's state dict as open_clip saves it, for ``network_clip.pretrained``.
"""
import os
import os.path as osp

import torch

from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError, load_weights

NET_PREFIX = 'net.'
BACKBONE_PREFIX = 'model_degradation.ad_imageEncoder.clip_model.'
RELEASE_ADAPTER_PREFIXES = {'ad_imageEncoder.adapter.': 'image_adapter.', 'ad_textEncoder.adapter.': 'text_adapter.'}
FILE_NAMES = {'network': 'net_g.pth', 'adapters': 'clip_adapter.pth', 'backbone': 'clip_backbone.pth'}


def _strip(state, prefix):
    return {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}


def convert_adapters(learnable_params):
    """Map the release's adapter names (``ad_imageEncoder.adapter.0.weight``) to ours (``image_adapter.0.weight``)."""
    converted = {}
    for key, value in learnable_params.items():
        for old, new in RELEASE_ADAPTER_PREFIXES.items():
            if key.startswith(old):
                converted[new + key[len(old):]] = value
    return converted


def split_release_checkpoint(checkpoint, path='checkpoint'):
    """Split a loaded release file into ``{'network', 'adapters', 'backbone'}`` state dicts (only those present)."""
    if not isinstance(checkpoint, dict):
        raise CheckpointFormatError(f'{path}: expected a dict, got {type(checkpoint).__name__}')
    parts = {}
    if 'learnable_params' in checkpoint:
        parts['adapters'] = convert_adapters(checkpoint['learnable_params'])
    elif isinstance(checkpoint.get('state_dict'), dict):
        state = checkpoint['state_dict']
        parts['network'] = _strip(state, NET_PREFIX)
        parts['adapters'] = convert_adapters(_strip(state, 'model_degradation.'))
        parts['backbone'] = _strip(state, BACKBONE_PREFIX)
    else:
        raise CheckpointFormatError(
            f"{path}: not a released VLU-Net file: expected a Lightning checkpoint (key 'state_dict' with 'net.*' "
            f"entries) or an adapter file (key 'learnable_params'); found keys {sorted(checkpoint)[:10]}")
    parts = {name: state for name, state in parts.items() if state}
    if not parts:
        raise CheckpointFormatError(f"{path}: holds no 'net.*', adapter or CLIP weights")
    return parts


def _count_blocks(state, stage):
    prefix = f'{stage}.denoiser.blocks.'
    return len({key[len(prefix):].split('.')[0] for key in state if key.startswith(prefix)})


def infer_network_options(state):
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
            'num_blocks': [_count_blocks(state, s)
                           for s in ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')],
            'num_refinement_blocks': _count_blocks(state, 'refinement'),
            'heads': [int(h) for h in heads],
            'ffn_expansion_factor': 2.66 if int(dim * 2.66) == hidden else round(hidden / dim, 4),
            'bias': 'output.bias' in state,
            'LayerNorm_type': 'WithBias' if 'encoder_level1.denoiser.blocks.0.norm1.body.bias' in state else 'BiasFree',
            'de_dim': int(de_dim),
            'degradation_dim': int(degradation_dim),
            'key_size': int(state['encoder_level1.gradient_descent.prompt_param'].shape[-1]),
        }
    except KeyError as error:
        raise CheckpointFormatError(f'network weights lack {error}: not a VLU-Net state dict') from error
    return options


def network_yaml_block(options, weights_path=None):
    """The ``network_g:`` YAML (and ``path.pretrain_network_g`` when a path is given) that loads the network."""
    lines = ['network_g:', '  type: VLUNet']
    lines += [f'  {key}: {value}' for key, value in options.items()]
    if weights_path is not None:
        lines += ['', 'path:', f'  pretrain_network_g: {weights_path}', '  param_key_g: params',
                  '  strict_load_g: true']
    return '\n'.join(lines)


def convert_release_file(input_path, output_dir, trust_checkpoint=False, expected_de_dim=None):
    """Convert a released checkpoint or adapter file into BasicSR files under ``output_dir``.

    Args:
        input_path (str): ``*.ckpt`` or ``clip_tuned.pth``.
        output_dir (str): Created if missing.
        trust_checkpoint (bool): Allow arbitrary unpickling. Default: False.
        expected_de_dim (int | None): Fail if the network's key database has another number of keys.

    Returns:
        dict: ``written`` ({part: path}) and, with a network, ``network_options`` (VLUNet kwargs).
    """
    parts = split_release_checkpoint(load_weights(input_path, trust_checkpoint), input_path)
    result = {'written': {}}
    if 'network' in parts:
        options = infer_network_options(parts['network'])
        if expected_de_dim is not None and options['de_dim'] != expected_de_dim:
            raise CheckpointFormatError(f"{input_path}: the network has de_dim={options['de_dim']} keys per "
                                        f'database, not the expected {expected_de_dim}')
        result['network_options'] = options
    os.makedirs(output_dir, exist_ok=True)
    for name, state in parts.items():
        target = osp.join(output_dir, FILE_NAMES[name])
        torch.save(state if name == 'backbone' else {'params': state}, target)
        result['written'][name] = target
    return result
