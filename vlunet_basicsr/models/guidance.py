"""The guidance a restoration network gets per batch from a frozen encoder (see `network_inputs`): one object for
training, validation, ``basicsr restore``, export and serve."""
import torch

from basicsr.archs import build_network
from vlunet_basicsr.utils.prompts import DEGRADATION_PROMPTS, prompt_label, resolve_prompts


def encode_prompts(encoder, prompts):
    """The adapted text features (K, d) of ``prompts``, float32, without gradients or autocast."""
    parameter = next(encoder.parameters(), None) if isinstance(encoder, torch.nn.Module) else None
    device_type = 'cpu' if parameter is None else parameter.device.type
    with torch.no_grad(), torch.autocast(device_type, enabled=False):
        return encoder.encode_text(prompts).float()


class Guidance:
    """Computes a batch's guidance input from the frozen encoder, as the arch's protocol (`NetworkInputs`) asks.

    Unguided arch (or no encoder): None. ``'image_features'``: ``encoder.degradation_vector(lq)`` (B, d).
    ``'text_features'`` (`NetworkInputs.prompt_guided`): the adapted text embedding of one prompt per image,
    (B, d), float32: the prompt of the sample's label in training; in evaluation the prompt given (the call's
    ``fixed_prompt``, else ``val.degradation_type``), else the one the encoder predicts from the image. The prompt
    embeddings are computed once, in float32. The encoder is frozen and never trained or saved; it may be an
    exported graph's runner (`vlunet_basicsr.tools.export.onnx_runtime.OnnxGuidance`).

    Reads from the YAML (`from_options`):
        network_clip (dict | None): The encoder (``DegradationCLIP`` options), or ``~`` for none.
        prompts (list[str] | str): Prompt of each label, in label order, or a prompt set's name (``release``,
            ``cdd11``). Default: the release's seven.
        val.degradation_type (int | str | None): Text-guided archs in validation and testing: the label, its
            name (``haze_rain`` for CDD-11) or the prompt to use for every image instead of the predicted one.
            Default: None (predict).

    Args:
        inputs (NetworkInputs): The arch's protocol.
        encoder (nn.Module | None): The frozen encoder.
        prompts (list[str]): Prompt of each label.
        fixed_prompt (int | None): The label to restore every evaluated image with (text-guided archs).
        readout (bool): Also compute, in evaluation, the probabilities over the prompts for an arch guided by image
            features (``basicsr restore`` reports them); text-guided archs always do. Default: False.

    Attributes:
        last_prompts (Tensor | None): Text-guided archs: the prompt index used for each image of the last batch.
        last_probabilities (Tensor | None): In evaluation with a readout: the last batch's probabilities over
            ``prompts`` (B, K), float32, computed also when a fixed prompt is used (for the reports,
            `vlunet_basicsr.models.degradation_report`); None after a training batch.
    """

    def __init__(self, inputs, encoder, prompts=DEGRADATION_PROMPTS, fixed_prompt=None, readout=False):
        self.inputs = inputs
        self.encoder = encoder
        self.prompts = list(prompts)
        self.fixed_prompt = fixed_prompt
        self.readout = encoder is not None and (readout or inputs.prompt_guided)
        self.last_prompts = None
        self.last_probabilities = None
        self.prompt_features = encode_prompts(encoder, self.prompts) if self.readout else None

    @classmethod
    def from_options(cls, opt, inputs, device):
        """Build from the YAML for an arch with protocol ``inputs`` (`NetworkInputs`); checks the combination."""
        clip_opt = opt.get('network_clip')
        inputs.check_encoder(clip_opt is not None)
        encoder = None
        if clip_opt is not None:
            encoder = build_network(clip_opt).to(device).eval().requires_grad_(False)
        prompts = resolve_prompts(opt.get('prompts'))
        degradation_type = (opt.get('val') or {}).get('degradation_type')
        fixed = None
        if inputs.prompt_guided and degradation_type is not None:
            fixed = prompt_label(degradation_type, prompts)
        return cls(inputs, encoder, prompts, fixed)

    @property
    def reports_types(self):
        """Whether evaluation gives a degradation type per image (`last_prediction`)."""
        return self.readout

    def last_prediction(self):
        """In evaluation with a readout: (predicted label (B,), its probability (B,), label used (B,)) of the last
        batch, on the CPU; None otherwise (training, or no readout)."""
        if self.last_probabilities is None:
            return None
        confidence, predicted = self.last_probabilities.max(dim=1)
        used = predicted if self.last_prompts is None else self.last_prompts
        return predicted.cpu(), confidence.cpu(), used.cpu()

    def __call__(self, lq, labels=None, evaluating=False, fixed_prompt=None):
        """The guidance input for images ``lq`` (B, C, H, W) in [0, 1] with their ``labels`` (B,) or None;
        ``fixed_prompt`` (evaluation): the label to use instead of ``self.fixed_prompt`` and the prediction."""
        self.last_prompts = self.last_probabilities = None
        if not self.inputs.guided or self.encoder is None:
            return None
        if evaluating and self.readout:  # predicted also when a type is given: the reports give both
            features = self.encoder.degradation_vector(lq)
            self.last_probabilities = self.encoder.probabilities_over(features, self.prompt_features).float()
            if not self.inputs.prompt_guided:
                return features
        elif not self.inputs.prompt_guided:
            return self.encoder.degradation_vector(lq)
        self.last_prompts = self._prompt_indices(lq, labels, evaluating, fixed_prompt)
        return self.prompt_features[self.last_prompts]

    def _prompt_indices(self, lq, labels, evaluating, fixed_prompt):
        device = self.prompt_features.device
        if evaluating:
            fixed = self.fixed_prompt if fixed_prompt is None else fixed_prompt
            if fixed is not None:
                return torch.full((lq.shape[0],), fixed, dtype=torch.long, device=device)
            return self.last_probabilities.argmax(dim=1).to(device)
        if labels is None:
            raise ValueError("text-guided training needs the batch's 'label' (index into prompts)")
        labels = torch.as_tensor(labels).long().reshape(-1).to(device)
        if labels.min() < 0 or labels.max() >= len(self.prompts):
            raise ValueError(f'a training label is outside 0-{len(self.prompts) - 1} (the prompts: {self.prompts}); '
                             f'got labels {labels.tolist()}')
        return labels
