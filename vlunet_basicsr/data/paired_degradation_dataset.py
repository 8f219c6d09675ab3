"""Validation and test pairs with a degradation label."""
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY
from vlunet_basicsr.data.degradations import add_gaussian_noise, noise_rng
from vlunet_basicsr.data.image_source import ImageSource, to_sample
from vlunet_basicsr.utils.option_values import expect, option, problems_of, raise_problems


@DATASET_REGISTRY.register()
class PairedDegradationDataset(data.Dataset):
    """One paired set, or one clean set with deterministic Gaussian noise, returned at full size.

    Option keys (``OPTION_DEFAULTS``; values checked by `option_problems`): those of `ImageSource` (name, label,
    text, dataroot_gt, dataroot_lq or noise_sigma, io_backend, meta_info_file, filename_tmpl), plus:
        noise_seed (int): With noise_sigma: the noise of an image depends only on (noise_seed, image key,
            sigma), not on order, workers or machine; rounded to 8 bits. Default: 0.
        crop_to_multiple (int | None): Crop so sides are multiples of this (the papers' legacy test cropping,
            e.g. 16). Default: None (full size; the model pads).
        crop_centered (bool): With crop_to_multiple: keep the centred window, as the PromptIR family's test
            scripts (``crop_img``) do, instead of the top-left one. Default: False.

    A sample: ``lq``, ``gt`` (float CHW RGB in [0, 1]), ``label``, ``text``, ``lq_path``, ``gt_path``, ``source``.
    """

    OPTION_DEFAULTS = {**ImageSource.OPTION_DEFAULTS, 'noise_seed': 0, 'crop_to_multiple': None, 'crop_centered': False}

    @classmethod
    def option_problems(cls, opt):
        """Problems of the dataset's options (``'key: ...'``, without ``datasets.<phase>``); [] when valid."""
        return ImageSource.option_problems(opt, cls.__name__) + problems_of(
            expect('noise_seed', option(opt, cls.OPTION_DEFAULTS, 'noise_seed'), 'int', minimum=0),
            expect('crop_to_multiple', opt.get('crop_to_multiple'), 'int', minimum=1, nullable=True),
            expect('crop_centered', option(opt, cls.OPTION_DEFAULTS, 'crop_centered'), 'bool'))

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        where = f"datasets.{opt.get('phase', 'val')} ({opt.get('name', 'unnamed')})"
        raise_problems(where, self.option_problems(opt))
        self.source = ImageSource(opt, where)
        self.noise_seed = option(opt, self.OPTION_DEFAULTS, 'noise_seed')
        self.crop_to_multiple = opt.get('crop_to_multiple')
        self.crop_centered = option(opt, self.OPTION_DEFAULTS, 'crop_centered')

    def __len__(self):
        return len(self.source)

    def __getitem__(self, index):
        record = self.source.read(index)
        gt, lq = record['gt'], record['lq']
        if lq is None:
            sigma = self.source.noise_sigma
            lq = add_gaussian_noise(gt, sigma, noise_rng(self.noise_seed, record['key'], sigma))
        if self.crop_to_multiple:
            m = int(self.crop_to_multiple)
            h, w = gt.shape[:2]
            top, left = ((h % m) // 2, (w % m) // 2) if self.crop_centered else (0, 0)
            window = (slice(top, top + h - h % m), slice(left, left + w - w % m))
            gt, lq = gt[window], lq[window]
        return to_sample(gt, lq, self.source, record)
