"""The precision policy ``amp`` shared by training (``train.amp``), validation and testing (``val.amp``),
``basicsr restore --amp`` and scripts/benchmark.py.

``none`` runs in float32. ``bf16`` / ``fp16`` run the network and its CLIP guidance in half precision
(`precision_scope`): the modules' floating parameters and buffers are cast once per call into the half type
(`lowered`; the float32 tensors stay the masters that the optimizer updates, gradients flow back through the
casts in float32), so activations stay in half precision from operator to operator, and ``torch.autocast``
stays on as the safety net for tensors a forward creates in float32. The attention's norms, Gram matrices
and softmax (`vlunet_basicsr.archs.restormer_ops`), DGUNet's subspace projection and norms, and the losses run
in float32. Outputs are returned as float32 either way. docs/precision.md has the policy and its measurements.

bf16 on a CPU without bf16 instructions (oneDNN's ``_is_mkldnn_bf16_supported``) or on a GPU without bf16 is
emulated and slower than float32: `supported_dtype` says so once, naming the option, and runs float32.
"""
import contextlib
import warnings
import weakref

import torch

AMP_DTYPES = {'none': None, 'bf16': torch.bfloat16, 'fp16': torch.float16}


def amp_dtype(amp, where='amp'):
    """The autocast dtype for an ``amp`` value (None or 'none' -> None); ``where`` names the option in errors."""
    if amp is None:
        return None
    if amp not in AMP_DTYPES:
        raise ValueError(f"{where} must be one of {', '.join(AMP_DTYPES)}; got {amp!r}")
    return AMP_DTYPES[amp]


def train_amp_dtype(amp, where='train.amp'):
    """Like `amp_dtype`, for training: fp16 would need loss scaling, which VLUNetModel does not do."""
    dtype = amp_dtype(amp, where)
    if dtype is torch.float16:
        raise ValueError(f"{where}: fp16 training needs loss scaling, which VLUNetModel does not do; use bf16 "
                         '(same speed on GPUs that have it, and no overflow)')
    return dtype


def bf16_supported(device):
    """Whether ``device`` runs bf16 arithmetic natively (CPU: avx512_bf16 or AMX, as oneDNN reports; CUDA: the
    GPU's bf16 support)."""
    device = torch.device(device)
    if device.type == 'cpu':
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    if device.type == 'cuda':
        return torch.cuda.is_bf16_supported(including_emulation=False)
    return True


_WARNED = set()


def supported_dtype(dtype, device, where='amp'):
    """``dtype``, or None (float32) with one warning naming ``where`` when ``device`` has no bf16 arithmetic."""
    if dtype is not torch.bfloat16 or bf16_supported(device):
        return dtype
    key = (where, torch.device(device).type)
    if key not in _WARNED:
        _WARNED.add(key)
        warnings.warn(f'{where} bf16: this {torch.device(device).type.upper()} has no native bf16 arithmetic (it '
                      'would be emulated, slower than float32); running float32', RuntimeWarning, stacklevel=2)
    return None


#: Casts of tensors that get no gradient, by the tensor's id: (weak reference, (dtype, version), cast), kept
#: while the tensor lives and is unchanged (a WeakKeyDictionary would compare tensors with ``==``).
_CASTS = {}


def _cast(tensor, dtype):
    if torch.is_grad_enabled() and tensor.requires_grad:
        return tensor.to(dtype)  # differentiable: the gradient reaches the float32 master
    key = id(tensor)
    cached = _CASTS.get(key)
    if cached is None or cached[0]() is not tensor or cached[1] != (dtype, tensor._version):
        ref = weakref.ref(tensor, lambda _, key=key: _CASTS.pop(key, None))
        cached = _CASTS[key] = (ref, (dtype, tensor._version), tensor.detach().to(dtype))
    return cached[2]


@contextlib.contextmanager
def lowered(modules, dtype):
    """Inside, the floating float32 parameters and buffers of ``modules`` are their ``dtype`` casts (each cast
    once, tied tensors once); on leaving the float32 tensors are back in place.

    A parameter that needs a gradient is cast inside autograd, so ``backward`` accumulates its gradient, in
    float32, into the float32 master; one that needs none is cast once and reused while it is unchanged.
    """
    swapped, casts = [], {}
    try:
        for module in modules:
            for sub in module.modules():
                for store in (sub._parameters, sub._buffers):
                    for name, tensor in store.items():
                        if tensor is None or tensor.dtype != torch.float32:
                            continue
                        if id(tensor) not in casts:
                            casts[id(tensor)] = _cast(tensor, dtype)
                        swapped.append((store, name, tensor))
                        store[name] = casts[id(tensor)]
        yield
    finally:
        for store, name, tensor in reversed(swapped):
            store[name] = tensor


@contextlib.contextmanager
def precision_scope(device, dtype, *modules):
    """The ``amp`` policy for code that runs ``modules``: nothing for float32 (None); else autocast in
    ``dtype`` with the modules `lowered` to it. Modules that are not ``torch.nn.Module`` (exported graphs'
    runners) are left alone."""
    if dtype is None:
        yield
        return
    with autocast(device, dtype), lowered([m for m in modules if isinstance(m, torch.nn.Module)], dtype):
        yield


def autocast(device, dtype):
    """``torch.autocast`` on ``device``'s type in ``dtype``; a no-op when ``dtype`` is None."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)
