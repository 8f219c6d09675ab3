"""Every workaround that basicsr 1.4.2 needs on torch 2.x / torchvision >= 0.17, in one place.

`apply()` runs when ``vlunet_basicsr`` is imported, before anything of the plugin imports basicsr. Each fix names
the failure it prevents; ``tests/test_compat.py`` has one test per fix that fails without it. Features that basicsr
lacks live in their own modules, and `apply` only puts them where basicsr calls its own versions.

1. ``import basicsr`` fails: ``torchvision.transforms.functional_tensor`` was removed (alias it).
2. ``--launcher pytorch`` hard-codes nccl and divides by ``torch.cuda.device_count()`` (0 on CPU):
   see `vlunet_basicsr.utils.distributed.init_dist`.
3. DDP is built with ``device_ids=[torch.cuda.current_device()]``, which fails on CPU: see `model_to_device`.
4. Resume maps every tensor with ``.cuda()``: see `vlunet_basicsr.utils.resume.load_resume_state`.
5. ``--auto_resume`` looks in ``./experiments`` instead of the experiment root: see the same.
6. Only Adam is accepted as optimizer: see `get_optimizer`.
7. Test mode raises KeyError without ``val.suffix``: `vlunet_basicsr.tools.options.parse_options` sets it.
8. ``torch.distributed.launch`` passes ``--local-rank``: accepted by `vlunet_basicsr_cli.parsers.pipeline_parser`.
9. ``basicsr export`` of SwinIR restores a batch of another size than the traced one wrongly: its
   ``window_reverse`` computes the batch with a float division, which ``torch.export`` fixes to the traced batch
   (see `swinir_window_reverse`).

Fixes 2, 7 and 8 concern basicsr's option parsing, which this plugin's commands do not use: ``basicsr train|test``
parse the command line once and the options with `vlunet_basicsr.tools.options.pipeline.parse_options` (which calls
`init_dist`), and hand them to basicsr's pipeline (`vlunet_basicsr.tools.pipelines`); those fixes live there, in
the tools, not here. Fixes 4 and 5 take effect through ``train_pipeline``'s ``load_resume_state``, replaced as a
module attribute of ``basicsr.train`` (its only caller). Fixes 3 and 6 are methods of ``BaseModel`` and are patched
there, because users also run basicsr's own ``SRModel`` with our archs.
"""
import importlib
import sys

import torch

_FUNCTIONAL_TENSOR = 'torchvision.transforms.functional_tensor'
_applied = False


def alias_functional_tensor():
    """Fix 1: ``basicsr.data.degradations`` imports ``rgb_to_grayscale`` from a module torchvision 0.17 removed.

    The function moved to ``torchvision.transforms.functional`` with the same signature.
    """
    if _FUNCTIONAL_TENSOR in sys.modules:
        return
    try:
        importlib.import_module(_FUNCTIONAL_TENSOR)
    except ModuleNotFoundError:
        import torchvision.transforms.functional as functional
        sys.modules[_FUNCTIONAL_TENSOR] = functional


def model_to_device(self, net):
    """Fix 3: ``BaseModel.model_to_device`` without CUDA ``device_ids`` when the model lives on the CPU.

    Replaces basicsr's method, which passes ``device_ids=[torch.cuda.current_device()]`` unconditionally.
    ``find_unused_parameters`` is read from the top-level YAML key as before.
    """
    from torch.nn.parallel import DataParallel, DistributedDataParallel
    net = net.to(self.device)
    if self.opt['dist']:
        device_ids = [torch.cuda.current_device()] if self.device.type == 'cuda' else None
        net = DistributedDataParallel(
            net, device_ids=device_ids, find_unused_parameters=self.opt.get('find_unused_parameters', False))
    elif self.opt['num_gpu'] > 1:
        net = DataParallel(net)
    return net


def get_optimizer(self, optim_type, params, lr, **kwargs):
    """Fix 6: accept every ``torch.optim`` optimizer by class name (``AdamW`` is the paper's), not only Adam."""
    optimizer_class = getattr(torch.optim, optim_type, None)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        known = sorted(name for name, obj in vars(torch.optim).items()
                       if isinstance(obj, type) and issubclass(obj, torch.optim.Optimizer) and name != 'Optimizer')
        raise ValueError(f"train.optim_*.type '{optim_type}' is not a torch.optim optimizer; known: {', '.join(known)}")
    return optimizer_class(params, lr, **kwargs)


def swinir_window_reverse(windows, window_size, h, w):
    """Fix 9: basicsr's ``swinir_arch.window_reverse`` with the batch in integer arithmetic.

    ``int(windows.shape[0] / (h * w / window_size / window_size))`` turns the symbolic batch into a float, so
    the exported graph keeps the traced batch and scrambles the windows of any other; same values eagerly.
    """
    b = windows.shape[0] // ((h // window_size) * (w // window_size))
    x = windows.view(b, h // window_size, w // window_size, window_size, window_size, -1)
    return x.permute(0, 1, 3, 2, 4, 5).contiguous().view(b, h, w, -1)


def apply():
    """Apply every fix once. Safe to call repeatedly."""
    global _applied
    if _applied:
        return
    alias_functional_tensor()
    import basicsr.test
    import basicsr.train
    from basicsr.models.base_model import BaseModel
    from vlunet_basicsr.utils.resume import load_resume_state
    basicsr.train.load_resume_state = load_resume_state
    BaseModel.model_to_device = model_to_device
    BaseModel.get_optimizer = get_optimizer
    import basicsr.archs.swinir_arch
    basicsr.archs.swinir_arch.window_reverse = swinir_window_reverse
    _applied = True
