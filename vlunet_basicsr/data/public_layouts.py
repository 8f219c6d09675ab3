"""Finding clean/degraded pairs in the folder layouts of the public dataset releases.

Each layout function of `LAYOUTS` takes the release's folder (or list or .mat file) and returns
``(pairs, problems)``: pairs ``(key, gt, lq or None)`` sorted by key (``gt`` and ``lq`` are file paths, or RGB
arrays for `sidd_val_blocks`), and a description of every image it could not pair. A layout of
`SCENE_LAYOUTS` (CDD-11) returns ``(sets, problems)`` instead: ``{set name: [(key, path)]}``, every set with the
same keys (one scene each). `find_sets` gives every layout in the second form.
"""
import os
import os.path as osp
import re

from vlunet_basicsr.data.image_source import IMAGE_EXTENSIONS, image_key, list_image_files
from vlunet_basicsr.utils.prompts import CDD11_TYPES

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
    # CDD-11 (OneRestore, Guo et al., ECCV 2024, arXiv 2407.04621; github.com/gy65896/OneRestore): 13,013
    # training and 2,200 test pairs, i.e. 1,183 and 200 scenes, each in clear/ and in all 11 degradation folders.
    'cdd11': {'train': 1183, 'test': 200},
    # SIDD validation (ValidationNoisyBlocksSrgb.mat): 40 images x 32 blocks of 256x256.
    'sidd_val_blocks': {'test': 1280},
}
#: What one counted item of a layout is, for messages. Default: 'images'.
COUNT_UNITS = {'cdd11': 'scenes', 'sidd_val_blocks': 'blocks'}


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


def input_target(root):
    """MPRNet's, Restormer's and DGUNet's published layout: ``input/`` with ``target/`` (SIDD: ``groundtruth/``).

    The two folders hold the same file names; key: the name without extension.
    """
    _require_dir(root, 'dataset')
    input_dir, target_dir = _find_dir(root, ('input',)), _find_dir(root, ('target', 'groundtruth'))
    inputs, problems = _images_by_key(input_dir, 'input image')
    targets, target_problems = _images_by_key(target_dir, 'target image')
    pairs, unmatched = _match([(key, key, path) for key, path in inputs.items()], targets, 'input image',
                              f'{osp.basename(target_dir)} image')
    return pairs, problems + target_problems + unmatched


def _images_by_key(folder, what):
    """{key: path} of the images directly in ``folder``, and a problem for each key two files share."""
    found, problems = {}, []
    for name in list_image_files(folder, what):
        key = image_key(name)
        if key in found:
            problems.append(f'two {what}s share the name {key}: {found[key]} and {osp.join(folder, name)}')
        found.setdefault(key, osp.join(folder, name))
    return found, problems


SIDD_MAT_FILES = {'lq': ('ValidationNoisyBlocksSrgb.mat', 'ValidationNoisyBlocksSrgb'),
                  'gt': ('ValidationGtBlocksSrgb.mat', 'ValidationGtBlocksSrgb')}


def _load_mat_blocks(path, variable):
    import numpy as np
    from scipy.io import loadmat, whosmat
    if not osp.isfile(path):
        raise FileNotFoundError(f'SIDD block file not found: {path}')
    try:
        content = loadmat(path, variable_names=[variable])
    except (NotImplementedError, ValueError, OSError) as error:
        raise ValueError(f'cannot read {path} with scipy.io.loadmat: {error}') from error
    if variable not in content:
        names = sorted(entry[0] for entry in whosmat(path))
        raise ValueError(f'{path} has no variable {variable!r} (it holds {names})')
    blocks = content[variable]
    if blocks.ndim != 5 or blocks.shape[-1] != 3 or blocks.dtype != np.uint8:
        raise ValueError(f'{path}: {variable} must be a uint8 array of shape (images, blocks, height, width, 3), '
                         f'got {blocks.dtype} {blocks.shape}')
    return blocks


def sidd_val_blocks(root):
    """SIDD validation: ``ValidationNoisyBlocksSrgb.mat`` and ``ValidationGtBlocksSrgb.mat`` in ``root``.

    Each holds a uint8 RGB array (40, 32, 256, 256, 3) under its own name; block ``j`` of image ``i`` gets the
    key ``iiii_jj`` (``0000_00`` ... ``0039_31``). The two arrays must have the same shape.
    """
    _require_dir(root, 'SIDD validation')
    blocks = {part: _load_mat_blocks(osp.join(root, name), variable)
              for part, (name, variable) in SIDD_MAT_FILES.items()}
    if blocks['gt'].shape != blocks['lq'].shape:
        raise ValueError(f"{osp.join(root, SIDD_MAT_FILES['lq'][0])} holds blocks of shape {blocks['lq'].shape} "
                         f"but {osp.join(root, SIDD_MAT_FILES['gt'][0])} holds {blocks['gt'].shape}; "
                         'they must be the same')
    images, per_image = blocks['gt'].shape[:2]
    pairs = [(f'{i:04d}_{j:02d}', blocks['gt'][i, j], blocks['lq'][i, j])
             for i in range(images) for j in range(per_image)]
    return pairs, []


def cdd11(root):
    """CDD-11 (OneRestore's release): ``clear/`` and the 11 folders of `CDD11_TYPES` with the same file names.

    ``root`` is one split's folder (e.g. ``CDD-11_train``). Returns ``({'clear': [(key, path)], 'haze': ...},
    problems)``: the sets in label order after ``clear``, each with every key; a problem for each missing
    folder and for each name that is not in ``clear/`` and in all 11 folders.
    """
    _require_dir(root, 'CDD-11')
    if not osp.isdir(osp.join(root, 'clear')):
        raise FileNotFoundError(f"{root} has no clear/ folder; point INPUT at one split's folder (the one "
                                f"holding clear/ and {', '.join(CDD11_TYPES)})")
    clear, problems = _images_by_key(osp.join(root, 'clear'), 'clear image')
    sets = {'clear': sorted(clear.items())}
    for name in CDD11_TYPES:
        folder = osp.join(root, name)
        if not osp.isdir(folder):
            problems.append(f'missing folder {folder}')
            continue
        images, duplicates = _images_by_key(folder, f'{name} image')
        problems += duplicates
        problems += [f'clear image {clear[key]} has no {name} image in {folder}'
                     for key in sorted(set(clear) - set(images))]
        problems += [f'{name} image {images[key]} has no clear image' for key in sorted(set(images) - set(clear))]
        sets[name] = sorted(images.items())
    return sets, problems


def find_sets(layout, source):
    """``(sets, problems)`` of any layout: ``{set name: [(key, image)]}`` with the same keys in every set.

    Pair layouts give ``gt`` and, when every image has a degraded version, ``lq``.
    """
    if layout in SCENE_LAYOUTS:
        return SCENE_LAYOUTS[layout](source)
    if layout not in LAYOUTS:
        raise ValueError(f'unknown layout {layout!r}; known: {", ".join(sorted(LAYOUTS) + sorted(SCENE_LAYOUTS))}')
    pairs, problems = LAYOUTS[layout](source)
    sets = {'gt': [(key, gt) for key, gt, _ in pairs]}
    if pairs and all(lq is not None for _, _, lq in pairs):
        sets['lq'] = [(key, lq) for key, _, lq in pairs]
    return sets, problems


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
    'input_target': input_target,
    'sidd_val_blocks': sidd_val_blocks,
}
#: Layouts of several degraded versions per scene, written as one LMDB (or folder) per set.
SCENE_LAYOUTS = {
    'cdd11': cdd11,
}
