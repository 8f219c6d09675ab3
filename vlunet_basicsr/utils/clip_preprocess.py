"""The one CLIP preprocessing, used for adapter tuning, restoration training, testing and inference.

The release used three different preprocessings (PIL resize in the dataset, a tensor resize at
training time, another at test time); this project uses this one everywhere.
"""
import torch
from torch.nn import functional as F


def clip_input(images, size, mean, std):
    """Turn images in [0, 1] into CLIP input, on the images' device and without leaving autograd.

    Resize the shorter side to ``size`` (bicubic, antialiased, clamped back to [0, 1]), center-crop to
    ``size`` x ``size``, normalise with CLIP's mean and std. Single-channel images are repeated to RGB.

    Args:
        images (Tensor): (B, C, H, W) with C = 1 or 3, values in [0, 1].
        size (int): The CLIP model's input size (224 for ViT-B-32).
        mean, std (Sequence[float] | Tensor): Per-channel normalisation (3 values each).

    Returns:
        Tensor: (B, 3, size, size).
    """
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f'expected images of shape (B, 1 or 3, H, W), got {tuple(images.shape)}')
    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    h, w = images.shape[-2:]
    scale = size / min(h, w)
    new_h, new_w = max(size, round(h * scale)), max(size, round(w * scale))
    resized = F.interpolate(images.float(), size=(new_h, new_w), mode='bicubic', align_corners=False,
                            antialias=True).clamp_(0, 1)
    top, left = (new_h - size) // 2, (new_w - size) // 2
    cropped = resized[..., top:top + size, left:left + size]
    mean = torch.as_tensor(mean, dtype=cropped.dtype, device=cropped.device).view(1, 3, 1, 1)
    std = torch.as_tensor(std, dtype=cropped.dtype, device=cropped.device).view(1, 3, 1, 1)
    return (cropped - mean) / std
