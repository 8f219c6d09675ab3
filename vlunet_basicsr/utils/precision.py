"""The precision policy ``amp`` shared by training (``train.amp``), validation and testing (``val.amp``),
``basicsr restore --amp`` and scripts/benchmark.py.

``none`` runs in float32. ``bf16`` / ``fp16`` run the network and its CLIP guidance under ``torch.autocast``:
convolutions and matrix products in half precision, what autocast keeps in float32 (softmax, norms on CUDA)
in float32. Outputs are returned as float32 either way.
"""
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


def autocast(device, dtype):
    """``torch.autocast`` on ``device``'s type in ``dtype``; a no-op when ``dtype`` is None."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=dtype or torch.bfloat16, enabled=dtype is not None)


def accumulation_dtype(dtype):
    """The dtype in which outputs of ``dtype`` are summed (tile blending, self-ensemble): float32 at least, as
    sums in bf16 or fp16 would add a rounding of their own at every term."""
    return torch.promote_types(dtype, torch.float32)
