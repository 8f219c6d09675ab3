"""Training on scenes with several degraded versions (CDD-11): one version as input, the others as negatives."""
import numpy as np
import torch

from basicsr.data.transforms import augment
from basicsr.utils.registry import DATASET_REGISTRY
from vlunet_basicsr.data.image_source import to_sample
from vlunet_basicsr.data.mixed_degradation_dataset import (MixedDegradationDataset, sampling_problems,
                                                            source_share_problems)
from vlunet_basicsr.utils.option_values import (REQUIRED, expect, located, missing_key_problems, option,
                                                 problems_of, raise_problems, unknown_key_problems)
from vlunet_basicsr.utils.prompts import PROMPT_SETS, prompt_set

_SAMPLING_KEYS = ('sampling', 'samples_per_epoch', 'sampling_seed', 'gt_size', 'pad_if_smaller', 'use_hflip',
                  'use_rot', 'skip_bad_samples')


@DATASET_REGISTRY.register()
class CompositeDegradationDataset(MixedDegradationDataset):
    """Scenes degraded in several ways (CDD-11): per sample one degraded version as ``lq``, the others as negatives.

    Every degradation type is a set with the keys (scenes) of the clean set: CDD-11 as written by
    ``scripts/prepare_datasets.py cdd11`` is ``clear.lmdb`` plus one LMDB per type (``haze.lmdb``, ...), same
    keys. An epoch holds (type, scene) samples filled as in `MixedDegradationDataset` (``sampling: repeat``:
    each type ``repeat`` times over its scenes; ``balanced``: ``samples_per_epoch`` split by ``weight``), so the
    sampler's shuffling draws a random type per sample. The clean image, the chosen version and every other
    type's version of the same scene get the same random crop, flips and rotations.

    Option keys (``OPTION_DEFAULTS``, ``SOURCE_DEFAULTS`` for each type; values checked by `option_problems`):
        dataroot_gt (str): Folder or ``*.lmdb`` of the clean images (CDD-11: ``clear.lmdb``).
        sources (list[dict]): One per degradation type, each:
            ``name`` (str): the type; with the prompt set's label names (CDD-11's folder names: ``haze``, ``low``,
            ``rain``, ..., ``low_haze_snow``) label and text follow from it.
            ``dataroot_lq`` (str): folder or ``*.lmdb`` of this type's images, with the keys of ``dataroot_gt``.
            ``label`` (int): label (index into the model's prompts). Default: the index of ``name`` in the set.
            ``text`` (str): prompt. Default: the set's prompt of ``label``.
            ``repeat`` (int, default 1) or, with ``sampling: balanced``, ``weight`` (float, default 1): the
            type's share of each epoch as input (0: only ever a negative).
        io_backend (dict): ``{type: disk}`` or ``{type: lmdb}``, for every set. Default: lmdb when dataroot_gt
            ends in ``.lmdb``, else disk.
        prompts (str): The prompt set (`vlunet_basicsr.utils.prompts.PROMPT_SETS`) that labels and words the
            types by name. Default: 'cdd11'.
        with_negatives (bool): Read the scene's other types as ``negatives`` (needs two or more sources); false
            gives plain samples (e.g. for tuning the CLIP adapters, or validation). Default: True.
        sampling (str): 'repeat' or 'balanced', as in `MixedDegradationDataset`. Default: 'repeat'.
        samples_per_epoch (int): Balanced only. Default: the number of (type, scene) pairs.
        sampling_seed (int): Balanced only: which scenes fill each type's share. Default: 0.
        gt_size (int | None): Side of the random crop; None gives full images (no flips or rotations by default).
        pad_if_smaller (bool): Reflect-pad images smaller than gt_size (else fail naming the image). Default: True.
        use_hflip (bool | None): Random horizontal flips. Default: None (true with a gt_size, else false).
        use_rot (bool | None): Random vertical flips and 90-degree rotations. Default: None (as use_hflip).
        skip_bad_samples (bool): Log an unreadable, corrupt or mismatched image once and use the next sample
            instead of failing. Default: False.

    A sample: ``lq``, ``gt`` (float CHW RGB in [0, 1]), ``label`` (int), ``text`` (str), ``lq_path``, ``gt_path``,
    ``source`` (the type's name) and, with ``with_negatives``, ``negatives``: float (N, 3, H, W), the scene's
    other types in source order (N = number of sources - 1; batched (B, N, 3, H, W), for
    `CompositeDegradationLoss`).
    """

    SOURCE_DEFAULTS = {'name': REQUIRED, 'dataroot_lq': REQUIRED, 'label': None, 'text': None,
                       **{key: MixedDegradationDataset.SOURCE_DEFAULTS[key] for key in ('repeat', 'weight')}}
    OPTION_DEFAULTS = {'dataroot_gt': REQUIRED, 'sources': REQUIRED, 'io_backend': None, 'prompts': 'cdd11',
                       'with_negatives': True,
                       **{key: MixedDegradationDataset.OPTION_DEFAULTS[key] for key in _SAMPLING_KEYS}}

    @classmethod
    def option_problems(cls, opt):
        """Problems of the dataset's options (``'key: ...'``, without ``datasets.<phase>``); [] when valid."""
        problems = sampling_problems(opt, cls.OPTION_DEFAULTS, 'CompositeDegradationDataset') + problems_of(
            expect('dataroot_gt', opt.get('dataroot_gt'), 'str', nullable='dataroot_gt' not in opt),
            expect('io_backend', opt.get('io_backend'), 'dict', nullable=True),
            expect('prompts', cls.option(opt, 'prompts'), 'str', choices=tuple(sorted(PROMPT_SETS))),
            expect('with_negatives', cls.option(opt, 'with_negatives'), 'bool'))
        if problems or not opt['sources']:
            return problems or ['sources: a non-empty list of degradation types is required']
        for i, source in enumerate(opt['sources']):
            where = f'sources[{i}]'
            problems += unknown_key_problems(source, cls.SOURCE_DEFAULTS, where, 'a degradation type')
            problems += located(where, missing_key_problems(source, cls.SOURCE_DEFAULTS, '', 'a degradation type'))
            problems += located(where, problems_of(
                expect('name', source.get('name'), 'str', nullable='name' not in source),
                expect('dataroot_lq', source.get('dataroot_lq'), 'str', nullable='dataroot_lq' not in source),
                expect('label', source.get('label'), 'int', minimum=0, nullable=True),
                expect('text', source.get('text'), 'str', nullable=True),
                source_share_problems(source, cls.SOURCE_DEFAULTS)))
        return problems

    def __init__(self, opt):
        where = f"datasets.{opt.get('phase', 'train')}"
        raise_problems(where, self.option_problems(opt))
        entries = opt['sources']
        prompts = prompt_set(self.option(opt, 'prompts'), f'{where}.prompts')
        sources, names = [], set()
        for i, entry in enumerate(entries):
            source = self._source(entry, f'{where}.sources[{i}]', prompts, opt)
            if source['name'] in names:
                raise ValueError(f"{where}.sources[{i}]: the type {source['name']!r} is listed twice")
            names.add(source['name'])
            sources.append(source)
        self.with_negatives = self.option(opt, 'with_negatives')
        if self.with_negatives and len(sources) < 2:
            raise ValueError(f"{where}.with_negatives: true needs two or more degradation types per scene (a sample's "
                             f"negatives are its scene's other types), but {where}.sources lists only "
                             f"{', '.join(repr(source['name']) for source in sources)} "
                             f"({', '.join(str(source['dataroot_lq']) for source in sources)}); list more types or "
                             'set with_negatives: false')
        super().__init__({**opt, 'sources': sources})

    @staticmethod
    def _source(entry, where, prompts, opt):
        """The `ImageSource` options of one degradation type (the clean set is shared)."""
        name = entry['name']
        backend = 'lmdb' if str(opt['dataroot_gt']).rstrip('/').endswith('.lmdb') else 'disk'
        label = entry.get('label')
        if label is None:
            if name not in prompts.names:
                prompt_set_name = option(opt, CompositeDegradationDataset.OPTION_DEFAULTS, 'prompts')
                raise ValueError(f"{where} ({name}): not a type of the prompt set {prompt_set_name!r} "
                                 f'({", ".join(prompts.names)}); set label and text')
            label = prompts.names.index(name)
        text = entry.get('text')
        if text is None:
            if not 0 <= int(label) < len(prompts.prompts):
                raise ValueError(f'{where} ({name}): no prompt for label {label} in the prompt set; set text')
            text = prompts.prompts[int(label)]
        return {'name': name, 'label': int(label), 'text': text, 'dataroot_gt': opt['dataroot_gt'],
                'dataroot_lq': entry['dataroot_lq'], 'io_backend': opt.get('io_backend') or {'type': backend},
                **{key: option(entry, CompositeDegradationDataset.SOURCE_DEFAULTS, key)
                   for key in ('repeat', 'weight')}}

    def _sample(self, index):
        source_index, image_index = (int(value) for value in self.index[index])
        source = self.sources[source_index]
        record = source.read(image_index)
        height, width = record['gt'].shape[:2]
        negatives = []
        for other_index, other in enumerate(self.sources):
            if other_index == source_index or not self.with_negatives:
                continue
            image, path = other.read_lq(image_index)
            if image.shape != record['gt'].shape:
                raise ValueError(f'{other.where}: {path} is {image.shape[1]}x{image.shape[0]} but the clean image '
                                 f"{record['gt_path']} is {width}x{height}; every version of a scene must have "
                                 'its size')
            negatives.append(image)
        images = self._crop([record['gt'], record['lq'], *negatives], record)
        images = augment(images, self.use_hflip, self.use_rot)
        gt, lq = np.ascontiguousarray(images[0]), np.ascontiguousarray(images[1])
        sample = to_sample(gt, lq, source, record)
        if not self.with_negatives:
            return sample
        stacked = np.stack(images[2:]).transpose(0, 3, 1, 2)
        sample['negatives'] = torch.from_numpy(np.ascontiguousarray(stacked, dtype=np.float32))
        return sample
