"""Writing image sets in the layouts the datasets read: BasicSR LMDBs (gt.lmdb / lq.lmdb, or one per named set such
as clear.lmdb + haze.lmdb) or PNG folders."""
import os
import os.path as osp
import shutil

import cv2
import numpy as np
from tqdm import tqdm

from basicsr.utils.lmdb_util import LmdbMaker
from vlunet_basicsr.utils.output_names import existing_outputs_problem


def prepare_output(paths, overwrite):
    """Refuse to replace existing outputs unless ``overwrite`` (the policy of `existing_outputs_problem`); then
    remove them."""
    problem = existing_outputs_problem(paths, overwrite)
    if problem:
        raise FileExistsError(problem)
    for path in [p for p in paths if osp.lexists(p)]:
        shutil.rmtree(path) if osp.isdir(path) and not osp.islink(path) else os.remove(path)  # a link, not its target


def _png_bytes(image, compress_level, key):
    """PNG bytes and (h, w, c) of ``image``: a file path, or a uint8/uint16 RGB (HxWx3) or grey (HxW) array."""
    if isinstance(image, np.ndarray):
        if image.dtype not in (np.uint8, np.uint16) or image.ndim not in (2, 3) or (
                image.ndim == 3 and image.shape[2] != 3):
            raise ValueError(f'image {key}: expected a uint8 or uint16 HxWx3 (RGB) or HxW array, got '
                             f'{image.dtype} {image.shape}')
        where = f'image {key}'
        image = np.ascontiguousarray(image[..., ::-1] if image.ndim == 3 else image)
    else:
        where = image
        image = cv2.imread(where, cv2.IMREAD_UNCHANGED)
        if image is None:
            raise ValueError(f'cannot read image {where}')
    ok, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise ValueError(f'cannot encode {where} as PNG')
    shape = image.shape if image.ndim == 3 else (*image.shape, 1)
    return encoded.tobytes(), shape


def write_pairs(pairs, output_dir, fmt='lmdb', overwrite=False, compress_level=1, progress=True):
    """Write ``pairs`` [(key, gt, lq or None)] under ``output_dir`` as gt/lq LMDBs or PNG folders.

    ``gt`` and ``lq`` are file paths or arrays (see `write_sets`). GT and LQ get identical keys (file names
    ``<key>.png`` in folders). LQ is written only when every pair has one. Returns the paths written
    ({'gt': ..., 'lq': ...}).
    """
    sets = {'gt': [(key, gt) for key, gt, _ in pairs]}
    if all(lq is not None for _, _, lq in pairs):
        sets['lq'] = [(key, lq) for key, _, lq in pairs]
    return write_sets(sets, output_dir, fmt, overwrite, compress_level, progress)


def write_sets(sets, output_dir, fmt='lmdb', overwrite=False, compress_level=1, progress=True):
    """Write named image sets under ``output_dir``: ``<name>.lmdb`` (BasicSR LMDB) or ``<name>/`` PNG folders.

    Args:
        sets (dict): ``{name: [(key, image)]}``; an image is a file path or a uint8/uint16 RGB (HxWx3) or grey
            (HxW) array. Sets of one scene layout share their keys (e.g. ``clear`` and ``haze``).
        output_dir (str): Folder of the sets (created).
        fmt (str): 'lmdb' or 'folder'. Default: 'lmdb'.
        overwrite (bool): Replace existing outputs; otherwise any existing one is refused before anything is
            written. Default: False.
        compress_level (int): PNG compression level (0-9). Default: 1.
        progress (bool): Show a progress bar per set. Default: True.

    Returns:
        dict: ``{name: path written}``, in the order of ``sets``.
    """
    if fmt not in ('lmdb', 'folder'):
        raise ValueError(f"format must be 'lmdb' or 'folder', got {fmt!r}")
    suffix = '.lmdb' if fmt == 'lmdb' else ''
    targets = {name: osp.join(output_dir, f'{name}{suffix}') for name in sets}
    prepare_output(targets.values(), overwrite)
    os.makedirs(output_dir, exist_ok=True)
    for name, target in targets.items():
        items = tqdm(sets[name], desc=f'{name} -> {target}', unit='img', disable=not progress)
        if fmt == 'lmdb':
            maker = LmdbMaker(target, compress_level=compress_level)
            for key, image in items:
                content, shape = _png_bytes(image, compress_level, key)
                maker.put(content, key, shape)
            maker.close()
        else:
            os.makedirs(target)
            for key, image in items:
                content, _ = _png_bytes(image, compress_level, key)
                with open(osp.join(target, f'{key}.png'), 'wb') as f:
                    f.write(content)
    return targets
