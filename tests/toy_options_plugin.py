"""Test plugin (YAML `plugins`): another package's arch that declares its options, which the checks then enforce."""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.tools.options.spec import Option


@ARCH_REGISTRY.register()
class ToyDeclaredNet(nn.Module):
    """One conv.

    Args:
        channels (int): Width of the hidden features. Default: 8.
    """

    OPTIONS = (Option('channels', 'int', 8, 'Width of the hidden features.', minimum=1),)

    def __init__(self, channels=8):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, channels, 3, padding=1), nn.Conv2d(channels, 3, 3, padding=1))

    def forward(self, x):
        return x + self.body(x)
