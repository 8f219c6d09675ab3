"""VLU-Net and its companions for BasicSR.

Importing this package applies the basicsr compat fixes and registers every arch, dataset, loss, metric and
model, in every process (spawned DataLoader workers included), as Real-ESRGAN's package does. The torch-free
``basicsr`` command lives beside it, in ``vlunet_basicsr_cli``, and imports this package only to run a command.
"""
from vlunet_basicsr import compat

__version__ = '0.1.0'

compat.apply()

from vlunet_basicsr import archs, data, losses, metrics, models  # noqa: E402,F401  (registers the classes)
