"""Finding clean/degraded pairs in the folder layouts of the public dataset releases.

Each layout function takes the release's folder (or list file) and returns ``(pairs, problems)``: pairs
``(key, gt_path, lq_path or None)`` sorted by key, and a description of every image it could not pair.
"""
import os
import os.path as osp
import re

from vlunet_basicsr.data.image_source import IMAGE_EXTENSIONS, image_key

#: Image counts of the public splits, checked before anything is written.
KNOWN_COUNTS = {
    'bsd400': {'train': 400},
    'wed': {'train': 4744},
    'cbsd68': {'test': 68},
    'urban100': {'test': 100},
    'sots_outdoor': {'test': 500},
    'rain100l': {'train': 200, 'test': 100},
    'gopro': {'train': 2103, 'test': 1111},
    'lol': {'train': 485, 'test': 15},
}


def _images_under(root):
    found = []
    for folder, _, names in os.walk(root):
        found += [osp.join(folder, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def _require_dir(path, what):
    if not osp.isdir(path):
        raise FileNotFoundError(f'{what} folder not found: {path}')


def clean_images(root):
    """BSD400, WED, CBSD68, Urban100: every image under ``root`` is a clean image (key: its name)."""
    _require_dir(root, 'image')
    pairs, problems, seen = [], [], {}
    for path in _images_under(root):
        key = image_key(path)
        if key in seen:
            problems.append(f'two images share the name {key}: {seen[key]} and {path}')
        seen[key] = path
        pairs.append((key, path, None))
    return pairs, problems


def _match(degraded, clean, degraded_what, clean_what):
    """Pair ``degraded`` [(key, clean key, path)] with ``clean`` {clean key: path}; report what stays alone."""
    pairs, problems, used = [], [], set()
    for key, clean_key, path in sorted(degraded):
        if clean_key in clean:
            pairs.append((key, clean[clean_key], path))
            used.add(clean_key)
        else:
            problems.append(f'{degraded_what} {path} has no {clean_what}')
    problems += [f'{clean_what} {clean[k]} has no {degraded_what}' for k in sorted(set(clean) - used)]
    return pairs, problems


def _find_dir(root, names):
    for name in names:
        if osp.isdir(osp.join(root, name)):
            return osp.join(root, name)
    raise FileNotFoundError(f"{root} has none of the folders {', '.join(names)}")


def hazy_clear(root):
    """SOTS-outdoor and RESIDE-OTS: ``hazy/0001_0.8_0.2.jpg`` pairs with ``gt/0001.png`` (or ``clear/``).

    Key: the hazy image's name (several hazy images may share one clear image).
    """
    _require_dir(root, 'dataset')
    hazy_dir, clear_dir = _find_dir(root, ('hazy', 'haze')), _find_dir(root, ('gt', 'GT', 'clear', 'clean'))
    hazy = [(image_key(p), image_key(p).split('_')[0], p) for p in _images_under(hazy_dir)]
    clear = {image_key(p): p for p in _images_under(clear_dir)}
    return _match(hazy, clear, 'hazy image', 'clear image')


def rain100l(root):
    """Rain100L: ``rain-001.png`` pairs with ``norain-001.png`` anywhere under ``root`` (key: ``001``)."""
    _require_dir(root, 'dataset')
    rainy, clean = [], {}
    for path in _images_under(root):
        match = re.fullmatch(r'(no)?rain-(.+)', image_key(path))
        if match and match.group(1):
            clean[match.group(2)] = path
        elif match:
            rainy.append((match.group(2), match.group(2), path))
    return _match(rainy, clean, 'rainy image', 'norain image')


def gopro(root):
    """GoPro: ``GOPR0384_11_00/blur/000001.png`` pairs with ``.../sharp/000001.png``.

    Key: ``GOPR0384_11_00_000001`` (sequence and frame).
    """
    _require_dir(root, 'dataset')
    blurry, sharp = [], {}
    for folder, subdirs, _ in os.walk(root):
        if 'blur' in subdirs and 'sharp' in subdirs:
            sequence = osp.basename(folder)
            for path in _images_under(osp.join(folder, 'blur')):
                key = f'{sequence}_{image_key(path)}'
                blurry.append((key, key, path))
            sharp.update({f'{sequence}_{image_key(p)}': p for p in _images_under(osp.join(folder, 'sharp'))})
    return _match(blurry, sharp, 'blurry image', 'sharp image')


def lol(root):
    """LOL: ``low/1.png`` pairs with ``high/1.png`` (e.g. ``eval15/low`` and ``eval15/high``)."""
    _require_dir(root, 'dataset')
    low, high = [], {}
    for folder, subdirs, _ in os.walk(root):
        if 'low' in subdirs and 'high' in subdirs:
            low += [(image_key(p), image_key(p), p) for p in _images_under(osp.join(folder, 'low'))]
            high.update({image_key(p): p for p in _images_under(osp.join(folder, 'high'))})
    return _match(low, high, 'low-light image', 'normal-light image')


def paths_list(list_file):
    """The release's ``*_paths.txt``: ``degraded, clean`` per line (relative to the list's folder or absolute)."""
    if not osp.isfile(list_file):
        raise FileNotFoundError(f'paths list not found: {list_file}')
    base = osp.dirname(osp.abspath(list_file))
    pairs, problems, keys = [], [], set()
    with open(list_file) as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = [p.strip() for p in line.split(',')]
            if len(parts) != 2:
                problems.append(f'{list_file}:{number}: expected "degraded, clean", got {line.strip()!r}')
                continue
            lq, gt = (p if osp.isabs(p) else osp.join(base, p) for p in parts)
            missing = [p for p in (lq, gt) if not osp.isfile(p)]
            if missing:
                problems.append(f'{list_file}:{number}: missing {", ".join(missing)}')
                continue
            key = image_key(lq)
            if key in keys:
                key = f'{key}_{number}'
            keys.add(key)
            pairs.append((key, gt, lq))
    return sorted(pairs), problems


LAYOUTS = {
    'bsd400': clean_images,
    'wed': clean_images,
    'cbsd68': clean_images,
    'urban100': clean_images,
    'sots_outdoor': hazy_clear,
    'reside_ots': hazy_clear,
    'rain100l': rain100l,
    'gopro': gopro,
    'lol': lol,
    'paths_txt': paths_list,
}
