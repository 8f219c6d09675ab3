"""Test plugin: a VLUNetModel that also writes every rank's final weights, to compare ranks after DDP training."""
import os.path as osp

import torch

from basicsr.utils.registry import MODEL_REGISTRY
from vlunet_basicsr.models.vlunet_model import VLUNetModel


@MODEL_REGISTRY.register()
class RankWeightsVLUNetModel(VLUNetModel):

    def save(self, epoch, current_iter):
        super().save(epoch, current_iter)
        if current_iter == -1:
            state = self.get_bare_model(self.net_g).state_dict()
            torch.save(state, osp.join(self.opt['path']['experiments_root'], f"rank{self.opt['rank']}_final.pth"))
