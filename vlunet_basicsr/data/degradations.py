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
