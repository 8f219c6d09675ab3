"""Reference code for tests and benchmarks, not for users: the published arithmetic of each system
(``<system>_release_port.py``), with its network's modules and parameter names so that one state dict loads into
both. Nothing here is in ARCH_REGISTRY; `RELEASE_PORTS` maps each class name to the class."""
from vlunet_basicsr.utils.registry_util import import_modules_with_suffix

RELEASE_PORTS = {port.__name__: port for module in import_modules_with_suffix(__name__, __file__, '_release_port')
                 for port in module.RELEASE_PORTS}
