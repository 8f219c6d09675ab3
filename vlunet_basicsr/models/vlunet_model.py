"""Stage 2: VLU-Net, the name every VLU-Net option file uses for the shared restoration model."""
from basicsr.utils.registry import MODEL_REGISTRY
from vlunet_basicsr.models.guided_restoration_model import GuidedRestorationModel


@MODEL_REGISTRY.register()
class VLUNetModel(GuidedRestorationModel):
    """`GuidedRestorationModel` under its VLU-Net name (paper Sec. 3); reads the same YAML keys.

    With ``network_g: {type: VLUNet}`` and ``network_clip`` a ``DegradationCLIP``, every batch gets the
    adapted CLIP image features of its LQ images as ``net_g(lq, vector)``; with ``network_clip: ~`` the vector
    is None (the "w/o CLIP" ablation: uniform key mixture, D-GDM linears frozen by
    ``VLUNet.freeze_guidance_layers``). Any other arch runs as `GuidedRestorationModel` runs it.
    """
