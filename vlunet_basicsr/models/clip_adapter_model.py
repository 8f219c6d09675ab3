"""Stage 1: tune the CLIP adapters with the contrastive degradation loss."""
import json
import os.path as osp
from collections import OrderedDict

import cv2
import torch
from torch.nn import functional as F

from basicsr.archs import build_network
from basicsr.losses import build_loss
from basicsr.models.base_model import BaseModel
from basicsr.utils import get_root_logger
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from vlunet_basicsr.models.evaluation import ShardedEvaluation
from vlunet_basicsr.models.lr_scheduler import RegisteredSchedulersMixin
from vlunet_basicsr.models.resume_learning_rate import ConfiguredLearningRateMixin
from vlunet_basicsr.models.safe_checkpoint_mixin import SafeCheckpointMixin
from vlunet_basicsr.utils.checkpoint_util import atomic_torch_save, load_weights
from vlunet_basicsr.utils.option_values import REQUIRED, expect, option, problems_of, raise_problems
from vlunet_basicsr.utils.prompts import resolve_prompts


@MODEL_REGISTRY.register()
class CLIPAdapterModel(ConfiguredLearningRateMixin, SafeCheckpointMixin, RegisteredSchedulersMixin, BaseModel):
    """Trains the image and text adapters of ``DegradationCLIP`` (and the loss temperature); the backbone is frozen.

    Reads from the YAML (``OPTION_DEFAULTS``; values checked by `option_problems`):
        network_clip (dict): ``DegradationCLIP`` options.
        prompts (list[str] | str): Prompt of each label, in label order, or the name of a prompt set
            (``release``, ``cdd11``; `vlunet_basicsr.utils.prompts`). Default: the release's seven.
        class_names (list[str]): Names of the labels for logs and the heatmap. Default: the prompts.
        path.pretrain_network_clip (str): Adapters to start from (set automatically on resume).
        train.contrastive_opt (dict): ``DegradationContrastiveLoss`` options.
        train.optim_clip (dict): Optimizer (any torch.optim class, e.g. AdamW) over adapters and temperature.
        train.train_backbone (bool): Train the backbone's image tower too. For a randomly initialised small
            backbone (the CPU demo, where no pretrained CLIP can be had); the paper keeps ViT-B-32 frozen.
            Default: False.
        train.scheduler (dict): A BasicSR scheduler or ``LinearWarmupCosineLR``.
    Batches need ``lq`` (images in [0, 1]) and ``label`` (int).

    Validation is sharded over the ranks (`ShardedEvaluation`: rank r classifies images r, r + world_size, ...;
    the counts are summed) and logs top-1 accuracy and the mean confidence (the softmax probability of the
    predicted prompt, VL-UR's Eq. 3 with the backbone's logit scale, as `DegradationCLIP.prompt_probabilities`
    and stage 2's reports compute it), per true class and overall (log and tensorboard) and saves the mean
    image-prompt cosine-similarity matrix (paper Fig. 5) as ``visualization/<set>/similarity_<iter>.png`` (also
    in tensorboard, ``similarity/<set>``),
    with the numbers (accuracies, confidences, confusion and similarity matrices) in
    ``classification_<iter>.json``.
    Checkpoints ``models/net_clip_<iter>.pth`` hold only the adapters (``params``, the format
    ``DegradationCLIP.adapter_path`` loads) and the learned ``log_scale``. With ``train.train_backbone`` the
    backbone goes to ``models/net_clip_backbone_<iter>.pth`` beside them (the format ``network_clip.pretrained``
    loads), and is loaded from there again on resume. On resume, a ``train.optim_clip.lr``
    that differs from the training state's is applied (`ConfiguredLearningRateMixin`).
    """

    OPTION_DEFAULTS = {'network_clip': REQUIRED, 'prompts': None, 'class_names': None, 'train.optim_clip': REQUIRED,
                       'train.contrastive_opt': REQUIRED, 'train.train_backbone': False}

    @classmethod
    def option_problems(cls, opt, is_train):
        """Problems of the keys above (each line naming its key), checked before anything is built and by the
        constructor: ``prompts`` names a prompt set or lists prompts, as many as ``class_names``."""
        names = opt.get('class_names')
        problems = problems_of(
            expect('class_names', names, 'list[str]', nullable=True),
            expect('train.train_backbone', option(opt, cls.OPTION_DEFAULTS, 'train.train_backbone'), 'bool'))
        try:
            prompts = resolve_prompts(opt.get('prompts'))
        except ValueError as error:
            return problems + [str(error)]
        if names is not None and not problems and len(names) != len(prompts):
            problems.append(f'class_names: has {len(names)} entries but prompts has {len(prompts)}')
        return problems

    def __init__(self, opt):
        raise_problems(type(self).__name__, self.option_problems(opt, opt['is_train']))
        super().__init__(opt)
        self.prompts = resolve_prompts(opt.get('prompts'))
        self.class_names = list(opt.get('class_names') or self.prompts)
        net_clip = build_network(opt['network_clip'])
        self.train_backbone = self.is_train and option(opt, self.OPTION_DEFAULTS, 'train.train_backbone')
        self._pretrained_log_scale = None
        load_path = opt['path'].get('pretrain_network_clip')
        if load_path is not None:
            net_clip.load_adapters(load_path)
            self._pretrained_log_scale = load_weights(load_path).get('log_scale')
            backbone_path = self._backbone_path(load_path)
            if self.train_backbone and osp.isfile(backbone_path):  # a resumed run: its own trained backbone
                net_clip.backbone.load_state_dict(load_weights(backbone_path))
        if self.train_backbone:  # before the DDP wrapper, which registers the trainable parameters
            net_clip.backbone.visual.requires_grad_(True)
        self.net_clip = self.model_to_device(net_clip)
        self.print_network(self.net_clip)
        if self.is_train:
            self.init_training_settings()

    @property
    def clip(self):
        return self.get_bare_model(self.net_clip)

    def init_training_settings(self):
        self.net_clip.train()
        train_opt = self.opt['train']
        self.cri_contrastive = build_loss(train_opt['contrastive_opt']).to(self.device)
        if self._pretrained_log_scale is not None:
            self.cri_contrastive.log_scale.data.copy_(self._pretrained_log_scale)
        params = [p for p in self.net_clip.parameters() if p.requires_grad]
        params += [p for p in self.cri_contrastive.parameters() if p.requires_grad]
        optim_opt = dict(train_opt['optim_clip'])
        self.optimizer_clip = self.get_optimizer(optim_opt.pop('type'), params, **optim_opt)
        self.optimizers.append(self.optimizer_clip)
        self.setup_schedulers()

    def feed_data(self, data):
        self.lq = data['lq'].to(self.device)
        self.label = data['label'].to(self.device)

    def optimize_parameters(self, current_iter):
        self.optimizer_clip.zero_grad()
        image_features, text_features = self.net_clip(self.clip.preprocess(self.lq), self.prompts)
        l_contrastive = self.cri_contrastive(image_features, text_features, self.label)
        l_contrastive.backward()
        if self.opt['dist'] and self.cri_contrastive.log_scale.requires_grad:
            # The temperature lives in the loss, outside DDP: average its gradient over the ranks by hand.
            grad = self.cri_contrastive.log_scale.grad
            torch.distributed.all_reduce(grad)
            grad /= self.opt['world_size']
        self.optimizer_clip.step()
        with torch.no_grad():
            similarity = F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).t()
            accuracy = (similarity.argmax(dim=1) == self.label).float().mean()
        self.log_dict = self.reduce_loss_dict(
            OrderedDict(l_contrastive=l_contrastive, acc=accuracy, tau=self.cri_contrastive.temperature.detach()))

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Sharded: each rank classifies images rank, rank + world_size, ...; the counts are summed."""
        self._classify(dataloader, current_iter, tb_logger, self.opt['rank'], self.opt['world_size'])

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        self._classify(dataloader, current_iter, tb_logger, 0, 1)

    @torch.no_grad()
    def _classify(self, dataloader, current_iter, tb_logger, rank, world_size):
        evaluation = ShardedEvaluation(dataloader, rank, world_size, self.device)
        clip = self.clip
        clip.eval()
        num_classes = len(self.prompts)
        text = F.normalize(clip.encode_text(self.prompts), dim=-1)
        scale = clip.backbone.logit_scale.exp().item()  # DegradationCLIP.prompt_probabilities' softmax (Eq. 3)
        confusion = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        similarity_sum = torch.zeros(num_classes, num_classes, dtype=torch.float64)
        confidence_sum = torch.zeros(1, num_classes, dtype=torch.float64)  # per true class
        for data in evaluation:
            image = F.normalize(clip.degradation_vector(data['lq'].to(self.device)), dim=-1)
            similarity = (image @ text.t()).cpu().double()
            labels = data['label'].long().cpu()
            confusion.index_put_((labels, similarity.argmax(dim=1)), torch.ones(len(labels), dtype=torch.float64),
                                 accumulate=True)
            similarity_sum.index_add_(0, labels, similarity)
            confidence_sum[0].index_add_(0, labels, (scale * similarity).softmax(dim=1).max(dim=1).values)
        clip.train()
        totals = evaluation.sum(torch.cat([confusion, similarity_sum, confidence_sum]))
        confusion, similarity_sum = totals[:num_classes], totals[num_classes:2 * num_classes]
        confidence_sum = totals[-1]
        if not evaluation.is_main:
            return
        self.confusion_matrix = confusion.round().long()
        self.similarity_matrix = similarity_sum / confusion.sum(dim=1, keepdim=True).clamp(min=1)
        self.metric_results = {'accuracy': (confusion.diag().sum() / confusion.sum().clamp(min=1)).item()}
        self.class_counts = confusion.sum(dim=1).long().tolist()
        self.per_class_accuracy = (confusion.diag() / confusion.sum(dim=1).clamp(min=1)).tolist()
        self.metric_results['confidence'] = (confidence_sum.sum() / confusion.sum().clamp(min=1)).item()
        self.per_class_confidence = (confidence_sum / confusion.sum(dim=1).clamp(min=1)).tolist()
        self._log_classification(evaluation.name, current_iter, tb_logger)

    def _log_classification(self, dataset_name, current_iter, tb_logger):
        per_class = [(name, count, value) for name, count, value
                     in zip(self.class_names, self.class_counts, self.per_class_accuracy) if count]
        lines = [f'Validation {dataset_name}', f"\t # accuracy: {self.metric_results['accuracy']:.4f}"]
        lines += [f'\t # accuracy [{name}]: {value:.4f} ({count} images)' for name, count, value in per_class]
        lines.append(f"\t # confidence: {self.metric_results['confidence']:.4f} (mean softmax probability of the "
                     'predicted prompt)')
        lines += [f'\t # confidence [{name}]: {value:.4f} ({count} images)' for name, count, value
                  in zip(self.class_names, self.class_counts, self.per_class_confidence) if count]
        lines.append(f'\t confusion matrix (rows: true, columns: predicted):\n{self.confusion_matrix.numpy()}')
        get_root_logger().info('\n'.join(lines))
        heatmap = self._save_classification_report(dataset_name, current_iter)
        if tb_logger:
            tb_logger.add_image(f'similarity/{dataset_name}', cv2.imread(heatmap)[..., ::-1], current_iter,
                                dataformats='HWC')
            tb_logger.add_scalar(f'metrics/{dataset_name}/accuracy', self.metric_results['accuracy'], current_iter)
            tb_logger.add_scalar(f'metrics/{dataset_name}/confidence', self.metric_results['confidence'], current_iter)
            for name, _, value in per_class:
                tb_logger.add_scalar(f'metrics/{dataset_name}/accuracy_{name.replace(" ", "_")}', value, current_iter)
            for name, count, value in zip(self.class_names, self.class_counts, self.per_class_confidence):
                if count:
                    tb_logger.add_scalar(f'metrics/{dataset_name}/confidence_{name.replace(" ", "_")}', value,
                                         current_iter)

    @master_only
    def _save_classification_report(self, dataset_name, current_iter):
        """Write the similarity heatmap PNG and the numbers as JSON; return the PNG's path."""
        folder = osp.join(self.opt['path']['visualization'], dataset_name)
        from vlunet_basicsr.utils.plot_util import save_similarity_heatmap  # matplotlib, at first use
        save_similarity_heatmap(self.similarity_matrix.numpy(), self.class_names, self.prompts,
                                osp.join(folder, f'similarity_{current_iter}.png'),
                                f'{dataset_name}: mean image-prompt cosine similarity @ {current_iter}')
        report = {'iter': current_iter, 'accuracy': self.metric_results['accuracy'], 'class_names': self.class_names,
                  'prompts': self.prompts, 'per_class_accuracy': dict(zip(self.class_names, self.per_class_accuracy)),
                  'confidence': self.metric_results['confidence'],
                  'per_class_confidence': dict(zip(self.class_names, self.per_class_confidence)),
                  'confusion_matrix': self.confusion_matrix.tolist(),
                  'similarity_matrix': self.similarity_matrix.tolist()}
        with open(osp.join(folder, f'classification_{current_iter}.json'), 'w') as f:
            json.dump(report, f, indent=1)
        return osp.join(folder, f'similarity_{current_iter}.png')

    def save(self, epoch, current_iter):
        self._save_adapters(current_iter)
        self.save_training_state(epoch, current_iter)

    @staticmethod
    def _backbone_path(adapter_path):
        """Where the trained backbone of ``net_clip_<iter>.pth`` lies: ``net_clip_backbone_<iter>.pth`` beside it."""
        folder, name = osp.split(adapter_path)
        return osp.join(folder, name.replace('net_clip_', 'net_clip_backbone_', 1))

    @master_only
    def _save_adapters(self, current_iter):
        label = 'latest' if current_iter == -1 else current_iter
        path = osp.join(self.opt['path']['models'], f'net_clip_{label}.pth')
        if self.train_backbone:  # written first: an adapter file never names a backbone that is not there
            backbone = {key: value.detach().cpu() for key, value in self.clip.backbone.state_dict().items()}
            atomic_torch_save(backbone, self._backbone_path(path))
        state = {key: value.detach().cpu() for key, value in self.clip.adapter_state_dict().items()}
        atomic_torch_save({'params': state, 'log_scale': self.cri_contrastive.log_scale.detach().cpu()}, path)
