"""Synthetic degradations of the demo's photographs (used only by scripts/run_demo.py).

Each takes a float32 HxWx3 RGB image in [0, 1] and a ``np.random.Generator`` and returns the same kind of image.
Gaussian noise, which training and testing also synthesise, is `vlunet_basicsr.data.degradations`.
"""
import cv2
import numpy as np


def smooth_field(shape, rng, scale=0.15):
    """A smooth random field in [0, 1] (low-frequency noise plus a vertical trend), e.g. a synthetic depth map."""
    h, w = shape
    coarse = rng.random((max(2, int(h * scale / 8)), max(2, int(w * scale / 8)))).astype(np.float32)
    field = cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    field = 0.5 * field + 0.5 * np.linspace(1, 0, h, dtype=np.float32)[:, None]
    return (field - field.min()) / max(float(field.max() - field.min()), 1e-6)


def add_haze(image, rng):
    """Atmospheric scattering model I = J t + A (1 - t), t = exp(-beta * depth) with a smooth synthetic depth."""
    depth = smooth_field(image.shape[:2], rng)
    beta, airlight = rng.uniform(1.2, 2.2), rng.uniform(0.75, 0.95)
    t = np.exp(-beta * depth)[..., None]
    return np.clip(image * t + airlight * (1 - t), 0, 1).astype(np.float32)


def _line_kernel(length, angle_degrees):
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_degrees, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / kernel.sum()


def add_rain(image, rng):
    """Rain streaks: sparse drops smeared along one direction, screen-blended over the image."""
    h, w = image.shape[:2]
    drops = (rng.random((h, w)) < rng.uniform(0.01, 0.02)).astype(np.float32) * rng.uniform(0.6, 1.0, (h, w))
    length = int(rng.integers(9, 17))
    streaks = cv2.filter2D(drops, -1, _line_kernel(length, rng.uniform(60, 120)), borderType=cv2.BORDER_REFLECT)
    streaks = np.clip(streaks * length * 0.45, 0, 1)[..., None].astype(np.float32)
    return (1 - (1 - image) * (1 - streaks)).astype(np.float32)


def add_motion_blur(image, rng):
    """Horizontal camera-shake motion blur: a 7 or 9 px line kernel within 3 degrees of horizontal."""
    kernel = _line_kernel(int(rng.choice([7, 9])), rng.uniform(-3, 3))
    return np.clip(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT), 0, 1).astype(np.float32)


def add_low_light(image, rng):
    """Low light: gamma darkening, scaling and a little sensor noise, rounded to 8 bits."""
    dark = np.power(image, rng.uniform(1.6, 2.2)) * rng.uniform(0.25, 0.4)
    noisy = dark + rng.normal(0, 0.01, image.shape)
    return (np.clip(np.rint(noisy * 255), 0, 255) / 255).astype(np.float32)
