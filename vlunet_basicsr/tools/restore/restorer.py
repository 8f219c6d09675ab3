"""One loaded restoration system restoring your own images: what ``basicsr restore`` (and any other front end)
calls, so there is one way of restoring.

`load_networks` builds the network (``network_g`` of a test YAML, or the arch a weights file alone declares or is
recognised as, `vlunet_basicsr.models.network_inputs.network_options_from_weights`), reads its protocol (declared
inputs and size rule, `vlunet_basicsr.models.network_inputs`) and builds its guidance encoder; `Restorer` restores
float RGB images with it: the degradation readout (zero-shot over the prompts with the tuned adapters) and the
guidance the arch takes (`vlunet_basicsr.models.guidance.Guidance`), tiles and padding
(`vlunet_basicsr.utils.restore_util`), precision and compile.
"""
import os.path as osp
from collections import namedtuple

import numpy as np
import torch

from vlunet_basicsr.utils.clip_defaults import DEFAULT_CLIP_MODEL

#: What `load_networks` returns.
Networks = namedtuple('Networks', ['net', 'inputs', 'clip', 'prompts', 'fixed_label', 'size_rule'])

#: The degradation readout of one image: the predicted label, its probability, every label's probability, and
#: the label the image was restored with (the predicted one, or the one given for a text-guided arch).
Prediction = namedtuple('Prediction', ['label', 'probability', 'probabilities', 'used_label'])

#: One restored image: float32 HxWx3 RGB (not clipped), the `Prediction` (None without an encoder), and the
#: per-stage trace of the arch's ``forward_with_trace`` when asked for (`NetworkInputs.explains`).
Restoration = namedtuple('Restoration', ['rgb', 'prediction', 'trace'])


def load_networks(opt_path=None, weights=None, clip_weights=None, adapter=None, clip_model=None,
                  trust_checkpoint=False, degradation_type=None):
    """The network, its declared inputs and its guidance encoder, from a test YAML and/or weight files.

    Args:
        opt_path (str | None): A test YAML (``network_g``, ``network_clip``, ``prompts``,
            ``path.pretrain_network_g``, ``val.size_multiple``, ``val.degradation_type``).
        weights (str | None): ``net_g.pth`` (BasicSR format); without a YAML the network is the one the file
            names (a ``network_g`` entry), else the registered arch that recognises the weights (VLU-Net's, from
            their shapes).
        clip_weights (str | None): CLIP backbone weights (overrides ``network_clip.pretrained``).
        adapter (str | None): CLIP adapters (overrides ``network_clip.adapter_path``).
        clip_model (str | None): open_clip model when only ``clip_weights``/``adapter`` are given. Default:
            None (`DEFAULT_CLIP_MODEL`).
        trust_checkpoint (bool): Allow a network file that needs arbitrary unpickling. Default: False.
        degradation_type (str | int | None): Text-guided archs: restore every image with this label (number,
            name or prompt) instead of the predicted one.

    Returns:
        Networks: ``net``, ``inputs`` (`NetworkInputs`), ``clip`` (or None), ``prompts``, ``fixed_label`` and
        ``size_rule`` (`SizeRule`: the arch's, its multiple overridden by ``val.size_multiple``).
    """
    from basicsr.archs import build_network
    from vlunet_basicsr.models.network_inputs import NetworkInputs, network_options_from_weights, size_rule
    from vlunet_basicsr.utils.checkpoint_util import load_weights, trusted_in
    from vlunet_basicsr.tools.options.loading import load_yaml
    from vlunet_basicsr.utils.prompts import prompt_label, resolve_prompts

    opt = load_yaml(opt_path) if opt_path else {}
    path_opt = opt.get('path') or {}
    weights = weights or path_opt.get('pretrain_network_g')
    if weights is None:
        raise ValueError('give -opt (a test YAML with path.pretrain_network_g) or --weights net_g.pth')
    trust = trust_checkpoint or trusted_in(opt)
    checkpoint = load_weights(weights, trust, how_to_trust='pass --trust-checkpoint')
    param_key = path_opt.get('param_key_g') or ('params_ema' if 'params_ema' in checkpoint else 'params')
    if param_key not in checkpoint:
        raise ValueError(f"{weights} has no '{param_key}' entry (keys: {sorted(checkpoint)})")
    state = checkpoint[param_key]
    net_opt = dict(opt['network_g']) if 'network_g' in opt else network_options_from_weights(checkpoint, state, weights)
    net = build_network(net_opt)
    net.load_state_dict(state, strict=True)

    clip_opt = dict(opt['network_clip']) if opt.get('network_clip') else None
    if clip_opt is None and (clip_weights or adapter):
        clip_opt = {'type': 'DegradationCLIP', 'model_name': clip_model or DEFAULT_CLIP_MODEL}
    if clip_opt is not None:
        if clip_weights:
            clip_opt['pretrained'] = clip_weights
        if adapter:
            clip_opt['adapter_path'] = adapter
    clip = build_network(clip_opt) if clip_opt is not None else None
    inputs = NetworkInputs.of(type(net))
    inputs.check_encoder(clip is not None)
    prompts = resolve_prompts(opt.get('prompts'))
    val_opt = opt.get('val') or {}
    degradation_type = degradation_type if degradation_type is not None else val_opt.get('degradation_type')
    fixed = None if degradation_type is None else prompt_label(degradation_type, prompts, '--degradation-type')
    inputs.check_degradation_type(fixed)
    return Networks(net, inputs, clip, prompts, fixed, size_rule(net, val_opt.get('size_multiple')))


def resolve_device(name):
    """'auto' (cuda when available, else cpu), 'cpu' or 'cuda' as a torch.device; ValueError for cuda without one."""
    if name == 'cuda' and not torch.cuda.is_available():
        raise ValueError('--device cuda: torch finds no CUDA GPU here (torch.cuda.is_available() is False); use '
                         '--device cpu or auto')
    return torch.device(('cuda' if torch.cuda.is_available() else 'cpu') if name == 'auto' else name)


def _prepared(module, device):
    """A torch module on ``device`` in eval mode; an exported graph's runner (not a module) as it is."""
    return module.to(device).eval() if isinstance(module, torch.nn.Module) else module


class Restorer:
    """Restores float RGB images with one loaded system.

    Args:
        networks (Networks): From `load_networks`.
        device (torch.device): Where to run.
        amp (str): 'none', 'bf16' or 'fp16' autocast. Default: 'none'.
        compile (bool): ``torch.compile`` the network. Default: False.
        tile (int | None): Restore in tiles of this size. Default: None (whole image).
        tile_overlap (int): Overlap of neighbouring tiles. Default: 32.

    ``networks.net`` and ``networks.clip`` may also be exported graphs' runners that stand in for the modules
    (`vlunet_basicsr.tools.export.onnx_runtime.load_onnx_networks`); they are used as they are.
    """

    def __init__(self, networks, device, amp='none', compile=False, tile=None, tile_overlap=32):
        from vlunet_basicsr.models.guidance import Guidance
        from vlunet_basicsr.utils.precision import AMP_DTYPES, supported_dtype
        from vlunet_basicsr.utils.compile_util import compiled
        self.networks = networks
        self.device = device
        self.amp = supported_dtype(AMP_DTYPES[amp], device, '--amp')
        self.tile, self.tile_overlap = tile, tile_overlap
        self.net = _prepared(networks.net, device)
        self.runner = compiled(self.net, compile, '--compile')
        self.clip = _prepared(networks.clip, device) if networks.clip is not None else None
        # the guidance, and the readout over the prompts (encoded once) whenever there is an encoder
        self.guidance = Guidance(networks.inputs, self.clip, networks.prompts, networks.fixed_label, readout=True)

    @property
    def text_guided(self):
        """Whether a degradation type can be given (the arch is guided by the prompt of one)."""
        return self.networks.inputs.prompt_guided

    @property
    def prompts(self):
        return self.networks.prompts

    def describe(self):
        """One line: which network runs and whether (and by what) it is guided."""
        return self.networks.inputs.describe(None if self.clip is None else type(self.clip).__name__)

    def restore(self, rgb, degradation_type=None, progress=None, explain=False):
        """Restore one image.

        Args:
            rgb (ndarray): float32 HxWx3 RGB in [0, 1].
            degradation_type (str | int | None): Text-guided archs: the label to restore with (overrides the
                loaded one and the prediction).
            progress (callable | None): ``progress(done, total)`` after each tile.
            explain (bool): Also return the arch's per-stage trace (`NetworkInputs.explain`).

        Returns:
            Restoration: The restored image, the degradation readout and the trace (or None).
        """
        from vlunet_basicsr.utils.precision import precision_scope
        from vlunet_basicsr.utils.prompts import prompt_label
        from vlunet_basicsr.utils.restore_util import restore_image
        inputs, fixed = self.networks.inputs, None
        if degradation_type is not None:
            inputs.check_degradation_type(degradation_type, 'a degradation type')
            fixed = prompt_label(degradation_type, self.prompts, 'degradation type')
        lq = torch.from_numpy(np.ascontiguousarray(rgb, dtype=np.float32)).permute(2, 0, 1)[None].to(self.device)
        prediction, trace = None, None
        with torch.no_grad(), precision_scope(self.device, self.amp, self.clip, self.net):
            guidance = self.guidance(lq, evaluating=True, fixed_prompt=fixed)
            readout = self.guidance.last_prediction()
            if readout is not None:
                best, used = int(readout[0][0]), int(readout[2][0])
                probabilities = self.guidance.last_probabilities[0].float().cpu()
                prediction = Prediction(best, float(probabilities[best]), probabilities.tolist(), used)
            run = inputs.final(self.runner, guidance)
            output = restore_image(run, lq, self.tile, self.tile_overlap, size_rule=self.networks.size_rule,
                                   progress=progress)
            if explain:
                trace = inputs.explain(self.net, lq, guidance)
        return Restoration(output[0].float().permute(1, 2, 0).cpu().numpy(), prediction, trace)

    def restore_file(self, image, target, degradation_type=None, progress=None, explain=False):
        """Restore one decoded image and write the result (and its ``--explain`` figures) beside ``target``.

        The one read -> restore -> write step of ``basicsr restore`` and ``basicsr serve``: the result keeps the
        input's size, bit depth, grayscale and alpha (`vlunet_basicsr.utils.image_io.encode_like`).

        Args:
            image (DecodedImage): From `vlunet_basicsr.utils.image_io.decode_image` / ``read_image_file``.
            target (str): The result's PNG path.
            degradation_type, progress, explain: As for `restore`.

        Returns:
            tuple[Restoration, tuple[str] | None]: The restoration, and the paths of the explain figures.

        Raises:
            OSError: The result cannot be written.
        """
        import cv2
        from vlunet_basicsr.utils.image_io import encode_like
        from vlunet_basicsr.utils.output_names import explain_files
        restoration = self.restore(image.rgb, degradation_type, progress, explain)
        if not cv2.imwrite(target, encode_like(restoration.rgb, image.alpha, image.is_gray, image.dtype)):
            raise OSError(f'cannot write {target}')
        figures = None
        if restoration.trace is not None:
            from vlunet_basicsr.utils.plot_util import save_mixture_weights, save_residual_maps
            folder = osp.dirname(target)
            figures = tuple(osp.join(folder, path) for path in explain_files(osp.basename(target)))
            save_mixture_weights(restoration.trace, figures[0])
            save_residual_maps(restoration.trace, figures[1])
        return restoration, figures
