"""The restoration model for any arch: optional guidance, stage outputs, AMP, the non-finite guard, evaluation."""
import os.path as osp
from collections import OrderedDict
from contextlib import contextmanager

import torch

from basicsr.archs import build_network
from basicsr.models.sr_model import SRModel
from basicsr.utils import get_root_logger, imwrite, tensor2img
from basicsr.utils.registry import MODEL_REGISTRY
from vlunet_basicsr.models.degradation_report import DegradationTypeReport
from vlunet_basicsr.models.evaluation import ShardedEvaluation
from vlunet_basicsr.models.guidance import Guidance
from vlunet_basicsr.models.loss_terms import LossTerms
from vlunet_basicsr.models.lr_scheduler import RegisteredSchedulersMixin
from vlunet_basicsr.models.mixup import PairMixUp, check_mixable, mixup_problems
from vlunet_basicsr.models.network_inputs import NetworkInputs, freeze_guidance_layers, size_rule
from vlunet_basicsr.models.nonfinite_guard import NonFiniteGuard
from vlunet_basicsr.models.restoration_metrics import ImageMetrics
from vlunet_basicsr.models.resume_learning_rate import ConfiguredLearningRateMixin
from vlunet_basicsr.models.safe_checkpoint_mixin import SafeCheckpointMixin
from vlunet_basicsr.models.validation_report import ValidationReports
from vlunet_basicsr.utils.option_values import REQUIRED, expect, option, problems_of, raise_problems
from vlunet_basicsr.utils.precision import AMP_DTYPES, amp_dtype, precision_scope, supported_dtype, train_amp_dtype
from vlunet_basicsr.utils.prompts import prompt_label, resolve_prompts
from vlunet_basicsr.utils.checkpoint_util import TRUST_CHECKPOINT_DEFAULT
from vlunet_basicsr.utils.compile_util import compiled
from vlunet_basicsr.utils.restore_util import restore_image


@MODEL_REGISTRY.register()
class GuidedRestorationModel(ConfiguredLearningRateMixin, SafeCheckpointMixin, RegisteredSchedulersMixin, SRModel):
    """Image restoration with any arch, guided or not (`vlunet_basicsr.models.network_inputs`).

    The arch declares what it takes: ``net_g(lq)`` (any BasicSR arch), ``net_g(lq, image_features)`` (VLUNet)
    or ``net_g(lq, text_embedding)``, and whether it returns one image per unfolding stage (the loss is then
    summed over the stages; the final image is used for metrics and saving). The guidance comes from a frozen
    encoder (`vlunet_basicsr.models.guidance`), computed per batch from the LQ image on the model's device
    without gradients; only ``net_g`` is trained, wrapped by DDP and saved. The log says at start which
    network runs and whether and by what it is guided.

    Reads from the YAML (``OPTION_DEFAULTS``; values checked by `option_problems`), besides SRModel's keys
    (``path.pretrain_network_g``, ``path.param_key_g``, ``path.strict_load_g``, ``train.ema_decay``,
    ``val.metrics``, ``val.save_img``, ``val.suffix``):
        network_g (dict): The restoration network: any registered arch and its constructor's arguments.
        train.optim_g (dict): Optimizer of net_g: any torch.optim class and its arguments.
        train.<name>_opt (dict): Every loss (``pixel_opt``, ``perceptual_opt``, ``edge_opt``, ``msssim_opt``,
            ``composite_opt``, ...), each summed over the output images; a loss class may ask for more of the
            batch with ``batch_inputs`` (`vlunet_basicsr.models.loss_terms`). At least one is needed. An arch's
            own loss terms (``training_losses``, the arch protocol: MoCE-IR's balance) are added to them.
        network_clip (dict | None): The frozen guidance encoder (``DegradationCLIP`` options). For an
            'image_features' arch, ``~`` runs it unguided (VLUNet's "w/o CLIP" ablation); it must be ``~`` for
            an unguided arch and set for a 'text_features' arch. Default: None.
        prompts (list[str] | str): 'text_features' archs: prompt of each label, or the name of a prompt set
            (``release``, ``cdd11``). Default: the release's seven.
        train.scheduler (dict): BasicSR's schedulers or ``LinearWarmupCosineLR``.
        train.amp (str): 'none' (float32) or 'bf16': forward, loss and the guidance under bf16 autocast
            (`vlunet_basicsr.utils.precision`). Default: 'none'.
        train.grad_clip_norm (float | None): Clip the gradient norm of net_g. Default: None.
        train.max_nonfinite_steps (int): A step whose loss is not finite is skipped and logged with the batch's
            image paths; after this many in a row training stops, saving the last weights that gave a finite
            loss (`vlunet_basicsr.models.nonfinite_guard`). Default: 10.
        train.mixup (bool | dict): MixUp of the training pairs within each batch, as the published MPRNet/DGUNet
            denoising code (`vlunet_basicsr.models.mixup`): true (factors ~ Beta(0.6, 0.6) from the first
            iteration), or a mapping with the keys alpha, beta (the Beta concentrations) and start_iter. Applied
            at the start of each training step, never to validation batches; the guidance, and the 'lq' a loss
            takes, are then the mixed images'. Reproducible from ``manual_seed``. Default: false.
        path.trust_checkpoint (bool): Allow weight files that need arbitrary unpickling. Default: False.
        val.amp (str): 'none', 'bf16' or 'fp16': autocast for validation and testing. Default: 'none'.
        val.compile (bool | dict): Restore with ``torch.compile(net_g)`` (a dict: torch.compile's arguments,
            e.g. ``{mode: max-autotune}``); compiled once, on first use. Default: false.
        val.tile (int | None): Restore in tiles of this size (large images). Default: None (whole image).
        val.tile_overlap (int): Overlap of neighbouring tiles, blended linearly. Default: 32.
        val.self_ensemble (bool): Average the 8 flips/rotations. Default: False.
        val.size_multiple (int | None): Override the multiple the arch's size rule pads every network input to
            (bottom/right, reflect; in training too) before cropping the output back. Default: None, the arch's
            rule (`vlunet_basicsr.models.network_inputs.size_rule`: declared by the arch, or derived from a BasicSR
            arch's options, e.g. SwinIR's window size). The datasets give LQ and GT of one size, so the model
            restores (no up-scaling: scale must be 1).
        val.degradation_type (int | str | None): 'text_features' archs: the label or prompt to restore every
            validation/test image with, instead of the encoder's prediction. Default: None.
        val.pbar (bool): Progress bar during validation. Default: False.
    Training steps: resuming keeps the YAML's learning rate when it differs from the state's
    (`ConfiguredLearningRateMixin`). Evaluation is sharded over the ranks (`ShardedEvaluation`) and reported by
    `vlunet_basicsr.models.validation_report`; metrics (`ImageMetrics`) are logged per set with the number of images
    each averaged, then averaged over the sets (``metrics/average/<metric>`` in tensorboard); in test mode every set
    also goes to ``results/<name>/metrics.json``. For a 'text_features' arch every set also reports its degradation
    types (`vlunet_basicsr.models.degradation_report`): the accuracy of the predicted type against the set's
    ``label`` and the mean confidence in the log (and tensorboard), and in test mode per image the predicted
    type, its probability and the type used in ``results/<name>/degradation_types_<set>.csv``.

    Attributes:
        network_inputs (NetworkInputs): The arch's protocol.
        size_rule (SizeRule): What every network input is padded to (the arch's, or ``val.size_multiple``).
        guidance (Guidance): Computes each batch's guidance input.
        net_clip (nn.Module | None): The frozen guidance encoder.
        guidance_features (Tensor | None): The guidance input of the last batch fed.
        degradation_types (dict): 'text_features' archs, rank 0: the last evaluated set's figures
            (`DegradationTypeReport.summary`).
    """

    OPTION_DEFAULTS = {'network_g': REQUIRED, 'network_clip': None, 'prompts': None, 'train.optim_g': REQUIRED,
                       'train.amp': 'none', 'train.grad_clip_norm': None, 'train.max_nonfinite_steps': 10,
                       'train.mixup': False, 'path.trust_checkpoint': TRUST_CHECKPOINT_DEFAULT, 'val.amp': 'none',
                       'val.compile': False, 'val.tile': None, 'val.tile_overlap': 32, 'val.self_ensemble': False,
                       'val.size_multiple': None, 'val.degradation_type': None}

    @classmethod
    def option_problems(cls, opt, is_train):
        """Problems of the keys above (each line naming its key), checked before anything is built and by the
        constructor: values, the guidance the arch declares (and ``network_clip``), ``prompts``,
        ``val.degradation_type`` and ``train.mixup``."""
        from basicsr.utils.registry import ARCH_REGISTRY
        mixup = option(opt, cls.OPTION_DEFAULTS, 'train.mixup')
        problems = cls._value_problems(opt, is_train) + mixup_problems(mixup)
        network = opt.get('network_g')
        arch = network.get('type') if isinstance(network, dict) else None
        if arch in ARCH_REGISTRY:
            try:
                inputs = NetworkInputs.of(ARCH_REGISTRY.get(arch))
                inputs.check_encoder(opt.get('network_clip') is not None)
                if not problems:
                    check_mixable(mixup, inputs)
            except ValueError as error:
                problems.append(str(error))
        try:
            prompts = resolve_prompts(opt.get('prompts'))
            degradation_type = (opt.get('val') or {}).get('degradation_type')
            if degradation_type is not None:
                prompt_label(degradation_type, prompts)
        except ValueError as error:
            problems.append(str(error))
        return problems

    @classmethod
    def _value_problems(cls, opt, is_train):
        def value(key):
            return option(opt, cls.OPTION_DEFAULTS, key)

        return problems_of(
            expect('network_clip', opt.get('network_clip'), 'dict', nullable=True),
            expect('train.amp', value('train.amp'), 'str', choices=('none', 'bf16')) if is_train else None,
            expect('train.grad_clip_norm', value('train.grad_clip_norm'), 'float', minimum=0, nullable=True),
            expect('train.max_nonfinite_steps', value('train.max_nonfinite_steps'), 'int', minimum=1),
            expect('path.trust_checkpoint', value('path.trust_checkpoint'), 'bool'),
            expect('val.amp', value('val.amp'), 'str', choices=tuple(AMP_DTYPES)),
            expect('val.tile', value('val.tile'), 'int', minimum=8, nullable=True),
            expect('val.tile_overlap', value('val.tile_overlap'), 'int', minimum=0),
            expect('val.self_ensemble', value('val.self_ensemble'), 'bool'),
            expect('val.size_multiple', value('val.size_multiple'), 'int', minimum=1, nullable=True))

    def option(self, key):
        """The value of ``key`` (``section.key`` for ``train``, ``val``, ``path``), or its default."""
        return option(self.opt, self.OPTION_DEFAULTS, key)

    def __init__(self, opt):
        raise_problems(type(self).__name__, self.option_problems(opt, opt['is_train']))
        device = 'cpu' if opt.get('num_gpu') == 0 or not torch.cuda.is_available() else 'cuda'  # as BaseModel's
        train_amp = train_amp_dtype((opt.get('train') or {}).get('amp')) if opt['is_train'] else None
        self.train_amp = supported_dtype(train_amp, device, 'train.amp')
        self.val_amp = supported_dtype(amp_dtype((opt.get('val') or {}).get('amp'), 'val.amp'), device, 'val.amp')
        self._amp = self.train_amp if opt['is_train'] else self.val_amp  # the policy of the batch being fed
        self._evaluating = not opt['is_train']  # whether batches fed are validation/test batches
        self.log_dict = OrderedDict()
        self.reports = ValidationReports(opt)
        self._compiled_for_test = {}
        super().__init__(opt)  # SRModel's: builds net_g, puts it on the device (`model_to_device`), loads, trains

    def model_to_device(self, net):
        """SRModel.__init__ puts the net_g it built on the device here, once: the arch's protocol is read, its
        guidance encoder built and the layers that get no gradient frozen first, before DDP wraps the network."""
        if not hasattr(self, 'network_inputs'):
            self.network_inputs = NetworkInputs.of(type(net))
            self.size_rule = size_rule(net, (self.opt.get('val') or {}).get('size_multiple'))
            own = size_rule(net)
            if self.size_rule.multiple % own.multiple:
                get_root_logger().warning(f'val.size_multiple {self.size_rule.multiple} is not a multiple of '
                                          f"{type(net).__name__}'s own size multiple, {own.multiple}")
            self.guidance = Guidance.from_options(self.opt, self.network_inputs, self.device)
            self.net_clip = self.guidance.encoder
            if self.network_inputs.guided and self.net_clip is None:
                freeze_guidance_layers(net)
            encoder_name = None if self.net_clip is None else type(self.net_clip).__name__
            get_root_logger().info(f'{self.network_inputs.describe(encoder_name)} Inputs padded to: {self.size_rule}.')
        return super().model_to_device(net)

    def init_training_settings(self):
        """SRModel's, with every ``train.<name>_opt`` loss (`LossTerms`) and the non-finite guard.

        SRModel's own cannot be called: it builds ``cri_pix`` and ``cri_perceptual`` itself (a second VGG for a
        perceptual loss) and refuses a run with neither ``pixel_opt`` nor ``perceptual_opt``, which `LossTerms`
        allows (e.g. ``composite_opt`` alone); so its EMA set-up, which it does not expose apart, is repeated here.
        """
        self.net_g.train()
        train_opt = self.opt['train']
        self.ema_decay = train_opt.get('ema_decay', 0)
        if self.ema_decay > 0:
            get_root_logger().info(f'Use Exponential Moving Average with decay: {self.ema_decay}')
            self.net_g_ema = build_network(self.opt['network_g']).to(self.device)
            load_path = self.opt['path'].get('pretrain_network_g')
            if load_path is not None:
                strict = self.opt['path'].get('strict_load_g', True)
                self.load_network(self.net_g_ema, load_path, strict, 'params_ema')
            else:
                self.model_ema(0)
            self.net_g_ema.eval()
        self.losses = LossTerms(train_opt, self.device)
        check_mixable(train_opt.get('mixup'), self.network_inputs, self.losses.batch_inputs)
        self.mixup = PairMixUp.from_options(train_opt.get('mixup'), self.opt.get('manual_seed') or 0, self.opt['rank'])
        if self.mixup is not None:
            get_root_logger().info(f'Training pairs are mixed: {self.mixup}.')
        self.setup_optimizers()
        self.setup_schedulers()
        networks = [self.get_bare_model(self.net_g)] + ([self.net_g_ema] if self.ema_decay > 0 else [])
        self.guard = NonFiniteGuard(networks, int(self.option('train.max_nonfinite_steps')), self.opt['dist'])

    def feed_data(self, data):
        super().feed_data(data)
        self.batch_paths = list(data.get('lq_path', []))
        with precision_scope(self.device, self._amp, self.net_clip):
            self.guidance_features = self.guidance(self.lq, data.get('label'), self._evaluating)
        if self.is_train and not self._evaluating:
            self.loss_inputs = {name: self._loss_input(data, name) for name in self.losses.batch_inputs}

    def _loss_input(self, data, name):
        if name == 'lq':
            return self.lq
        if name not in data:
            raise ValueError(f"a training loss needs the batch's '{name}', which the training dataset does not give "
                             f'(it gives {", ".join(sorted(data))})')
        return data[name].to(self.device)

    def _mix_batch(self, current_iter):
        """``train.mixup``: mix the pairs of the training batch fed; the guidance and a loss's 'lq' follow."""
        lq, self.gt = self.mixup(self.lq, self.gt, current_iter)
        if lq is self.lq:  # before start_iter
            return
        self.lq = lq
        if 'lq' in self.loss_inputs:
            self.loss_inputs['lq'] = lq
        if self.network_inputs.guided:
            with precision_scope(self.device, self.train_amp, self.net_clip):
                self.guidance_features = self.guidance(lq, None, False)

    def optimize_parameters(self, current_iter):
        if self.mixup is not None:
            self._mix_batch(current_iter)
        self.optimizer_g.zero_grad()
        self.guard.begin_step(current_iter)
        with precision_scope(self.device, self.train_amp, self.net_g):
            outputs = self.network_inputs.outputs(self.net_g, self.lq, self.guidance_features, self.size_rule)
            outputs = [output.float() for output in outputs]
            losses = self.losses(outputs, self.gt, self.loss_inputs)
            losses.update(self.network_inputs.arch_losses(self.get_bare_model(self.net_g)))
        self.output = outputs[0]
        total = sum(losses.values())
        if not self.guard.loss_is_finite(total):
            self._skip_step(current_iter, total, losses)
            return
        total.backward()
        max_norm = self.option('train.grad_clip_norm')
        if max_norm:
            torch.nn.utils.clip_grad_norm_(self.net_g.parameters(), max_norm)
        self.guard.before_step(current_iter)
        self.optimizer_g.step()
        self.log_dict = self.reduce_loss_dict(losses)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def _skip_step(self, current_iter, total, losses):
        """A non-finite loss (on some rank): no step; stop with the last good weights saved after too many."""
        self.log_dict = self.reduce_loss_dict(losses)
        guard = self.guard
        get_root_logger().warning(f'iter {current_iter}: non-finite loss ({total.item()}), step skipped '
                                  f'({guard.in_a_row} in a row); batch: {", ".join(self.batch_paths)}')
        if not guard.should_stop:
            return
        reset_optimizer = guard.restore_last_good()
        if reset_optimizer:
            for optimizer in self.optimizers:
                optimizer.state.clear()
        self.save(self.last_saved_epoch, current_iter)
        raise RuntimeError(guard.stop_message(current_iter, reset_optimizer))

    def test(self):
        net = self.net_g_ema if hasattr(self, 'net_g_ema') else self.net_g
        was_training = net.training
        net.eval()
        runner = self._compiled_for_test.get(net)
        if runner is None:  # net_g, or net_g_ema, under val.compile (compiled once, on first use)
            runner = self._compiled_for_test[net] = compiled(net, self.option('val.compile'))
        run = self.network_inputs.final(runner, self.guidance_features)
        with torch.no_grad(), precision_scope(self.device, self.val_amp, net):
            self.output = restore_image(run, self.lq, self.option('val.tile'), self.option('val.tile_overlap'),
                                        self.option('val.self_ensemble'), self.size_rule).float()
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
        """Batches fed inside are evaluation batches, their guidance computed under ``dtype``'s autocast."""
        previous = self._amp, self._evaluating
        self._amp, self._evaluating = dtype, True
        try:
            yield
        finally:
            self._amp, self._evaluating = previous

    def _validate(self, dataloader, current_iter, tb_logger, save_img, rank, world_size):
        val_opt = self.opt['val']
        evaluation = ShardedEvaluation(dataloader, rank, world_size, self.device, val_opt.get('pbar', False))
        metrics = ImageMetrics(val_opt.get('metrics') or {}, evaluation.name)
        types = None
        if self.guidance.reports_types:
            types = DegradationTypeReport(evaluation.name, self.guidance.prompts, self.guidance.fixed_prompt)
        for data in evaluation:
            self.feed_data(data)
            if types is not None:
                types.add(data['lq_path'], *self.guidance.last_prediction(), data.get('label'))
            self.test()
            output = self.output.detach().cpu()
            gt = self.gt.detach().cpu() if hasattr(self, 'gt') else None
            for i in range(output.shape[0]):
                img_name = osp.splitext(osp.basename(data['lq_path'][i]))[0]
                metrics.add(img_name, output[i], None if gt is None else gt[i])
                if save_img:
                    imwrite(tensor2img([output[i]]), self._image_path(img_name, evaluation.name, current_iter))
            del self.lq, self.output
            if hasattr(self, 'gt'):
                del self.gt
        if types is not None:
            rows = types.gather(evaluation)
            if evaluation.is_main:
                self.degradation_types = self.reports.degradation_types(types, rows, evaluation.name, current_iter,
                                                                        tb_logger)
        left_out = evaluation.gather(metrics.left_out)
        if evaluation.is_main:  # the other ranks' warnings (BasicSR's logger shows only errors there)
            for message in (m for messages in left_out[1:] for m in messages):
                get_root_logger().warning(message)
        means, counts = metrics.results(evaluation.sum(metrics.totals))
        self.validated_images = counts['images']
        if metrics.metrics_opt and evaluation.is_main:
            self.metric_results, self.metric_counts = means, counts
            self._initialize_best_metric_results(evaluation.name)
            for name, value in means.items():
                self._update_best_metric_result(evaluation.name, name, value, current_iter)
            self.reports.metric_values(evaluation.name, means, counts, self.best_metric_results[evaluation.name],
                                       current_iter, tb_logger)
            self.reports.average_over_sets(evaluation.name, means, current_iter, tb_logger)

    def _image_path(self, img_name, dataset_name, current_iter):
        visualization = self.opt['path']['visualization']
        if self.opt['is_train']:
            return osp.join(visualization, img_name, f'{img_name}_{current_iter}.png')
        suffix = self.opt['val'].get('suffix') or self.opt['name']
        return osp.join(visualization, dataset_name, f'{img_name}_{suffix}.png')
