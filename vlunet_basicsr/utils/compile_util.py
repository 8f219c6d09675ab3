"""The ``compile`` option (``val.compile``, ``--compile``): torch.compile as the option asks."""
import torch


def compile_arguments(option, where='val.compile'):
    """torch.compile's keyword arguments for a ``compile`` option: None when it is false or None, {} when true,
    the mapping itself (``mode``, ``dynamic``, ``backend``, ...) when it is one."""
    if option is None or option is False:
        return None
    if option is True:
        return {}
    if not isinstance(option, dict):
        raise ValueError(f'{where} must be true, false or a mapping of torch.compile arguments; got {option!r}')
    return dict(option)


def compiled(net, option, where='val.compile'):
    """``net`` under ``torch.compile`` as the ``compile`` option asks (see `compile_arguments`), else ``net``."""
    arguments = compile_arguments(option, where)
    return net if arguments is None else torch.compile(net, **arguments)
