"""The one image decoder of the package: datasets (folders and LMDBs) and ``basicsr restore`` read through it.

`decode_image` turns the bytes of an image file into RGB float32 in [0, 1] plus what is needed to write a
result like the input (alpha channel, grayscale flag, bit depth), and refuses with a ValueError naming the file
what it cannot trust: an empty file, a JPEG or PNG cut short (see `image_integrity` for the rule), anything
OpenCV cannot decode, and sample types other than 8 and 16 bit. `encode_like` is its inverse for results.
`header_size` reads an image's size from its header alone, for limits checked before any decoding.
"""
import io
from collections import namedtuple

import cv2
import numpy as np

from vlunet_basicsr.utils.image_extensions import IMAGE_EXTENSIONS
from vlunet_basicsr.utils.image_integrity import encoded_image_problem

DecodedImage = namedtuple('DecodedImage', ['rgb', 'alpha', 'is_gray', 'dtype'])
DecodedImage.__doc__ = """rgb: float32 HxWx3 in [0, 1]; alpha: the alpha plane as stored, or None; is_gray: the
file has one colour channel; dtype: numpy.uint8 or numpy.uint16 (the file's bit depth)."""


def decode_image(content, path):
    """Decode the bytes of an image file (8/16-bit gray, gray+alpha, RGB, RGBA; any format OpenCV reads).

    Args:
        content (bytes | None): The file's content.
        path (str): Shown in errors.

    Returns:
        DecodedImage: ``rgb``, ``alpha``, ``is_gray`` and ``dtype``.

    Raises:
        ValueError: Empty, truncated, corrupt or not an image, or an unsupported sample type; names ``path``.
    """
    if content is not None and not isinstance(content, bytes):
        content = bytes(content)
    problem = encoded_image_problem(content or b'')
    if problem:
        raise ValueError(f'cannot decode image {path}: {problem}')
    try:
        raw = cv2.imdecode(np.frombuffer(content, np.uint8), cv2.IMREAD_UNCHANGED)
    except cv2.error as error:
        raise ValueError(f'cannot decode image {path}: the file is corrupt, truncated or not an image '
                         f'(OpenCV: {str(error).strip().splitlines()[-1]})') from error
    if raw is None:
        raise ValueError(f'cannot decode image {path}: the file is corrupt, truncated or not an image')
    if raw.dtype not in (np.uint8, np.uint16):
        raise ValueError(f'cannot decode image {path}: unsupported sample type {raw.dtype} (8- or 16-bit images only)')
    alpha = None
    if raw.ndim == 3 and raw.shape[2] in (2, 4):
        raw, alpha = raw[..., :-1], raw[..., -1]
    is_gray = raw.ndim == 2 or raw.shape[2] == 1
    rgb = np.repeat(raw.reshape(*raw.shape[:2], 1), 3, axis=2) if is_gray else raw[..., ::-1]
    return DecodedImage(rgb.astype(np.float32) / float(np.iinfo(raw.dtype).max), alpha, is_gray, raw.dtype)


def header_size(content, path):
    """The (width, height) of an encoded image of one of `IMAGE_EXTENSIONS`' formats, read from its header only.

    The pixels are not decoded, whatever the size says: Pillow's format plugins are called directly, as
    ``PIL.Image.open`` does, but without its decompression-bomb check, which raises above 2 x
    ``Image.MAX_IMAGE_PIXELS`` before telling the size (the caller applies its own limit).

    Args:
        content (bytes): The file's content.
        path (str): Shown in errors.

    Returns:
        tuple[int, int]: Width and height.

    Raises:
        ValueError: No known format's header could be read; names ``path``.
    """
    from PIL import Image
    if not content:
        raise ValueError(f'cannot decode image {path}: the file is empty (0 bytes)')
    Image.init()
    extensions = Image.registered_extensions()
    formats = dict.fromkeys(extensions[ext] for ext in IMAGE_EXTENSIONS if ext in extensions)
    for name in formats:
        factory, accept = Image.OPEN[name]
        if accept and not accept(content[:16]):
            continue
        try:
            with factory(io.BytesIO(content), path) as header:
                return header.size
        except (SyntaxError, OSError, ValueError, IndexError, TypeError, EOFError) as error:
            raise ValueError(f'cannot decode image {path}: its {name} header cannot be read: the file is corrupt, '
                             f'truncated or not an image ({error})') from error
    raise ValueError(f'cannot decode image {path}: not a {"/".join(formats)} file (its first bytes are '
                     f'{bytes(content[:8])!r})')


def read_image_file(path):
    """`decode_image` of the file at ``path``; OSError when it cannot be read, ValueError when it cannot be decoded."""
    with open(path, 'rb') as f:
        return decode_image(f.read(), path)


def encode_like(rgb, alpha, is_gray, dtype):
    """A result (RGB float HxWx3) as the array to write for an input decoded as ``alpha``, ``is_gray``, ``dtype``:
    the same bit depth, gray when the input was, the input's alpha plane appended unchanged (BGR order for cv2)."""
    image = np.rint(np.clip(rgb, 0, 1) * float(np.iinfo(dtype).max)).astype(dtype)
    image = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) if is_gray else np.ascontiguousarray(image[..., ::-1])
    if alpha is not None:
        image = np.dstack([image, alpha])
    return image
