"""The guidance a restoration network gets per batch from a frozen encoder (see `network_inputs`)."""
import torch

from basicsr.archs import build_network
from vlunet_basicsr.utils.prompts import DEGRADATION_PROMPTS, prompt_label, resolve_prompts



class Guidance:
    """Computes a batch's guidance input from the frozen encoder, as the arch's ``guidance_input`` asks.

    ``None``: nothing. ``'image_features'``: ``encoder.degradation_vector(lq)`` (B, d) in float32, or None
    without an encoder. ``'text_features'``: the adapted text embedding of one prompt per image, (B, d), in
    float32: the prompt of the sample's label in training; in evaluation the prompt ``val.degradation_type``
    names, else the one the encoder predicts from the image (``prompt_probabilities`` over ``prompts``).
    The prompt embeddings are computed once, in float32. The encoder is frozen and never trained or saved.

    Reads from the YAML:
        network_clip (dict | None): The encoder (``DegradationCLIP`` options), or ``~`` for none.
        prompts (list[str] | str): Prompt of each label, in label order, or a prompt set's name (``release``,
            ``cdd11``) ('text_features' only). Default: the release's seven.
        val.degradation_type (int | str | None): For 'text_features' in validation and testing: the label, its
            name (``haze_rain`` for CDD-11) or the prompt to use for every image instead of the predicted one.
            Default: None (predict).

    Attributes:
        encoder (nn.Module | None): The frozen encoder.
        last_prompts (Tensor | None): 'text_features': the prompt index used for each image of the last batch.
        last_probabilities (Tensor | None): 'text_features' in evaluation: the last batch's probabilities over
            ``prompts`` (B, K), float32, computed also when ``val.degradation_type`` fixes the prompt used (for
            the reports, `vlunet_basicsr.models.degradation_report`); None after a training batch.
    """

    def __init__(self, kind, encoder, prompts=DEGRADATION_PROMPTS, degradation_type=None):
        self.kind = kind
        self.encoder = encoder
        self.prompts = list(prompts)
        self.last_prompts = None
        self.last_probabilities = None
        self.fixed_prompt = None
        self._prompt_features = None
        if kind == 'text_features':
            if degradation_type is not None:
                self.fixed_prompt = prompt_label(degradation_type, self.prompts)
            device_type = next(encoder.parameters()).device.type
            with torch.no_grad(), torch.autocast(device_type, enabled=False):
                self._prompt_features = encoder.encode_text(self.prompts).float()

    @classmethod
    def from_options(cls, opt, inputs, device):
        """Build from the YAML for an arch with protocol ``inputs`` (`NetworkInputs`); checks the combination."""
        clip_opt = opt.get('network_clip')
        inputs.check_encoder(clip_opt is not None)
        encoder = None
        if clip_opt is not None:
            encoder = build_network(clip_opt).to(device).eval().requires_grad_(False)
        val_opt = opt.get('val') or {}
        return cls(inputs.guidance_input, encoder, resolve_prompts(opt.get('prompts')),
                   val_opt.get('degradation_type'))

    def last_prediction(self):
        """'text_features' in evaluation: (predicted label (B,), its probability (B,), label used (B,)) of the
        last batch, on the CPU; None otherwise (training, or another kind of guidance)."""
        if self.last_probabilities is None:
            return None
        confidence, predicted = self.last_probabilities.max(dim=1)
        return predicted.cpu(), confidence.cpu(), self.last_prompts.cpu()

    def __call__(self, lq, labels=None, evaluating=False):
        """The guidance input for images ``lq`` (B, C, H, W) in [0, 1] with their ``labels`` (B,) or None."""
        if self.kind is None or self.encoder is None:
            return None
        if self.kind == 'image_features':
            return self.encoder.degradation_vector(lq)
        self.last_prompts = self._prompt_indices(lq, labels, evaluating)
        return self._prompt_features[self.last_prompts]

    def _prompt_indices(self, lq, labels, evaluating):
        device = self._prompt_features.device
        self.last_probabilities = None
        if evaluating:  # predicted also when a type is given: the reports give both
            features = self.encoder.degradation_vector(lq)
            self.last_probabilities = self.encoder.probabilities_over(features, self._prompt_features).float()
            if self.fixed_prompt is not None:
                return torch.full((lq.shape[0],), self.fixed_prompt, dtype=torch.long, device=device)
            return self.last_probabilities.argmax(dim=1).to(device)
        if labels is None:
            raise ValueError("text_features guidance in training needs the batch's 'label' (index into prompts)")
        labels = torch.as_tensor(labels).long().reshape(-1).to(device)
        if labels.min() < 0 or labels.max() >= len(self.prompts):
            raise ValueError(f'a training label is outside 0-{len(self.prompts) - 1} (the prompts: {self.prompts}); '
                             f'got labels {labels.tolist()}')
        return labels
