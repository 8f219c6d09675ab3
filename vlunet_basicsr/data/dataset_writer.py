"""Writing image sets in the layouts the datasets read: BasicSR LMDBs (gt.lmdb / lq.lmdb) or gt/ lq/ folders."""
import os
import os.path as osp
import shutil

import cv2
from tqdm import tqdm

from basicsr.utils.lmdb_util import LmdbMaker


def prepare_output(paths, overwrite):
    """Refuse to replace existing outputs unless ``overwrite``; then remove them."""
    existing = [p for p in paths if osp.exists(p)]
    if existing and not overwrite:
        raise FileExistsError(f'{", ".join(existing)} already exist(s); pass --overwrite to replace')
    for path in existing:
        shutil.rmtree(path) if osp.isdir(path) else os.remove(path)


def _png_bytes(path, compress_level):
    image = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ValueError(f'cannot read image {path}')
    ok, encoded = cv2.imencode('.png', image, [cv2.IMWRITE_PNG_COMPRESSION, compress_level])
    if not ok:
        raise ValueError(f'cannot encode {path} as PNG')
    shape = image.shape if image.ndim == 3 else (*image.shape, 1)
    return encoded.tobytes(), shape


def write_pairs(pairs, output_dir, fmt='lmdb', overwrite=False, compress_level=1, progress=True):
    """Write ``pairs`` [(key, gt_path, lq_path or None)] under ``output_dir`` as gt/lq LMDBs or PNG folders.

    GT and LQ get identical keys (file names ``<key>.png`` in folders). LQ is written only when every pair
    has one. Returns the paths written ({'gt': ..., 'lq': ...}).
    """
    with_lq = all(lq is not None for _, _, lq in pairs)
    suffix = '.lmdb' if fmt == 'lmdb' else ''
    targets = {'gt': osp.join(output_dir, f'gt{suffix}')}
    if with_lq:
        targets['lq'] = osp.join(output_dir, f'lq{suffix}')
    prepare_output(targets.values(), overwrite)
    os.makedirs(output_dir, exist_ok=True)
    columns = {'gt': 1, 'lq': 2}
    for part, target in targets.items():
        items = tqdm(pairs, desc=f'{part} -> {target}', unit='img', disable=not progress)
        if fmt == 'lmdb':
            maker = LmdbMaker(target, compress_level=compress_level)
            for pair in items:
                content, shape = _png_bytes(pair[columns[part]], compress_level)
                maker.put(content, pair[0], shape)
            maker.close()
        elif fmt == 'folder':
            os.makedirs(target)
            for pair in items:
                content, _ = _png_bytes(pair[columns[part]], compress_level)
                with open(osp.join(target, f'{pair[0]}.png'), 'wb') as f:
                    f.write(content)
        else:
            raise ValueError(f"format must be 'lmdb' or 'folder', got {fmt!r}")
    return targets
