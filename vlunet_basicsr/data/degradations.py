"""Seeded Gaussian noise, the one rule for synthesising noisy inputs from clean images."""
import hashlib

import numpy as np


def noise_rng(noise_seed, image_key, sigma):
    """A generator that depends only on (noise_seed, image key, sigma): same image, same noise, everywhere."""
    digest = hashlib.sha256(f'{noise_seed}|{image_key}|{float(sigma)}'.encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], 'little'))


def add_gaussian_noise(image, sigma, rng):
    """Add N(0, sigma) noise on the 8-bit scale to a float image in [0, 1], rounded (not truncated) to 8 bits.

    Args:
        image (ndarray): float32 HxWxC in [0, 1] (an 8-bit image divided by 255).
        sigma (float): Standard deviation on the 0-255 scale (15, 25, 50 in the paper).
        rng: Anything with ``normal(loc, scale, size)``: `noise_rng` for fixed test noise, ``np.random``
            (seeded per worker by BasicSR) for training.

    Returns:
        ndarray: float32 HxWxC in [0, 1], a multiple of 1/255.
    """
    noisy = np.rint(image.astype(np.float64) * 255.0 + rng.normal(0.0, sigma, image.shape))
    return (np.clip(noisy, 0, 255) / 255.0).astype(np.float32)


# Synthetic degradations for the demo (float32 HxWx3 RGB in [0, 1] in, same out; rng: np.random.Generator).

def smooth_field(shape, rng, scale=0.15):
    """A smooth random field in [0, 1] (low-frequency noise plus a vertical trend), e.g. a synthetic depth map."""
    import cv2
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
    import cv2
    kernel = np.zeros((length, length), np.float32)
    kernel[length // 2, :] = 1
    rotation = cv2.getRotationMatrix2D((length / 2 - 0.5, length / 2 - 0.5), angle_degrees, 1.0)
    kernel = cv2.warpAffine(kernel, rotation, (length, length))
    return kernel / kernel.sum()


def add_rain(image, rng):
    """Rain streaks: sparse drops smeared along one direction, screen-blended over the image."""
    import cv2
    h, w = image.shape[:2]
    drops = (rng.random((h, w)) < rng.uniform(0.01, 0.02)).astype(np.float32) * rng.uniform(0.6, 1.0, (h, w))
    length = int(rng.integers(9, 17))
    streaks = cv2.filter2D(drops, -1, _line_kernel(length, rng.uniform(60, 120)), borderType=cv2.BORDER_REFLECT)
    streaks = np.clip(streaks * length * 0.45, 0, 1)[..., None].astype(np.float32)
    return (1 - (1 - image) * (1 - streaks)).astype(np.float32)


def add_motion_blur(image, rng):
    """Horizontal camera-shake motion blur: a 7 or 9 px line kernel within 3 degrees of horizontal."""
    import cv2
    kernel = _line_kernel(int(rng.choice([7, 9])), rng.uniform(-3, 3))
    return np.clip(cv2.filter2D(image, -1, kernel, borderType=cv2.BORDER_REFLECT), 0, 1).astype(np.float32)


def add_low_light(image, rng):
    """Low light: gamma darkening, scaling and a little sensor noise, rounded to 8 bits."""
    dark = np.power(image, rng.uniform(1.6, 2.2)) * rng.uniform(0.25, 0.4)
    noisy = dark + rng.normal(0, 0.01, image.shape)
    return (np.clip(np.rint(noisy * 255), 0, 255) / 255).astype(np.float32)
