"""A toy dataset of three clearly different degradations, registered for the stage-1 test (YAML `plugins`)."""
import torch
from torch.utils import data

from basicsr.utils.registry import DATASET_REGISTRY


@DATASET_REGISTRY.register()
class ToyDegradationDataset(data.Dataset):
    """label 0: white noise; 1: dark smooth image; 2: bright washed-out smooth image. Keys: lq, label, lq_path."""

    def __init__(self, opt):
        self.opt = opt
        self.count = opt.get('count', 24)
        self.size = opt.get('size', 32)

    def __len__(self):
        return self.count

    def __getitem__(self, index):
        generator = torch.Generator().manual_seed(index)
        label = index % 3
        yy, xx = torch.meshgrid(torch.linspace(0, 1, self.size), torch.linspace(0, 1, self.size), indexing='ij')
        phase = torch.rand(3, 1, 1, generator=generator)
        smooth = 0.5 + 0.5 * torch.sin(6 * (xx + yy)[None] + 6 * phase)
        if label == 0:
            image = torch.rand(3, self.size, self.size, generator=generator)
        elif label == 1:
            image = 0.08 * smooth
        else:
            image = 0.75 + 0.25 * smooth
        return {'lq': image, 'label': label, 'lq_path': f'toy_{index}.png'}
