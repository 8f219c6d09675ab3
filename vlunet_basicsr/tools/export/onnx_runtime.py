"""The exported-graph backends of `vlunet_basicsr.tools.restore.restorer.Restorer`: run the graphs ``basicsr export``
writes, in ONNX Runtime (`OnnxRuntime`) or OpenVINO (`vlunet_basicsr.tools.export.openvino_runtime.OpenVinoRuntime`).

A runtime opens a graph file as a session (``session.run([output], feed)`` -> arrays) with its metadata; the rest is
runtime-neutral. `load_onnx_networks` reads the restoration graph (``model.onnx``) and, for a guided system, its
guidance graph (``model.guidance.onnx``, named in the first graph's metadata) and returns a `Networks` whose ``net`` is
an `OnnxNetwork` and whose ``clip`` is an `OnnxGuidance`. Both take and return torch tensors the way the torch modules
do, so `Restorer` pads, tiles, reads out the degradation and restores exactly as with the torch backend.

The guidance graph holds the CLIP image branch and its adapter (preprocessed 224x224 images -> adapted image
features); CLIP preprocessing stays the project's one torch function (`vlunet_basicsr.utils.clip_preprocess`),
and the adapted text features of the prompts (what the zero-shot readout compares against, and what a
text-guided arch such as VL-UR is restored with) travel in the guidance graph's metadata with the logit scale.
"""
import base64
import json
import os.path as osp

import numpy as np
import torch
from torch.nn import functional as F

from vlunet_basicsr.models.network_inputs import GUIDANCE_INPUTS, NetworkInputs
from vlunet_basicsr.tools.restore.restorer import Networks
from vlunet_basicsr.utils.clip_preprocess import clip_input
from vlunet_basicsr.utils.padding import SizeRule

#: Written into every graph's metadata by `vlunet_basicsr.tools.export.onnx_export`; anything else is refused.
FORMAT = 'vlunet_basicsr.onnx/1'
#: Graph input and output names.
LQ, GUIDANCE, OUTPUT = 'lq', 'guidance', 'output'
CLIP_IMAGE, IMAGE_FEATURES = 'clip_image', 'image_features'


def encode_array(array):
    """A float32 array as metadata text: base64 of its little-endian bytes (exact)."""
    return base64.b64encode(np.ascontiguousarray(array, dtype='<f4').tobytes()).decode('ascii')


def decode_array(text, shape):
    """Inverse of `encode_array`."""
    return np.frombuffer(base64.b64decode(text), dtype='<f4').reshape(shape).astype(np.float32)


def guidance_path(path):
    """The guidance graph's file beside the restoration graph ``path``: ``model.onnx`` -> ``model.guidance.onnx``."""
    root, _ = osp.splitext(path)
    return f'{root}.guidance.onnx'


def execution_providers(device='auto'):
    """ONNX Runtime's execution providers for ``device``: 'auto' (CUDA when installed, else CPU), 'cpu' or 'cuda'."""
    import onnxruntime
    available = onnxruntime.get_available_providers()
    cuda = 'CUDAExecutionProvider' in available
    if device == 'cuda' and not cuda:
        raise ValueError('--device cuda: this onnxruntime has no CUDAExecutionProvider (available: '
                         f"{', '.join(available)}); install onnxruntime-gpu, or use --device cpu")
    if device not in ('auto', 'cpu', 'cuda'):
        raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
    use_cuda = cuda and device != 'cpu'
    return (['CUDAExecutionProvider'] if use_cuda else []) + ['CPUExecutionProvider']


class OnnxRuntime:
    """ONNX Runtime on ``providers`` (`execution_providers`): ``open(path)`` -> (InferenceSession, metadata,
    input names)."""

    def __init__(self, providers):
        self.providers = providers

    def open(self, path):
        import onnxruntime
        session = onnxruntime.InferenceSession(path, providers=self.providers)
        inputs = {node.name for node in session.get_inputs()}
        return session, session.get_modelmeta().custom_metadata_map, inputs

    @staticmethod
    def describe(session):
        return f"ONNX Runtime on {', '.join(session.get_providers())}"


def _runtime(runtime):
    """A runtime object; a list of ONNX Runtime execution providers stands for `OnnxRuntime` on them."""
    return OnnxRuntime(runtime) if isinstance(runtime, (list, tuple)) else runtime


def _session(path, runtime, what, graph):
    """A session of ``path`` (a ``graph`` graph: 'restoration' or 'guidance') in ``runtime``, its metadata and
    input names; errors name the file."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{what}: no ONNX file at {path} (write one with basicsr export)')
    try:
        session, meta, inputs = runtime.open(path)
    except Exception as error:  # noqa: BLE001  (the runtimes raise their own pybind classes)
        raise ValueError(f'{what}: {path} is not a loadable ONNX graph: {str(error).splitlines()[0]}') from error
    if meta.get('format') != FORMAT:
        raise ValueError(f'{what}: {path} was not written by basicsr export (no {FORMAT} metadata); export the '
                         'network with basicsr export')
    if meta.get('graph') != graph:
        raise ValueError(f"{what}: {path} is a {meta.get('graph')} graph, not a {graph} graph" +
                         (' (give the model.onnx beside it)' if graph == 'restoration' else ''))
    return session, meta, inputs


def _numpy(tensor):
    return np.ascontiguousarray(tensor.detach().float().cpu().numpy())


class OnnxNetwork:
    """The restoration graph, called like the torch network: ``net(lq[, guidance])`` -> restored images.

    Args:
        path (str): The restoration graph (``model.onnx``).
        runtime (list[str] | object): ONNX Runtime execution providers, or a runtime (`OnnxRuntime`,
            `OpenVinoRuntime`).

    Attributes:
        inputs (NetworkInputs): The exported arch's protocol (one output image: the final one).
        takes_guidance (bool): Whether the graph has a ``guidance`` input (a guided arch exported with its encoder).
    """

    def __init__(self, path, runtime):
        self.path = path
        self.runtime = _runtime(runtime)
        self.session, self.meta, names = _session(path, self.runtime, '--onnx', 'restoration')
        guidance = self.meta.get('guidance_input') or None
        if guidance not in GUIDANCE_INPUTS:
            raise ValueError(f'--onnx: {path} declares an unknown guidance_input {guidance!r}')
        self.inputs = NetworkInputs(self.meta['arch'], guidance, False)
        self.takes_guidance = GUIDANCE in names

    def describe(self):
        """Where the graph runs, e.g. 'ONNX Runtime on CPUExecutionProvider'."""
        return self.runtime.describe(self.session)

    def __call__(self, lq, guidance=None):
        feed = {LQ: _numpy(lq)}
        if self.takes_guidance:
            if guidance is None:
                raise ValueError(f'{self.path} takes a guidance input; none was given')
            feed[GUIDANCE] = _numpy(guidance)
        return torch.from_numpy(self.session.run([OUTPUT], feed)[0]).to(lq.device)


class OnnxGuidance:
    """The guidance graph in `DegradationCLIP`'s place: ``degradation_vector``, ``prompt_probabilities`` and
    ``encode_text`` (the exported prompts only), with the same arithmetic.

    Args:
        path (str): The guidance graph (``model.guidance.onnx``).
        runtime (list[str] | object): As `OnnxNetwork`'s.
    """

    def __init__(self, path, runtime):
        self.path = path
        self.session, meta, _ = _session(path, _runtime(runtime), 'guidance graph', 'guidance')
        self.input_size = int(meta['input_size'])
        self.mean, self.std = json.loads(meta['mean']), json.loads(meta['std'])
        self.prompts = json.loads(meta['prompts'])
        self.prompt_features = torch.from_numpy(
            decode_array(meta['prompt_features'], (len(self.prompts), int(meta['feature_dim']))))
        self.logit_scale = torch.tensor(float(meta['logit_scale']), dtype=torch.float32)

    def _check(self, prompts):
        if list(prompts) != self.prompts:
            raise ValueError(f'{self.path} was exported with the prompts {self.prompts}; got {list(prompts)} '
                             '(export again with these prompts)')

    def degradation_vector(self, images):
        """Adapted image features (B, d) float32 of images in [0, 1] (B, C, H, W), as `DegradationCLIP`'s."""
        clip_images = clip_input(images, self.input_size, self.mean, self.std)
        features = self.session.run([IMAGE_FEATURES], {CLIP_IMAGE: _numpy(clip_images)})[0]
        return torch.from_numpy(features).to(images.device)

    def encode_text(self, prompts):
        """Adapted text features (K, d) of the exported ``prompts``."""
        self._check(prompts)
        return self.prompt_features.clone()

    def prompt_probabilities(self, image_features, prompts, logit_scale=None):
        """Zero-shot probabilities (B, K) over the exported ``prompts``, as `DegradationCLIP.prompt_probabilities`."""
        self._check(prompts)
        return self.probabilities_over(image_features, self.prompt_features, logit_scale)

    def probabilities_over(self, image_features, text_features, logit_scale=None):
        """Probabilities (B, K) over adapted text features (K, d), as `DegradationCLIP.probabilities_over`."""
        image = F.normalize(image_features, dim=-1)
        text = F.normalize(text_features.to(image.device), dim=-1).to(image.dtype)
        scale = self.logit_scale.to(image.device) if logit_scale is None else logit_scale
        return (scale * image @ text.t()).softmax(dim=-1)


def load_onnx_networks(path, device='auto', degradation_type=None, runtime=None):
    """The exported system at ``path`` as a `Networks` for `Restorer` (run it with ``device=torch.device('cpu')``:
    tensors meet ONNX Runtime on the host, and the graphs run on the providers of ``device``).

    Args:
        path (str): The restoration graph written by ``basicsr export`` (its guidance graph sits beside it).
        device (str): 'auto', 'cpu' or 'cuda' (`execution_providers`). Default: 'auto'.
        degradation_type (str | int | None): Text-guided archs: restore every image with this label (number, name
            or prompt) instead of the predicted one.
        runtime (object | None): The runtime (`OpenVinoRuntime`, ...). Default: None (ONNX Runtime on ``device``).

    Returns:
        Networks: ``net`` an `OnnxNetwork`, ``clip`` an `OnnxGuidance` (or None), and the exported prompts,
        fixed label and size rule (the graph's inputs are padded to it, as the torch network's are).
    """
    from vlunet_basicsr.utils.prompts import prompt_label, resolve_prompts
    runtime = runtime or OnnxRuntime(execution_providers(device))
    net = OnnxNetwork(path, runtime)
    clip = None
    if net.takes_guidance:
        clip = OnnxGuidance(osp.join(osp.dirname(path), net.meta['guidance_graph']), runtime)
    prompts = clip.prompts if clip is not None else resolve_prompts(None)
    net.inputs.check_encoder(clip is not None)
    fixed = net.meta.get('fixed_label')
    fixed = int(fixed) if fixed else None
    if degradation_type is not None:
        fixed = prompt_label(degradation_type, prompts, '--degradation-type')
        net.inputs.check_degradation_type(fixed)
    rule = SizeRule(int(net.meta.get('size_multiple', 1)), int(net.meta.get('min_size', 1)))
    return Networks(net, net.inputs, clip, prompts, fixed, rule)


def load_exported_networks(backend, path, device='auto', degradation_type=None, ov_precision=None):
    """`load_onnx_networks` in the runtime ``backend`` names: 'onnxruntime', or 'openvino' in ``ov_precision``
    ('f32', default, or 'bf16'; `vlunet_basicsr.tools.export.openvino_runtime`)."""
    runtime = None
    if backend == 'openvino':
        from vlunet_basicsr.tools.export.openvino_runtime import OpenVinoRuntime
        runtime = OpenVinoRuntime(ov_precision or 'f32', device)
    elif backend != 'onnxruntime':
        raise ValueError(f"backend must be onnxruntime or openvino for an exported graph, got {backend!r}")
    return load_onnx_networks(path, device, degradation_type, runtime)
