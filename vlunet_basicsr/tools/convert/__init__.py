"""Checkpoint conversion: one module per system (``<system>_checkpoint.py``, each registering its layouts in
`CHECKPOINT_LAYOUT_REGISTRY`) behind one dispatch, `convert_checkpoint`."""
from vlunet_basicsr.tools.convert.conversion import CHECKPOINT_LAYOUT_REGISTRY, Conversion, ConvertedPart  # noqa: F401
from vlunet_basicsr.tools.convert.dispatch import convert_checkpoint, convert_loaded_checkpoint  # noqa: F401
from vlunet_basicsr.utils.registry_util import import_modules_with_suffix

_modules = import_modules_with_suffix(__name__, __file__, '_checkpoint')
