"""The published MoCE-IR checkpoints (github eduardzamfir/MoCE-IR, ``checkpoints/<id>/last.ckpt``: MoCE_IR_AIO3,
MoCE_IR_AIO5, MoCE_IR_S_AIO3, MoCE_IR_S_AIO5, ``<MODEL>_CDD11``).

Input: a PyTorch Lightning checkpoint (`vlunet_basicsr.tools.convert.lightning_layout`), told from the other
Lightning releases by the adapters' keys (``net.freq_embed.*``, ``net.dec.0.2.layers.0.adapter.*``), the 10
``complexity`` buffers included. The module names of `vlunet_basicsr.archs.moceir_arch.MoCEIR` are the published
ones, so the key map is the prefix alone; the constructor keywords are read from the shapes (``dim=32`` is
MoCE-IR-S).

Output: ``net_g.pth`` = ``{'params': state dict}`` for ``path.pretrain_network_g``, loadable with ``strict=True``.
"""
from vlunet_basicsr.archs.moceir_arch import MoCEIR
from vlunet_basicsr.tools.convert.conversion import CHECKPOINT_LAYOUT_REGISTRY
from vlunet_basicsr.tools.convert.lightning_layout import LightningNetCheckpoint
from vlunet_basicsr.utils.checkpoint_util import count_blocks


@CHECKPOINT_LAYOUT_REGISTRY.register()
class MoCEIRLightningCheckpoint(LightningNetCheckpoint):
    """The published MoCE-IR ``last.ckpt`` (PyTorch Lightning, ``net.*`` keys)."""

    name = "MoCE-IR Lightning checkpoint ('net.freq_embed.*', 'net.dec.0.2.layers.0.adapter.*' keys)"
    arch = MoCEIR
    markers = ('freq_embed.', 'dec.0.2.layers.0.adapter.')

    @classmethod
    def options_from_state(cls, state, source):
        """The `MoCEIR` keywords of ``state``, read from its shapes (KeyError when a key is missing)."""
        dim, inp_channels = (int(n) for n in state['patch_embed.proj.weight'].shape[:2])
        encoders = [f'enc.{i}.0' for i in range(3)] + ['latent']
        decoders = [f'dec.{2 - i}.2' for i in range(3)]  # dec.2 is level 1
        hidden = state['dec.2.2.layers.0.ffn.project_in.weight'].shape[0] // 2
        return {
            'inp_channels': inp_channels,
            'out_channels': int(state['output.weight'].shape[0]),
            'dim': dim,
            'num_blocks': [count_blocks(state, f'{prefix}.layers') for prefix in encoders],
            'num_dec_blocks': [count_blocks(state, f'{prefix}.layers') for prefix in decoders],
            'heads': [int(state[f'{prefix}.layers.0.mixer.temperature'].shape[0]) for prefix in encoders],
            'num_refinement_blocks': count_blocks(state, 'refinement.layers'),
            'ffn_expansion_factor': 2 if hidden == 2 * dim else round(hidden / dim, 4),
            'bias': 'output.bias' in state,
            'LayerNorm_type': 'WithBias' if 'enc.0.0.layers.0.norms.0.body.bias' in state else 'BiasFree',
            'num_experts': int(state['dec.0.2.layers.0.adapter.routing.complexity'].shape[0]),
        }
