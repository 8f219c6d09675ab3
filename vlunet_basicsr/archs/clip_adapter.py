"""The learnable MLP adapter that VLU-Net puts after each frozen CLIP encoder (paper Sec. 3.1)."""
from torch import nn

ADAPTER_ACTIVATIONS = {'gelu': nn.GELU, 'relu': nn.ReLU, 'silu': nn.SiLU, 'tanh': nn.Tanh}
#: The release's adapter names (``ad_imageEncoder.adapter.0.weight``) and ours (``image_adapter.0.weight``).
RELEASE_ADAPTER_PREFIXES = {'ad_imageEncoder.adapter.': 'image_adapter.', 'ad_textEncoder.adapter.': 'text_adapter.'}


def adapters_from_release(learnable_params):
    """The image and text adapters of a release state (``ad_*Encoder.adapter.*`` keys) under our names; other
    keys are left out."""
    converted = {}
    for key, value in learnable_params.items():
        for old, new in RELEASE_ADAPTER_PREFIXES.items():
            if key.startswith(old):
                converted[new + key[len(old):]] = value
    return converted


class ClipAdapter(nn.Sequential):
    """Linear -> LayerNorm -> act -> Linear -> LayerNorm -> act -> Linear -> LayerNorm, width ``dim`` throughout.

    Indices 0, 1, 3, 4, 6, 7 hold the weights, as in the release's ``ad_*Encoder.adapter``.

    Args:
        dim (int): Width of the CLIP embedding (512 for ViT-B-32).
        activation (str): 'gelu' (the release's), 'relu', 'silu' or 'tanh'. Default: 'gelu'.
    """

    def __init__(self, dim=512, activation='gelu'):
        if activation not in ADAPTER_ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ADAPTER_ACTIVATIONS)}, got {activation!r}")
        act = ADAPTER_ACTIVATIONS[activation]
        super().__init__(
            nn.Linear(dim, dim), nn.LayerNorm(dim), act(),
            nn.Linear(dim, dim), nn.LayerNorm(dim), act(),
            nn.Linear(dim, dim), nn.LayerNorm(dim))
