"""DegradationCLIP: a frozen open_clip backbone with learnable image and text adapters (paper Sec. 3.1-3.2)."""
import os.path as osp

import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from vlunet_basicsr.archs.clip_adapter import ADAPTER_ACTIVATIONS, ClipAdapter, adapters_from_release
from vlunet_basicsr.utils.clip_preprocess import clip_input
from vlunet_basicsr.utils.clip_defaults import DEFAULT_CLIP_MODEL
from vlunet_basicsr.utils.checkpoint_util import load_weights
from vlunet_basicsr.utils.option_values import expect, problems_of, raise_problems

ADAPTER_PREFIXES = ('image_adapter.', 'text_adapter.')
RESAVE_TO_TRUST = ('load it with torch.load(weights_only=False) in a Python session and torch.save the state dict '
                   'alone (network_clip has no trust switch)')


def looks_like_path(value):
    """Whether ``network_clip.pretrained`` names a file rather than an open_clip tag."""
    return osp.sep in value or value.endswith(('.pt', '.pth', '.bin', '.safetensors', '.ckpt'))


def create_clip_backbone(model_name, pretrained, model_cfg=None):
    """Build the open_clip model; ``pretrained`` is None (random), a local file, or an open_clip tag.

    A local file is never downloaded; a missing file, or a tag that is neither cached nor downloadable,
    fails with one message naming the file to get and where to put it.
    """
    import open_clip  # at first use: importing the package (registration) does not need it
    model_cfg = dict(model_cfg or {})
    if pretrained is None:
        get_root_logger().warning(f'network_clip: no pretrained weights given: the {model_name} CLIP backbone is '
                                  'randomly initialised (fine for tests and the demo, not for real training).')
        return open_clip.create_model(model_name, pretrained=None, **model_cfg)
    if osp.isfile(pretrained):
        return _create_from_file(model_name, pretrained, model_cfg)
    tags = open_clip.list_pretrained_tags_by_model(model_name)
    if looks_like_path(pretrained) or pretrained not in tags:
        raise FileNotFoundError(
            f"network_clip.pretrained: '{pretrained}' is not an existing file nor an open_clip tag of {model_name} "
            f"(tags: {', '.join(tags) or 'none'}). Put the CLIP weights file there (for a released VLU-Net "
            'checkpoint, scripts/convert_official_checkpoint.py writes clip_backbone.pth), or use a tag.')
    try:
        return open_clip.create_model(model_name, pretrained=pretrained, **model_cfg)
    except RuntimeError as error:
        hub = open_clip.get_pretrained_cfg(model_name, pretrained).get('hf_hub', '').rstrip('/')
        where = f'https://huggingface.co/{hub} (open_clip_pytorch_model.bin)' if hub else 'the open_clip release'
        raise FileNotFoundError(
            f"network_clip.pretrained: the {model_name} weights '{pretrained}' are not cached and could not be "
            f'downloaded. Get them from {where}, then set network_clip.pretrained to the file path (or put them in '
            f'the Hugging Face cache, ~/.cache/huggingface/hub). Detail: {str(error).splitlines()[0]}') from error


def _create_from_file(model_name, path, model_cfg):
    """open_clip's model with the weights of the local file ``path``; a corrupt or unsafe file is named as such."""
    import open_clip
    try:
        return open_clip.create_model(model_name, pretrained=path, **model_cfg)
    except Exception as error:  # noqa: BLE001  (the file or the model config: load_weights tells which)
        if path.endswith(('.safetensors', '.npz', '.npy')):
            raise
        load_weights(path, how_to_trust=RESAVE_TO_TRUST)  # raises a verdict naming the file when the file is bad
        raise ValueError(f'network_clip.pretrained: {path} is a readable checkpoint but does not fit the '
                         f'{model_name} model: {type(error).__name__}: {error}') from error


@ARCH_REGISTRY.register()
class DegradationCLIP(nn.Module):
    """Frozen open_clip backbone + image and text adapters that map CLIP features to degradation features.

    Args (YAML ``network_clip``):
        model_name (str): open_clip model. Default: 'ViT-B-32' (the paper's).
        pretrained (str | None): open_clip tag (e.g. 'laion2b_s34b_b79k', the paper's), a local weights file
            (e.g. the converter's clip_backbone.pth), or None for random weights (a warning is logged).
            Default: None.
        adapter_path (str | None): Adapters in BasicSR format (``{'params': {'image_adapter.*', 'text_adapter.*'}}``)
            or the released ``clip_tuned.pth``. Default: None (freshly initialised adapters).
        activation (str): Adapter activation: 'gelu' (released), 'relu', 'silu', 'tanh'. Default: 'gelu'.
        model_cfg (dict | None): Overrides of the open_clip model config (e.g. a tiny model for tests).
            Default: None.
    """

    @classmethod
    def argument_problems(cls, arguments):
        """Problems of the constructor's keyword arguments (a mapping of them), each naming its key."""
        return problems_of(
            expect('model_name', arguments['model_name'], 'str'),
            expect('pretrained', arguments['pretrained'], 'str', nullable=True),
            expect('adapter_path', arguments['adapter_path'], 'str', nullable=True),
            expect('activation', arguments['activation'], 'str', choices=tuple(ADAPTER_ACTIVATIONS)),
            expect('model_cfg', arguments['model_cfg'], 'dict', nullable=True))

    def __init__(self, model_name=DEFAULT_CLIP_MODEL, pretrained=None, adapter_path=None, activation='gelu',
                 model_cfg=None):
        raise_problems(type(self).__name__, self.argument_problems(locals()))
        super().__init__()
        self.model_name = model_name
        self.backbone = create_clip_backbone(model_name, pretrained, model_cfg).requires_grad_(False).eval()
        dim = self.backbone.visual.output_dim
        self.image_adapter = ClipAdapter(dim, activation)
        self.text_adapter = ClipAdapter(dim, activation)
        import open_clip
        self.tokenizer = open_clip.get_tokenizer(model_name)
        preprocess_cfg = self.backbone.visual.preprocess_cfg
        self.input_size = min(preprocess_cfg['size']) if isinstance(preprocess_cfg['size'], (tuple, list)) \
            else int(preprocess_cfg['size'])
        self.register_buffer('mean', torch.tensor(preprocess_cfg['mean']).view(1, 3, 1, 1), persistent=False)
        self.register_buffer('std', torch.tensor(preprocess_cfg['std']).view(1, 3, 1, 1), persistent=False)
        if adapter_path is not None:
            self.load_adapters(adapter_path)

    @property
    def image_tower_trainable(self):
        """Whether the backbone's image tower was made trainable (stage 1's ``train.train_backbone``)."""
        return any(p.requires_grad for p in self.backbone.visual.parameters())

    def train(self, mode=True):
        super().train(mode)
        self.backbone.eval()  # frozen: dropout and the like stay off
        if mode and self.image_tower_trainable:
            self.backbone.visual.train()  # a trained image tower (stage 1's train.train_backbone): its norms learn
        return self

    def preprocess(self, images):
        """Images in [0, 1] (B, C, H, W) -> CLIP input, see `vlunet_basicsr.utils.clip_preprocess.clip_input`."""
        return clip_input(images, self.input_size, self.mean, self.std)

    def encode_image(self, clip_images):
        """Adapted image features (B, d) of preprocessed images (not normalised, as released).

        The backbone gets gradients only when its image tower was made trainable (stage 1's
        ``train.train_backbone``); otherwise it runs without autograd, frozen.
        """
        with torch.set_grad_enabled(self.image_tower_trainable and torch.is_grad_enabled()):
            features = self.backbone.encode_image(clip_images)
        return self.image_adapter(features)

    @torch.no_grad()
    def degradation_vector(self, images):
        """The guidance vector of images in [0, 1] (B, C, H, W): adapted image features (B, d) in float32.

        What VLUNet is given, everywhere (training, validation, ``basicsr restore``, the benchmark). No
        gradient; runs under the caller's autocast policy and returns float32 whatever it is.
        """
        return self.encode_image(self.preprocess(images)).float()

    def encode_text(self, prompts):
        """Adapted text features (K, d) of a list of prompts."""
        tokens = self.tokenizer(list(prompts)).to(self.mean.device)
        with torch.no_grad():
            features = self.backbone.encode_text(tokens)
        return self.text_adapter(features)

    def forward(self, clip_images, prompts):
        """(image features (B, d), prompt features (K, d)); used when training the adapters."""
        return self.encode_image(clip_images), self.encode_text(prompts)

    @torch.no_grad()
    def classify(self, clip_images, prompts, logit_scale=None):
        """Zero-shot degradation classification: probabilities (B, K) over ``prompts``.

        Args:
            logit_scale (float | None): Multiplier of the cosine similarities. Default: the backbone's.
        """
        return self.prompt_probabilities(self.encode_image(clip_images), prompts, logit_scale)

    @torch.no_grad()
    def prompt_probabilities(self, image_features, prompts, logit_scale=None):
        """`classify` from adapted image features (B, d) already computed, e.g. a `degradation_vector`."""
        return self.probabilities_over(image_features, self.encode_text(prompts), logit_scale)

    @torch.no_grad()
    def probabilities_over(self, image_features, text_features, logit_scale=None):
        """`prompt_probabilities` from adapted text features (K, d) already computed (`encode_text`'s): callers
        that classify many images encode their prompts once (the text tower over 11 prompts costs about as much
        as restoring a 256x256 image with VLURNet on CPU)."""
        image = F.normalize(image_features, dim=-1)
        text = F.normalize(text_features.to(image.device), dim=-1).to(image.dtype)
        scale = self.backbone.logit_scale.exp() if logit_scale is None else logit_scale
        return (scale * image @ text.t()).softmax(dim=-1)

    def adapter_state_dict(self):
        """The adapters' weights only (the backbone is never written again)."""
        return {key: value for key, value in self.state_dict().items() if key.startswith(ADAPTER_PREFIXES)}

    def load_adapters(self, path):
        """Load adapters from a BasicSR file (``params``) or the released ``clip_tuned.pth`` (``learnable_params``)."""
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'network_clip.adapter_path: no adapter file at {path}. Use the output of stage-1 adapter tuning '
                '(experiments/<name>/models/net_clip_latest.pth) or convert the released clip_tuned.pth with '
                'scripts/convert_official_checkpoint.py.')
        checkpoint = load_weights(path, how_to_trust=RESAVE_TO_TRUST)
        if isinstance(checkpoint, dict) and 'learnable_params' in checkpoint:
            state = adapters_from_release(checkpoint['learnable_params'])
        elif isinstance(checkpoint, dict) and isinstance(checkpoint.get('params'), dict):
            state = checkpoint['params']
        else:
            raise ValueError(f"network_clip.adapter_path: {path} holds neither 'params' (BasicSR adapters) nor "
                             "'learnable_params' (released clip_tuned.pth)")
        expected = set(self.adapter_state_dict())
        if set(state) != expected:
            missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
            raise ValueError(f'network_clip.adapter_path: {path} does not match the adapters: '
                             f'missing {missing[:4]}, unexpected {unexpected[:4]}')
        self.load_state_dict(state, strict=False)
