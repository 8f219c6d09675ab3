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
from vlunet_basicsr.utils.option_values import (REQUIRED, expect, located, missing_key_problems, option,
                                                 problems_of, raise_problems, unknown_key_problems)


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


def sampling_problems(opt, defaults, owner):
    """Problems of the keys that choose, crop and augment the samples of an epoch (shared with
    `CompositeDegradationDataset`), and of required keys missing."""
    return missing_key_problems(opt, defaults, '', owner) + problems_of(
        expect('sources', opt.get('sources'), 'list[dict]', nullable='sources' not in opt),
        expect('sampling', option(opt, defaults, 'sampling'), 'str', choices=('repeat', 'balanced')),
        expect('samples_per_epoch', opt.get('samples_per_epoch'), 'int', minimum=1, nullable=True),
        expect('sampling_seed', option(opt, defaults, 'sampling_seed'), 'int', minimum=0),
        expect('gt_size', opt.get('gt_size'), 'int', minimum=1, nullable=True),
        expect('noise_seed', opt.get('noise_seed'), 'int', minimum=0, nullable=True),
        expect('pad_if_smaller', option(opt, defaults, 'pad_if_smaller'), 'bool'),
        expect('use_hflip', opt.get('use_hflip'), 'bool', nullable=True),
        expect('use_rot', opt.get('use_rot'), 'bool', nullable=True),
        expect('skip_bad_samples', option(opt, defaults, 'skip_bad_samples'), 'bool'))


def source_share_problems(source, defaults):
    """Problems of a source's share of an epoch: ``repeat`` (sampling 'repeat') or ``weight`` ('balanced')."""
    return problems_of(expect('repeat', option(source, defaults, 'repeat'), 'int', minimum=0),
                       expect('weight', option(source, defaults, 'weight'), 'float', minimum=0))


@DATASET_REGISTRY.register()
class MixedDegradationDataset(data.Dataset):
    """Training mix of degradation sources (paired sets, or clean sets with on-the-fly Gaussian noise).

    Option keys (``OPTION_DEFAULTS``, ``SOURCE_DEFAULTS`` for each source; values checked by `option_problems`):
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
        use_hflip (bool | None): Random horizontal flips. Default: None (true with a gt_size, else false).
        use_rot (bool | None): Random vertical flips and 90-degree rotations. Default: None (as use_hflip).
        skip_bad_samples (bool): Instead of failing on an unreadable, corrupt or mismatched image, log it once,
            use the next good sample, and log how many were skipped at the end of each epoch. Default: False.

    A sample: ``lq``, ``gt`` (float CHW RGB in [0, 1]), ``label`` (int), ``text`` (str), ``lq_path``, ``gt_path``
    and ``source`` (the source's name). Training noise is drawn from ``np.random`` (seeded per worker by BasicSR).
    """

    SOURCE_DEFAULTS = {**ImageSource.OPTION_DEFAULTS, 'repeat': 1, 'weight': 1.0}
    OPTION_DEFAULTS = {'sources': REQUIRED, 'sampling': 'repeat', 'samples_per_epoch': None, 'sampling_seed': 0,
                       'gt_size': REQUIRED, 'noise_seed': None, 'pad_if_smaller': True, 'use_hflip': None,
                       'use_rot': None, 'skip_bad_samples': False}

    @classmethod
    def option_problems(cls, opt):
        """Problems of the dataset's options (``'key: ...'``, without ``datasets.<phase>``); [] when valid."""
        problems = sampling_problems(opt, cls.OPTION_DEFAULTS, 'MixedDegradationDataset')
        sources = opt.get('sources')
        if problems or not sources:
            return problems or ['sources: a non-empty list of sources is required']
        for i, source in enumerate(sources):
            where = f'sources[{i}]'
            problems += unknown_key_problems(source, cls.SOURCE_DEFAULTS, where, 'a source')
            share = source_share_problems(source, cls.SOURCE_DEFAULTS)
            problems += located(where, ImageSource.option_problems(source) + share)
        return problems

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        phase = opt.get('phase', 'train')
        raise_problems(f'datasets.{phase}', MixedDegradationDataset.option_problems(opt))
        sources = opt['sources']
        self.sources = [ImageSource(s, f"datasets.{phase}.sources[{i}] ({s.get('name', 'unnamed')})")
                        for i, s in enumerate(sources)]
        self.gt_size = None if opt['gt_size'] is None else int(opt['gt_size'])
        self.pad_if_smaller = self.option(opt, 'pad_if_smaller')
        self.use_hflip, self.use_rot = (self.gt_size is not None if self.option(opt, key) is None else
                                        self.option(opt, key) for key in ('use_hflip', 'use_rot'))
        self.noise_seed = self.option(opt, 'noise_seed')
        self.index = self._build_index(opt, sources)
        self._log_mix(opt.get('name', phase))
        self.tracker = None
        if self.option(opt, 'skip_bad_samples'):
            _, world_size = get_dist_info()
            per_rank = math.ceil(len(self) * opt.get('dataset_enlarge_ratio', 1) / world_size)
            self.image_offsets = np.cumsum([0] + [len(src) for src in self.sources])
            self.tracker = BadSampleTracker(int(self.image_offsets[-1]), per_rank, opt.get('name', phase))

    @classmethod
    def option(cls, opt, key):
        """The value of ``key`` in ``opt``, or its default (``OPTION_DEFAULTS``; a subclass reads the keys it does
        not declare, such as ``noise_seed``, at this class's defaults)."""
        defaults = cls.OPTION_DEFAULTS if key in cls.OPTION_DEFAULTS else MixedDegradationDataset.OPTION_DEFAULTS
        return option(opt, defaults, key)

    def _build_index(self, opt, sources_opt):
        if self.option(opt, 'sampling') == 'repeat':
            repeats = [int(option(s, self.SOURCE_DEFAULTS, 'repeat')) for s in sources_opt]
            parts = [np.stack([np.full(len(src) * repeat, i), np.tile(np.arange(len(src)), repeat)], axis=1)
                     for i, (src, repeat) in enumerate(zip(self.sources, repeats))]
        else:
            total = self.option(opt, 'samples_per_epoch') or sum(len(src) for src in self.sources)
            counts = _allocate(int(total), [float(option(s, self.SOURCE_DEFAULTS, 'weight')) for s in sources_opt])
            rng = np.random.default_rng(self.option(opt, 'sampling_seed'))
            parts = []
            for i, (src, count) in enumerate(zip(self.sources, counts)):
                order = rng.permutation(len(src))
                parts.append(np.stack([np.full(count, i), np.resize(order, count)], axis=1))
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
