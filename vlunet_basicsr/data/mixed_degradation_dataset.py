"""The all-in-one training mix: several degradation sources in one dataset."""
import math
import multiprocessing
import random

import numpy as np
from torch.utils import data

from basicsr.data.transforms import augment
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import get_dist_info
from basicsr.utils.registry import DATASET_REGISTRY
from vlunet_basicsr.data.degradations import add_gaussian_noise, noise_rng
from vlunet_basicsr.data.image_source import ImageSource, to_sample
from vlunet_basicsr.tools.options.spec import REQUIRED, Option


def _pad_to_at_least(image, size):
    h, w = image.shape[:2]
    pad_h, pad_w = max(0, size - h), max(0, size - w)
    if pad_h == 0 and pad_w == 0:
        return image
    mode = 'reflect' if pad_h < h and pad_w < w else 'edge'
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def _allocate(total, weights):
    """Split ``total`` samples in proportion to ``weights`` (largest remainder, so the counts add up)."""
    shares = np.asarray(weights, dtype=np.float64) / float(sum(weights)) * total
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts))[:total - counts.sum()]:
        counts[i] += 1
    return counts


class BadSampleTracker:
    """Bad samples seen by every DataLoader worker of this rank (shared memory survives fork and spawn).

    Each bad image is logged once; the number skipped is logged whenever this rank has drawn a whole epoch.
    """

    def __init__(self, num_images, samples_per_epoch, name):
        self.name = name
        self.samples_per_epoch = samples_per_epoch
        self.logged = multiprocessing.Array('b', num_images)
        self.draws = multiprocessing.Value('q', 0)
        self.skipped = multiprocessing.Value('q', 0)

    def bad(self, image_id, error):
        with self.skipped.get_lock():
            self.skipped.value += 1
        with self.logged.get_lock():
            first = not self.logged[image_id]
            self.logged[image_id] = 1
        if first:
            get_root_logger().warning(f'{self.name}: skipping a bad sample (skip_bad_samples: true): {error}')

    def drawn(self):
        with self.draws.get_lock():
            self.draws.value += 1
            epochs_done, remainder = divmod(self.draws.value, self.samples_per_epoch)
        if remainder == 0:
            with self.skipped.get_lock():
                count, self.skipped.value = self.skipped.value, 0
            get_root_logger().info(f'{self.name}: epoch {epochs_done} done on this rank; {count} bad samples skipped')


@DATASET_REGISTRY.register()
class MixedDegradationDataset(data.Dataset):
    """Training mix of degradation sources (paired sets, or clean sets with on-the-fly Gaussian noise).

    Option keys:
        name (str): Shown in logs.
        sources (list[dict]): Each an `ImageSource` (name, label, text, dataroot_gt, dataroot_lq or noise_sigma,
            io_backend, meta_info_file, filename_tmpl) plus ``repeat`` (int, default 1) or, with
            ``sampling: balanced``, ``weight`` (float, default 1).
        sampling (str): 'repeat' (each source ``repeat`` times per epoch, the release's recipe) or 'balanced'
            (``samples_per_epoch`` samples split by ``weight``). Default: 'repeat'.
        samples_per_epoch (int): Balanced only. Default: the total number of source images.
        sampling_seed (int): Balanced only: which images fill each source's share. Default: 0.
        gt_size (int | None): Side of the random training crop (paired crop for paired sets); None gives full
            images without flips or rotations (for validation over every source at once, e.g. adapter accuracy).
        noise_seed (int | None): Fixed noise per (seed, image, sigma) as in PairedDegradationDataset, instead of
            fresh training noise. Default: None.
        pad_if_smaller (bool): Reflect-pad images smaller than gt_size (else fail naming the image). Default: True.
        use_hflip (bool): Random horizontal flips. Default: True.
        use_rot (bool): Random vertical flips and 90-degree rotations. Default: True.
        skip_bad_samples (bool): Instead of failing on an unreadable, corrupt or mismatched image, log it once,
            use the next good sample, and log how many were skipped at the end of each epoch. Default: False.

    A sample: ``lq``, ``gt`` (float CHW RGB in [0, 1]), ``label`` (int), ``text`` (str), ``lq_path``, ``gt_path``
    and ``source`` (the source's name). Training noise is drawn from ``np.random`` (seeded per worker by BasicSR).
    """

    SOURCE_OPTIONS = ImageSource.OPTIONS + (
        Option('repeat', 'int', 1, "sampling 'repeat': times per epoch.", minimum=0),
        Option('weight', 'float', 1.0, "sampling 'balanced': share of each epoch.", minimum=0),
    )
    OPTIONS = (
        Option('sources', 'list[dict]', REQUIRED, 'The degradation sources.', entries=SOURCE_OPTIONS,
               entry_owner='a source'),
        Option('sampling', 'str', 'repeat', 'How sources fill an epoch.', choices=('repeat', 'balanced')),
        Option('samples_per_epoch', 'int', None, 'Balanced only: samples per epoch.', minimum=1),
        Option('sampling_seed', 'int', 0, 'Balanced only: which images fill each share.', minimum=0),
        Option('gt_size', 'int', REQUIRED, 'Side of the random training crop; ~ for full images.', minimum=1,
               nullable=True),
        Option('noise_seed', 'int', None, 'Fixed noise per (seed, image, sigma) instead of fresh noise.', minimum=0),
        Option('pad_if_smaller', 'bool', True, 'Reflect-pad images smaller than gt_size.'),
        Option('use_hflip', 'bool', True, 'Random horizontal flips.'),
        Option('use_rot', 'bool', True, 'Random vertical flips and 90-degree rotations.'),
        Option('skip_bad_samples', 'bool', False, 'Skip unreadable or corrupt images (each logged once).'),
    )

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        phase = opt.get('phase', 'train')
        sources = opt.get('sources')
        if not sources:
            raise ValueError(f'datasets.{phase}.sources: a non-empty list of sources is required')
        self.sources = [ImageSource(s, f"datasets.{phase}.sources[{i}] ({s.get('name', 'unnamed')})")
                        for i, s in enumerate(sources)]
        if 'gt_size' not in opt:
            raise ValueError(f'datasets.{phase}.gt_size (training crop size, or ~ for full images) is required')
        self.gt_size = None if opt['gt_size'] is None else int(opt['gt_size'])
        self.pad_if_smaller = opt.get('pad_if_smaller', True)
        self.use_hflip = opt.get('use_hflip', self.gt_size is not None)
        self.use_rot = opt.get('use_rot', self.gt_size is not None)
        self.noise_seed = opt.get('noise_seed')
        self.index = self._build_index(opt, sources, phase)
        self._log_mix(opt.get('name', phase))
        self.tracker = None
        if opt.get('skip_bad_samples', False):
            _, world_size = get_dist_info()
            per_rank = math.ceil(len(self) * opt.get('dataset_enlarge_ratio', 1) / world_size)
            self.image_offsets = np.cumsum([0] + [len(src) for src in self.sources])
            self.tracker = BadSampleTracker(int(self.image_offsets[-1]), per_rank, opt.get('name', phase))

    def _build_index(self, opt, sources_opt, phase):
        sampling = opt.get('sampling', 'repeat')
        if sampling == 'repeat':
            parts = [np.stack([np.full(len(src) * int(s.get('repeat', 1)), i),
                               np.tile(np.arange(len(src)), int(s.get('repeat', 1)))], axis=1)
                     for i, (src, s) in enumerate(zip(self.sources, sources_opt))]
        elif sampling == 'balanced':
            total = int(opt.get('samples_per_epoch', sum(len(src) for src in self.sources)))
            counts = _allocate(total, [float(s.get('weight', 1.0)) for s in sources_opt])
            rng = np.random.default_rng(opt.get('sampling_seed', 0))
            parts = []
            for i, (src, count) in enumerate(zip(self.sources, counts)):
                order = rng.permutation(len(src))
                parts.append(np.stack([np.full(count, i), np.resize(order, count)], axis=1))
        else:
            raise ValueError(f"datasets.{phase}.sampling must be 'repeat' or 'balanced', got {sampling!r}")
        return np.concatenate(parts).astype(np.int64)

    def source_counts(self):
        """Samples per epoch of each source, in source order."""
        return np.bincount(self.index[:, 0], minlength=len(self.sources)).tolist()

    def _log_mix(self, name):
        counts = self.source_counts()
        lines = [f'{name}: {len(self)} samples per epoch from {len(self.sources)} sources']
        for source, count in zip(self.sources, counts):
            lines.append(f'\t{source.name} (label {source.label}, "{source.text}"): {len(source)} images, '
                         f'{count} samples, {100.0 * count / len(self):.1f}%')
        get_root_logger().info('\n'.join(lines))

    def __len__(self):
        return len(self.index)

    def _crop(self, images, record):
        size = self.gt_size
        if size is None:
            return images
        h, w = images[0].shape[:2]
        if h < size or w < size:
            if not self.pad_if_smaller:
                raise ValueError(f'{record["gt_path"]} is {w}x{h}, smaller than gt_size {size} '
                                 '(set pad_if_smaller: true to pad it)')
            images = [_pad_to_at_least(image, size) for image in images]
            h, w = images[0].shape[:2]
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        return [image[top:top + size, left:left + size] for image in images]

    def __getitem__(self, index):
        if self.tracker is None:
            return self._sample(index)
        for attempt in range(len(self)):
            candidate = (index + attempt) % len(self)
            try:
                sample = self._sample(candidate)
            except (ValueError, OSError, KeyError) as error:
                source_index, image_index = self.index[candidate]
                self.tracker.bad(int(self.image_offsets[source_index] + image_index), error)
                continue
            self.tracker.drawn()
            return sample
        raise RuntimeError(f"{self.opt.get('name')}: every sample is bad; nothing to train on")

    def _sample(self, index):
        source_index, image_index = self.index[index]
        source = self.sources[source_index]
        record = source.read(int(image_index))
        if record['lq'] is None:
            gt, = self._crop([record['gt']], record)
            sigma = source.noise_sigma
            sigma = random.choice(sigma) if isinstance(sigma, (list, tuple)) else sigma
            rng = np.random if self.noise_seed is None else noise_rng(self.noise_seed, record['key'], sigma)
            lq = add_gaussian_noise(gt, sigma, rng)
        else:
            gt, lq = self._crop([record['gt'], record['lq']], record)
        gt, lq = augment([gt, lq], self.use_hflip, self.use_rot)
        return to_sample(np.ascontiguousarray(gt), np.ascontiguousarray(lq), source, record)
