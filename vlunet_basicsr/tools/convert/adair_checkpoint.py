"""The published AdaIR checkpoints (github c-yn/AdaIR, ``adair5d.ckpt`` and the 3-task file).

Input: a PyTorch Lightning checkpoint (`vlunet_basicsr.tools.convert.lightning_layout`), told from the other
Lightning releases by the frequency modules' keys (``net.fre1.*``, ``net.fre3.*``). The module names of
`vlunet_basicsr.archs.adair_arch.AdaIR` are the published ones (the unused ``fre*.conv`` and ``fre*.score_gen``
included), so the key map is the prefix alone; the constructor keywords are read from the shapes.

Output: ``net_g.pth`` = ``{'params': state dict}`` for ``path.pretrain_network_g``, loadable with ``strict=True``.
"""
from vlunet_basicsr.archs.adair_arch import AdaIR
from vlunet_basicsr.tools.convert.conversion import CHECKPOINT_LAYOUT_REGISTRY
from vlunet_basicsr.tools.convert.lightning_layout import LightningNetCheckpoint, restormer_unet_options
from vlunet_basicsr.utils.checkpoint_util import CheckpointFormatError

LEVELS = ('encoder_level1', 'encoder_level2', 'encoder_level3', 'latent')


@CHECKPOINT_LAYOUT_REGISTRY.register()
class AdaIRLightningCheckpoint(LightningNetCheckpoint):
    """The published AdaIR ``*.ckpt`` (PyTorch Lightning, ``net.*`` keys)."""

    name = "AdaIR Lightning checkpoint ('net.fre1.*', 'net.fre3.*' keys)"
    arch = AdaIR
    markers = ('fre1.', 'fre3.')

    @classmethod
    def options_from_state(cls, state, source):
        """The `AdaIR` keywords of ``state``, read from its shapes.

        Raises:
            KeyError: A key the network needs is missing.
            CheckpointFormatError: The frequency modules' heads are not level 3's.
        """
        options = restormer_unet_options(state, LEVELS)
        fre_heads = int(state['fre1.channel_cross_l.temperature'].shape[0])
        if fre_heads != options['heads'][2]:
            raise CheckpointFormatError(f"{source}: the frequency modules have {fre_heads} heads; AdaIR uses level "
                                        f"3's ({options['heads'][2]})")
        return options
