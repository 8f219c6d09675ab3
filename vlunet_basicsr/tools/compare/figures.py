"""The comparison's figures: an image grid per test set (degraded | each system | clean) and a PSNR bar chart."""
import os.path as osp

import cv2
import numpy as np

from vlunet_basicsr.utils.plot_util import plt, save_image_grid


def _rgb(tensor):
    return tensor.permute(1, 2, 0).numpy()


def restored_path(root, system, set_name, image_name):
    """Where a test run saved a restored image (``val.suffix`` is ~, so the suffix is the run name)."""
    return osp.join(root, 'results', system, 'visualization', set_name, f'{image_name}_{system}.png')


def save_grids(root, datasets, systems):
    """One PNG per test set (``grid_<set>.png``): its first image degraded, restored by each system (grey when
    it has no result) and clean.

    Args:
        root (str): The compare output folder (the runs' results are under ``root/results``).
        datasets (dict): The test sets' options (phase -> options with ``phase`` set).
        systems (list[str]): The systems, in column order.

    Returns:
        dict: {set name: path relative to ``root``}.
    """
    from basicsr.data import build_dataset
    paths = {}
    for phase in sorted(datasets):
        dataset = build_dataset(datasets[phase])
        name = datasets[phase]['name']
        sample = dataset[0]
        image_name = osp.splitext(osp.basename(sample['lq_path']))[0]
        lq = _rgb(sample['lq'])
        columns, titles = [lq], ['degraded']
        for system in systems:
            saved = cv2.imread(restored_path(root, system, name, image_name), cv2.IMREAD_COLOR)
            columns.append(np.full_like(lq, 0.5) if saved is None else saved[..., ::-1].astype(np.float32) / 255)
            titles.append(system if saved is not None else f'{system} (no result)')
        columns.append(_rgb(sample['gt']))
        relative = f'grid_{name}.png'
        save_image_grid([(f'{name}: {image_name}', columns)], titles + ['clean'], osp.join(root, relative))
        paths[name] = relative
    return paths


def save_psnr_chart(psnr, path):
    """Grouped bars of PSNR: one group per test set (and the average), one bar per system.

    Args:
        psnr (dict): {system: {set: PSNR}} (sets in the same order for every system; None is drawn as 0).
        path (str): The PNG to write.
    """
    systems = list(psnr)
    sets = list(next(iter(psnr.values()))) if psnr else []
    width = 0.8 / max(1, len(systems))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.1 * len(sets) * max(1, len(systems)) ** 0.5 + 2), 4))
    for k, system in enumerate(systems):
        values = [psnr[system][s] or 0.0 for s in sets]
        bars = ax.bar(np.arange(len(sets)) + (k - (len(systems) - 1) / 2) * width, values, width, label=system)
        ax.bar_label(bars, fmt='%.1f', fontsize=6)
    ax.set_xticks(range(len(sets)), sets, rotation=30, ha='right', fontsize=8)
    ax.set_ylabel('PSNR (dB)')
    ax.set_title('PSNR per test set (float RGB protocol)', fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
