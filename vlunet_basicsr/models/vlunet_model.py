"""Stage 2: CLIP-guided restoration with VLUNet."""
import json
import os.path as osp
from collections import OrderedDict
from contextlib import contextmanager

import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from basicsr.archs import build_network
from basicsr.metrics import calculate_metric
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.dist_util import master_only
from basicsr.utils.registry import MODEL_REGISTRY
from vlunet_basicsr.metrics.protocol_metric import FLOAT_METRICS
from vlunet_basicsr.models.lr_scheduler import RegisteredSchedulersMixin
from vlunet_basicsr.models.safe_checkpoint_mixin import SafeCheckpointMixin
from vlunet_basicsr.utils.precision import amp_dtype, autocast, train_amp_dtype
from vlunet_basicsr.utils.restore_util import compiled, restore


@MODEL_REGISTRY.register()
class VLUNetModel(SafeCheckpointMixin, RegisteredSchedulersMixin, SRModel):
    """VLUNet guided by the degradation vector of a frozen ``DegradationCLIP`` (paper Sec. 3).

    For every batch the vector is computed from the LQ image on the model's device, with the single CLIP
    preprocessing and without gradients, and fed as ``net_g(lq, vector)``. Only ``net_g`` is trained,
    wrapped by DDP and saved; CLIP is never written into ``net_g_*.pth``.

    Reads from the YAML, besides SRModel's keys (``network_g``, ``path.pretrain_network_g``, ``train.optim_g``,
    ``train.pixel_opt``, ``train.perceptual_opt``, ``train.ema_decay``, ``val.metrics``, ``val.save_img``):
        network_clip (dict | None): ``DegradationCLIP`` options (``pretrained``, ``adapter_path``, ...);
            ``~`` runs the "w/o CLIP" ablation (uniform key mixture).
        train.scheduler: BasicSR's schedulers or ``LinearWarmupCosineLR`` (warmup_iter, total_iter, eta_min).
        train.amp (str): 'none' (float32) or 'bf16': forward, loss and the CLIP vector under bf16 autocast
            (`vlunet_basicsr.utils.precision`). Default: 'none'.
        train.grad_clip_norm (float | None): Clip the gradient norm of net_g. Default: None.
        train.max_nonfinite_steps (int): A step whose loss is not finite is skipped and logged with the batch's
            image paths; after this many in a row, training stops with a saved state. Default: 10.
        path.trust_checkpoint (bool): Allow weight files that need arbitrary unpickling. Default: False.
        val.amp (str): 'none', 'bf16' or 'fp16': autocast for validation and testing. Default: 'none'.
        val.compile (bool | dict): Restore with ``torch.compile(net_g)`` (a dict: torch.compile's arguments,
            e.g. ``{mode: max-autotune}``). Compiling takes minutes; worth it for many images of one size.
            Default: false.
        val.tile (int | None): Restore in tiles of this size (large images). Default: None (whole image).
        val.tile_overlap (int): Overlap of neighbouring tiles, blended linearly. Default: 32.
        val.self_ensemble (bool): Average the 8 flips/rotations. Default: False.
        val.pbar (bool): Progress bar during validation. Default: False.
    Metrics ``calculate_psnr_float`` / ``calculate_ssim_float`` get float32 HxWx3 RGB arrays in [0, 1];
    every other metric gets 8-bit BGR images as in BasicSR. With several val sets the average over the
    sets is logged too (``metrics/average/<metric>`` in tensorboard). In test mode every set's metrics are
    also written to ``results/<name>/metrics.json``.
    """

    def __init__(self, opt):
        self.train_amp = train_amp_dtype((opt.get('train') or {}).get('amp')) if opt['is_train'] else None
        self.val_amp = amp_dtype((opt.get('val') or {}).get('amp'), 'val.amp')
        self._amp = self.train_amp if opt['is_train'] else self.val_amp  # the policy of the batch being fed
        super().__init__(opt)
        self.net_clip = None
        if opt.get('network_clip') is not None:
            self.net_clip = build_network(opt['network_clip']).to(self.device).eval().requires_grad_(False)
        else:
            get_root_logger().info('network_clip is empty: running VLUNet without CLIP guidance (uniform keys).')
        self._set_results = {}
        self._nonfinite_in_a_row = 0
        self._compiled_for_test = {}

    def model_to_device(self, net):
        if self.opt.get('network_clip') is None:
            # Without a vector the mixture is uniform and the D-GDM linears get no gradient: freeze them so DDP
            # needs no find_unused_parameters.
            for module in net.modules():
                if hasattr(module, 'prompt_param') and hasattr(module, 'linear'):
                    module.linear.requires_grad_(False)
        return super().model_to_device(net)

    def degradation_vector_of(self, lq):
        """The adapted CLIP image features of ``lq`` (B, d), or None without ``network_clip``."""
        if self.net_clip is None:
            return None
        with autocast(self.device, self._amp):
            return self.net_clip.degradation_vector(lq)

    def feed_data(self, data):
        super().feed_data(data)
        self.batch_paths = list(data.get('lq_path', []))
        self.degradation_vector = self.degradation_vector_of(self.lq)

    def optimize_parameters(self, current_iter):
        self.optimizer_g.zero_grad()
        losses = OrderedDict()
        with autocast(self.device, self.train_amp):
            self.output = self.net_g(self.lq, self.degradation_vector).float()
            if self.cri_pix:
                losses['l_pix'] = self.cri_pix(self.output, self.gt)
            if self.cri_perceptual:
                l_percep, l_style = self.cri_perceptual(self.output, self.gt)
                if l_percep is not None:
                    losses['l_percep'] = l_percep
                if l_style is not None:
                    losses['l_style'] = l_style
        total = sum(losses.values())
        if not self._loss_is_finite(total, current_iter):
            return
        total.backward()
        max_norm = self.opt['train'].get('grad_clip_norm')
        if max_norm:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), max_norm)
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _loss_is_finite(self, loss, current_iter):
        """Skip (on every rank) a step whose loss is not finite; stop with a saved state after too many."""
        finite = torch.isfinite(loss.detach()).float().reshape(1)
        if self.opt['dist']:
            torch.distributed.all_reduce(finite, op=torch.distributed.ReduceOp.MIN)
        if finite.item() == 1:
            self._nonfinite_in_a_row = 0
            return True
        self.optimizer_g.zero_grad()
        self._nonfinite_in_a_row += 1
        limit = int(self.opt['train'].get('max_nonfinite_steps', 10))
        get_root_logger().warning(f'iter {current_iter}: non-finite loss ({loss.item()}), step skipped '
                                  f'({self._nonfinite_in_a_row} in a row); batch: {", ".join(self.batch_paths)}')
        if self._nonfinite_in_a_row >= limit:
            self.save(self.last_saved_epoch, current_iter)
            raise RuntimeError(
                f'{limit} non-finite losses in a row (iterations {current_iter - limit + 1}-{current_iter}); stopped. '
                f'The last good weights are saved as iteration {current_iter} (training_states/{current_iter}.state). '
                'Check the images named in the log or lower the learning rate, then resume with --auto_resume.')
        return False

    def test(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        val_opt = self.opt.get('val') or {}
        runner = self._compiled_for_test.get(net)
        if runner is None:  # net_g, or net_g_ema, under val.compile (compiled once, on first use)
            runner = self._compiled_for_test[net] = compiled(net, val_opt.get('compile'))
        with torch.no_grad(), autocast(self.device, self.val_amp):
            self.output = restore(runner, self.lq, self.degradation_vector, val_opt.get('tile'),
                                  val_opt.get('tile_overlap', 32), val_opt.get('self_ensemble', False)).float()
        net.train(was_training)

    def dist_validation(self, dataloader, current_iter, tb_logger, save_img):
        """Sharded validation: rank r restores images r, r + world_size, ... (and saves those it made); metric
        sums and counts are summed over the ranks, and rank 0 logs."""
        with self._feeding_under(self.val_amp):
            self._validate(dataloader, current_iter, tb_logger, save_img, self.opt['rank'], self.opt['world_size'])

    def nondist_validation(self, dataloader, current_iter, tb_logger, save_img):
        with self._feeding_under(self.val_amp):
            self._validate(dataloader, current_iter, tb_logger, save_img, 0, 1)

    @contextmanager
    def _feeding_under(self, dtype):
        """Batches fed inside get their CLIP vector under ``dtype``'s autocast (validation during training)."""
        previous, self._amp = self._amp, dtype
        try:
            yield
        finally:
            self._amp = previous

    def _validate(self, dataloader, current_iter, tb_logger, save_img, rank, world_size):
        dataset = dataloader.dataset
        dataset_name = dataset.opt['name']
        metrics_opt = self.opt['val'].get('metrics') or {}
        totals = torch.zeros(len(metrics_opt) + 1, dtype=torch.float64)  # metric sums, then the image count
        if world_size > 1:
            dataloader = DataLoader(Subset(dataset, range(rank, len(dataset), world_size)), batch_size=1)
        show = self.opt['val'].get('pbar', False) and rank == 0
        pbar = tqdm(total=len(dataloader), unit='image') if show else None
        for val_data in dataloader:
            self.feed_data(val_data)
            self.test()
            output = self.output.detach().cpu()
            gt = self.gt.detach().cpu() if hasattr(self, 'gt') else None
            for i in range(output.shape[0]):
                img_name = osp.splitext(osp.basename(val_data['lq_path'][i]))[0]
                result_8bit = tensor2img([output[i]])
                if gt is not None:
                    images = {'8bit': {'img': result_8bit, 'img2': tensor2img([gt[i]])},
                              'float': {'img': output[i].clamp(0, 1).permute(1, 2, 0).numpy(),
                                        'img2': gt[i].clamp(0, 1).permute(1, 2, 0).numpy()}}
                    for j, metric_opt in enumerate(metrics_opt.values()):
                        kind = 'float' if metric_opt['type'] in FLOAT_METRICS else '8bit'
                        totals[j] += calculate_metric(images[kind], metric_opt)
                if save_img:
                    imwrite(result_8bit, self._image_path(img_name, dataset_name, current_iter))
                totals[-1] += 1
            del self.lq, self.output
            if hasattr(self, 'gt'):
                del self.gt
            if pbar:
                pbar.update(1)
                pbar.set_description(f'Test {img_name}')
        if pbar:
            pbar.close()
        if world_size > 1:
            totals = totals.to(self.device)
            torch.distributed.all_reduce(totals)
            totals = totals.cpu()
        self.validated_images = int(totals[-1])
        if metrics_opt and rank == 0:
            self._initialize_best_metric_results(dataset_name)
            count = max(self.validated_images, 1)
            self.metric_results = {name: totals[j].item() / count for j, name in enumerate(metrics_opt)}
            for name, value in self.metric_results.items():
                self._update_best_metric_result(dataset_name, name, value, current_iter)
            self._log_validation_metric_values(current_iter, dataset_name, tb_logger)
            if not self.opt['is_train']:
                self._write_metrics_json(dataset_name)
            self._log_average_over_sets(dataset_name, current_iter, tb_logger)

    def _image_path(self, img_name, dataset_name, current_iter):
        visualization = self.opt['path']['visualization']
        if self.opt['is_train']:
            return osp.join(visualization, img_name, f'{img_name}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(visualization, dataset_name, f'{img_name}_{suffix}.png')

    @master_only
    def _write_metrics_json(self, dataset_name):
        """Test mode: add this set's metrics to ``results/<name>/metrics.json`` ({set: {metric: value}})."""
        path = osp.join(self.opt['path']['results_root'], 'metrics.json')
        results = json.load(open(path)) if osp.isfile(path) else {}
        results[dataset_name] = dict(self.metric_results)
        with open(path, 'w') as f:
            json.dump(results, f, indent=1)

    def _log_average_over_sets(self, dataset_name, current_iter, tb_logger):
        """Once every val (or test) set of this round is done, log the metrics averaged over the sets."""
        prefix = 'val' if self.opt['is_train'] else ''
        expected = sum(1 for phase in self.opt.get('datasets', {}) if phase.startswith(prefix) and phase != 'train')
        results = self._set_results.setdefault(current_iter, {})
        results[dataset_name] = dict(self.metric_results)
        if expected < 2 or len(results) < expected:
            return
        lines = [f'Average over {len(results)} sets ({", ".join(results)})']
        for metric in self.metric_results:
            value = sum(r[metric] for r in results.values()) / len(results)
            lines.append(f'\t # {metric}: {value:.4f}')
            if tb_logger:
                tb_logger.add_scalar(f'metrics/average/{metric}', value, current_iter)
        get_root_logger().info('\n'.join(lines))
        del self._set_results[current_iter]
