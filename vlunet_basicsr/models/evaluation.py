"""Sharded evaluation: each rank takes its share of a validation or test set; sums are reduced over the ranks.

Used by the restoration models (metrics per image) and by `CLIPAdapterModel` (classification counts).
"""
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm


class ShardedEvaluation:
    """One pass over an evaluation set, split over ``world_size`` ranks.

    Rank r takes images r, r + world_size, ... (batch size 1; alone, the loader as it is), so every image is
    evaluated once; `sum` adds a tensor of totals over the ranks, `gather` collects lists (e.g. messages for rank
    0 to log: BasicSR's logger only prints errors on the other ranks).

    Args:
        dataloader (DataLoader): The set's loader (its ``dataset.opt['name']`` names the set).
        rank (int): This process's rank.
        world_size (int): Number of ranks.
        device (torch.device): Where the reduction runs (the process group's device).
        progress (bool): Show a progress bar on rank 0. Default: False.
    """

    def __init__(self, dataloader, rank, world_size, device, progress=False):
        self.dataset = dataloader.dataset
        self.name = self.dataset.opt['name']
        self.rank = rank
        self.world_size = world_size
        self.device = device
        self.progress = progress and rank == 0
        if world_size > 1:
            dataloader = DataLoader(Subset(self.dataset, range(rank, len(self.dataset), world_size)), batch_size=1)
        self.dataloader = dataloader

    @property
    def is_main(self):
        return self.rank == 0

    def __iter__(self):
        if not self.progress:
            yield from self.dataloader
            return
        with tqdm(total=len(self.dataloader), unit='image') as bar:
            for batch in self.dataloader:
                yield batch
                bar.update(1)
                bar.set_description(f'{self.name}')

    def gather(self, items):
        """Every rank's ``items`` (a picklable list), in rank order; ``[items]`` when there is one rank."""
        if self.world_size == 1:
            return [items]
        gathered = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, items)
        return gathered

    def sum(self, totals):
        """``totals`` summed over the ranks (a CPU tensor; unchanged when there is one rank)."""
        if self.world_size == 1:
            return totals
        totals = totals.to(self.device)
        torch.distributed.all_reduce(totals)
        return totals.cpu()
