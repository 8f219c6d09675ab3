"""Validation and test pairs with a degradation label."""
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY
from vlunet_basicsr.data.degradations import add_gaussian_noise, noise_rng
from vlunet_basicsr.data.image_source import ImageSource, to_sample
from vlunet_basicsr.tools.options.spec import Option


@DATASET_REGISTRY.register()
class PairedDegradationDataset(data.Dataset):
    """One paired set, or one clean set with deterministic Gaussian noise, returned at full size.

    Option keys: those of `ImageSource` (name, label, text, dataroot_gt, dataroot_lq or noise_sigma,
    io_backend, meta_info_file, filename_tmpl), plus:
        noise_seed (int): With noise_sigma: the noise of an image depends only on (noise_seed, image key,
            sigma), not on order, workers or machine; rounded to 8 bits. Default: 0.
        crop_to_multiple (int | None): Crop the bottom/right so sides are multiples of this (the papers' legacy
            test cropping, e.g. 16). Default: None (full size; the model pads).

    A sample: ``lq``, ``gt`` (float CHW RGB in [0, 1]), ``label``, ``text``, ``lq_path``, ``gt_path``, ``source``.
    """

    OPTIONS = ImageSource.OPTIONS + (
        Option('noise_seed', 'int', 0, 'Seed of the deterministic noise of each image.', minimum=0),
        Option('crop_to_multiple', 'int', None, 'Crop so that sides are multiples of this.', minimum=1),
    )

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.source = ImageSource(opt, f"datasets.{opt.get('phase', 'val')} ({opt.get('name', 'unnamed')})")
        self.noise_seed = opt.get('noise_seed', 0)
        self.crop_to_multiple = opt.get('crop_to_multiple')

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
            gt, lq = gt[:h - h % m, :w - w % m], lq[:h - h % m, :w - w % m]
        return to_sample(gt, lq, self.source, record)
