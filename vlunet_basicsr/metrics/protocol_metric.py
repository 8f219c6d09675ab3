"""The papers' evaluation protocol: PSNR and SSIM on float RGB outputs clipped to [0, 1] (not 8-bit).

The restoration model passes float32 HxWx3 RGB arrays in [0, 1] to these two metrics; BasicSR's own
``calculate_psnr`` / ``calculate_ssim`` keep receiving 8-bit images, side by side.
"""
import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from basicsr.utils.registry import METRIC_REGISTRY

#: Metric types that receive float images (see `vlunet_basicsr.models.restoration_metrics`).
FLOAT_METRICS = ('calculate_psnr_float', 'calculate_ssim_float')


def _prepare(img, img2, crop_border):
    img = np.clip(np.asarray(img, dtype=np.float64), 0, 1)
    img2 = np.clip(np.asarray(img2, dtype=np.float64), 0, 1)
    if img.shape != img2.shape:
        raise ValueError(f'image shapes differ: {img.shape} and {img2.shape}')
    if crop_border:
        img = img[crop_border:-crop_border, crop_border:-crop_border]
        img2 = img2[crop_border:-crop_border, crop_border:-crop_border]
    return img, img2


@METRIC_REGISTRY.register()
def calculate_psnr_float(img, img2, crop_border=0, **kwargs):
    """PSNR (dB) with skimage's ``peak_signal_noise_ratio(data_range=1)``.

    Args:
        img (ndarray): Restored image, float HxWxC RGB (clipped to [0, 1] here).
        img2 (ndarray): Reference image, same shape.
        crop_border (int): Pixels cut from each edge. Default: 0.
    """
    img, img2 = _prepare(img, img2, crop_border)
    return float(peak_signal_noise_ratio(img2, img, data_range=1))


#: skimage's default SSIM window: images need at least this many pixels on each side (after ``crop_border``).
SSIM_MIN_SIZE = 7


@METRIC_REGISTRY.register()
def calculate_ssim_float(img, img2, crop_border=0, **kwargs):
    """SSIM with skimage's ``structural_similarity(data_range=1, channel_axis=-1)`` (default 7x7 uniform window).

    Raises:
        ValueError: An image side is under `SSIM_MIN_SIZE` pixels (after ``crop_border``).
    """
    img, img2 = _prepare(img, img2, crop_border)
    if min(img.shape[:2]) < SSIM_MIN_SIZE:
        cropped = f' after crop_border {crop_border}' if crop_border else ''
        raise ValueError(f'SSIM needs images of at least {SSIM_MIN_SIZE}x{SSIM_MIN_SIZE} pixels (its window); '
                         f'got {img.shape[0]}x{img.shape[1]}{cropped}')
    return float(structural_similarity(img2, img, data_range=1, channel_axis=-1))
