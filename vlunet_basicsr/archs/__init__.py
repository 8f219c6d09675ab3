from vlunet_basicsr.utils.registry_util import import_modules_with_suffix

_modules = import_modules_with_suffix(__name__, __file__, '_arch')
