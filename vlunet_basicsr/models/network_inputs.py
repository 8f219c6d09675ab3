"""The arch protocol: what a restoration network takes and returns, declared by the arch class itself.

An arch declares two class attributes; an arch that declares neither (any BasicSR arch) gets the defaults:

``guidance_input`` (default ``None``)
    ``None``: ``net(lq)``, an image-only network (SwinIR, DGUNet, ...).
    ``'image_features'``: ``net(lq, vector)`` with the vector (B, d) that the guidance encoder
    (``network_clip``, a `DegradationCLIP`) computes from the LQ image, ``degradation_vector(lq)`` (VLUNet).
    Without ``network_clip`` the network gets ``None`` as its vector (VLUNet's "w/o CLIP" ablation).
    ``'text_features'``: ``net(lq, embedding)`` with the text embedding (B, d) of a degradation prompt: in
    training the prompt of each sample's label, in validation and testing the prompt the encoder predicts
    from the image (or the one ``val.degradation_type`` names). Needs ``network_clip``.

``multi_stage_output`` (default ``False``)
    ``True``: ``net(x[, guidance], return_stages=True)`` returns a list of stage images, final first, and the
    training loss is summed over them; ``net(x[, guidance])`` returns the final image alone, which is what
    validation, testing, metrics and saved images use.

``size_multiple`` and ``min_size`` (ints, attributes or properties of the instance; default: derived)
    The multiple the input's height and width must have, and their least size. Training, validation,
    ``basicsr restore`` (every tile), export and serve pad the input (bottom/right, `vlunet_basicsr.utils.padding`)
    to them and crop the output back (`size_rule`); ``val.size_multiple`` only overrides the multiple. An arch
    from BasicSR that declares nothing gets its rule from its options, here in `BASICSR_SIZE_RULES` (SwinIR: its
    window size; RRDBNet: 4 at scale 1 and 2 at scale 2, its pixel-unshuffle); any other arch: 1.

``forward_with_trace(x[, guidance])`` (optional method)
    Returns ``(image, trace)``, the per-stage trace that ``basicsr restore --explain`` and serve plot (VLUNet's).
    Declared by defining it; read as `NetworkInputs.explains`.

``training_losses()`` (optional method)
    The arch's own loss terms of its last training forward, ``{name: weighted scalar tensor}`` with names
    ``l_<something>`` (MoCE-IR's routing balance); the model adds them to the YAML's losses and logs them. Declared
    by defining it; read as `NetworkInputs.own_losses`.

``export_unsupported`` (str, optional)
    Why ``basicsr export`` cannot write this arch as an ONNX graph, naming the operator at fault (AdaIR's FFT
    window); the command then refuses with that reason instead of failing inside the exporter. Read as
    `NetworkInputs.export_unsupported`.

``options_from_weights(state)`` (optional classmethod)
    The keyword arguments that build the arch for a state dict of its own (from its keys and shapes), or None for
    another arch's: how ``--weights net_g.pth`` loads without a YAML when the file does not name its network
    (`network_options_from_weights`).

A guided arch may also define ``freeze_guidance_layers()``: the model calls it once, before DDP wraps the
network, when the arch runs without its guidance (``network_clip: ~``), to freeze the layers that then get no
gradient (VLUNet's D-GDM linears).

Giving ``network_clip`` to an arch whose ``guidance_input`` is None is an error, and so is leaving it out for
a ``'text_features'`` arch.
"""
import math
import sys
from dataclasses import dataclass

from vlunet_basicsr.utils.padding import SizeRule

#: The values ``guidance_input`` may take.
GUIDANCE_INPUTS = (None, 'image_features', 'text_features')


@dataclass(frozen=True)
class NetworkInputs:
    """The protocol values of one arch class, validated.

    Attributes:
        arch (str): The arch class name (for logs and errors).
        guidance_input (str | None): One of `GUIDANCE_INPUTS`.
        multi_stage_output (bool): Whether ``return_stages=True`` gives a list of stage images.
        explains (bool): Whether the arch defines ``forward_with_trace`` (``--explain``).
        export_unsupported (str | None): Why the arch cannot be exported, or None.
        own_losses (bool): Whether the arch defines ``training_losses`` (loss terms of its own).
    """

    arch: str
    guidance_input: str | None = None
    multi_stage_output: bool = False
    explains: bool = False
    export_unsupported: str | None = None
    own_losses: bool = False

    @classmethod
    def of(cls, arch_class):
        """Read the protocol of ``arch_class`` (defaults for undeclared attributes); ValueError on bad values."""
        guidance = getattr(arch_class, 'guidance_input', None)
        stages = getattr(arch_class, 'multi_stage_output', False)
        name = arch_class.__name__
        if guidance not in GUIDANCE_INPUTS:
            raise ValueError(f'{name}.guidance_input must be one of {GUIDANCE_INPUTS}; got {guidance!r}')
        if not isinstance(stages, bool):
            raise ValueError(f'{name}.multi_stage_output must be true or false; got {stages!r}')
        unsupported = getattr(arch_class, 'export_unsupported', None)
        if unsupported is not None and not isinstance(unsupported, str):
            raise ValueError(f'{name}.export_unsupported must be a reason (a string) or None; got {unsupported!r}')
        return cls(name, guidance, stages, callable(getattr(arch_class, 'forward_with_trace', None)), unsupported,
                   callable(getattr(arch_class, 'training_losses', None)))

    def arch_losses(self, net):
        """The loss terms the arch ``net`` (a bare module) adds to its last training forward; {} for most archs."""
        if not self.own_losses:
            return {}
        terms = dict(net.training_losses())
        named = [name for name in terms if not (isinstance(name, str) and name.startswith('l_'))]
        if named:
            raise ValueError(f'{self.arch}.training_losses() must name its terms l_<something>, got {named}')
        return terms

    @property
    def guided(self):
        return self.guidance_input is not None

    @property
    def prompt_guided(self):
        """Whether the guidance is the text embedding of one degradation prompt per image (chosen by the sample's
        label in training, predicted or given in evaluation): such an arch takes a degradation type."""
        return self.guidance_input == 'text_features'

    def check_degradation_type(self, label, where='--degradation-type'):
        """Fail when a degradation type (``label``, not None) is given for an arch that takes none."""
        if label is not None and not self.prompt_guided:
            raise ValueError(f'{where} is for text-guided archs; {self.arch} does not take one')

    def check_encoder(self, has_encoder):
        """Fail when ``network_clip`` is given to an unguided arch, or missing for a text-guided one."""
        if has_encoder and not self.guided:
            raise ValueError(f'network_clip is set, but {self.arch} takes no guidance (its guidance_input is None): '
                             f'remove network_clip, or use an arch that takes a guidance input')
        if not has_encoder and self.prompt_guided:
            raise ValueError(f"{self.arch} takes the text embedding of a degradation prompt (guidance_input "
                             "'text_features'), which needs network_clip (a DegradationCLIP); none is set")

    def describe(self, encoder_name=None):
        """One line for the log: which network runs, whether it is guided and by what."""
        outputs = 'stage images, loss summed over them' if self.multi_stage_output else 'one image'
        if not self.guided:
            guidance = 'unguided: net(lq)'
        elif encoder_name is None:
            guidance = f'takes {self.guidance_input} but network_clip is empty: runs unguided (guidance None)'
        else:
            what = 'prompt text embeddings' if self.prompt_guided else 'image features'
            guidance = f'guided by the {what} of {encoder_name} (network_clip)'
        return f'Network {self.arch}: {guidance}; returns {outputs}.'

    def arguments(self, lq, guidance):
        """The positional inputs of the network."""
        return (lq,) if self.guidance_input is None else (lq, guidance)

    def outputs(self, net, lq, guidance, rule=SizeRule()):
        """Training forward: the list of output images, final first (one entry for single-output networks), the
        input padded by the `SizeRule` ``rule`` and every output cropped back."""
        image, size = rule.pad(lq)
        if self.multi_stage_output:
            stages = list(net(*self.arguments(image, guidance), return_stages=True))
            if not stages:
                raise ValueError(f'{self.arch}(return_stages=True) returned no images')
        else:
            stages = [net(*self.arguments(image, guidance))]
        if rule.trivial:
            return stages
        return [rule.crop(output, image, size) for output in stages]

    def final(self, net, guidance):
        """A one-argument callable: image -> the network's final output image, guided by ``guidance``."""
        if self.guidance_input is None:
            return net
        return lambda image: net(image, guidance)

    def explain(self, net, lq, guidance):
        """``net.forward_with_trace`` on ``lq`` with ``guidance``: the trace (see the module docstring)."""
        if not self.explains:
            raise ValueError(f'--explain shows the per-stage trace of an arch that defines forward_with_trace; '
                             f'{self.arch} does not')
        return net.forward_with_trace(*self.arguments(lq, guidance))[1]


#: Size rules of BasicSR's archs, which declare none: (module, class, the input multiple of an instance).
BASICSR_SIZE_RULES = (
    # every Swin block's window must tile the image (BasicSR's SwinIRModel pads to window_size for this)
    ('basicsr.archs.swinir_arch', 'SwinIR',
     lambda net: math.lcm(*(module.window_size for module in net.modules()
                            if isinstance(getattr(module, 'window_size', None), int)))),
    # scale 1 and 2 pixel-unshuffle the input by 4 and 2 before the trunk
    ('basicsr.archs.rrdbnet_arch', 'RRDBNet', lambda net: {1: 4, 2: 2}.get(net.scale, 1)),
)


def _declared(net, key):
    value = getattr(net, key, None)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f'{type(net).__name__}.{key} must be a whole number >= 1; got {value!r}')
    return value


def _derived_multiple(net):
    for module, name, multiple in BASICSR_SIZE_RULES:
        arch_class = getattr(sys.modules.get(module), name, None)  # loaded whenever net is one of its classes
        if arch_class is not None and isinstance(net, arch_class):
            return multiple(net)
    return 1


def size_rule(net, override=None):
    """The `SizeRule` of the network instance ``net``: its declared ``size_multiple`` and ``min_size``, else the
    rule derived from its options (`BASICSR_SIZE_RULES`), else 1; ``override`` (``val.size_multiple``), when
    given, replaces the multiple."""
    multiple = _declared(net, 'size_multiple') or _derived_multiple(net)
    if override is not None:
        multiple = int(override)
    return SizeRule(multiple, _declared(net, 'min_size') or 1)


def network_options_from_weights(checkpoint, state, source):
    """The ``network_g`` options for weights given without a YAML: the ``network_g`` mapping the ``checkpoint``
    declares beside its parameters, else the one registered arch whose ``options_from_weights(state)`` claims the
    state dict. ValueError naming ``source`` when neither does."""
    from basicsr.utils.registry import ARCH_REGISTRY
    declared = checkpoint.get('network_g')
    if isinstance(declared, dict) and 'type' in declared:
        return dict(declared)
    claims = []
    for name, arch_class in ARCH_REGISTRY:
        if 'options_from_weights' not in vars(arch_class):  # declared by the class itself, not inherited
            continue
        options = arch_class.options_from_weights(state)
        if options is not None:
            claims.append({'type': name, **options})
    if len(claims) != 1:
        found = 'no registered arch' if not claims else f"several archs ({', '.join(c['type'] for c in claims)})"
        raise ValueError(f'{source} does not name its network, and {found} recognises its weights: give -opt, a '
                         'YAML whose network_g builds it')
    return claims[0]


def freeze_guidance_layers(net):
    """Call the arch's ``freeze_guidance_layers()`` when it defines one (see the module docstring)."""
    freeze = getattr(type(net), 'freeze_guidance_layers', None)
    if freeze is not None:
        freeze(net)
