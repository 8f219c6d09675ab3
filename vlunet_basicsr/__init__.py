"""VLU-Net for BasicSR: importing this package applies the basicsr compat fixes and registers every class."""
from vlunet_basicsr import compat

compat.apply()

from vlunet_basicsr import archs, data, losses, metrics, models  # noqa: E402,F401  (registers the classes)

__version__ = '0.1.0'
