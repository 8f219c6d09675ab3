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

A guided arch may also define ``freeze_guidance_layers()``: the model calls it once, before DDP wraps the
network, when the arch runs without its guidance (``network_clip: ~``), to freeze the layers that then get no
gradient (VLUNet's D-GDM linears).

Giving ``network_clip`` to an arch whose ``guidance_input`` is None is an error, and so is leaving it out for
a ``'text_features'`` arch.
"""
from dataclasses import dataclass

#: The values ``guidance_input`` may take.
GUIDANCE_INPUTS = (None, 'image_features', 'text_features')


@dataclass(frozen=True)
class NetworkInputs:
    """The protocol values of one arch class, validated.

    Attributes:
        arch (str): The arch class name (for logs and errors).
        guidance_input (str | None): One of `GUIDANCE_INPUTS`.
        multi_stage_output (bool): Whether ``return_stages=True`` gives a list of stage images.
    """

    arch: str
    guidance_input: str | None = None
    multi_stage_output: bool = False

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
        return cls(name, guidance, stages)

    @property
    def guided(self):
        return self.guidance_input is not None

    def check_encoder(self, has_encoder):
        """Fail when ``network_clip`` is given to an unguided arch, or missing for a text-guided one."""
        if has_encoder and not self.guided:
            raise ValueError(f'network_clip is set, but {self.arch} takes no guidance (its guidance_input is None): '
                             f'remove network_clip, or use an arch that takes a guidance input')
        if not has_encoder and self.guidance_input == 'text_features':
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
            what = 'image features' if self.guidance_input == 'image_features' else 'prompt text embeddings'
            guidance = f'guided by the {what} of {encoder_name} (network_clip)'
        return f'Network {self.arch}: {guidance}; returns {outputs}.'

    def arguments(self, lq, guidance):
        """The positional inputs of the network."""
        return (lq,) if self.guidance_input is None else (lq, guidance)

    def outputs(self, net, lq, guidance):
        """Training forward: the list of output images, final first (one entry for single-output networks)."""
        if self.multi_stage_output:
            stages = list(net(*self.arguments(lq, guidance), return_stages=True))
            if not stages:
                raise ValueError(f'{self.arch}(return_stages=True) returned no images')
            return stages
        return [net(*self.arguments(lq, guidance))]

    def final(self, net, guidance):
        """A one-argument callable: image -> the network's final output image, guided by ``guidance``."""
        if self.guidance_input is None:
            return net
        return lambda image: net(image, guidance)


def freeze_guidance_layers(net):
    """Call the arch's ``freeze_guidance_layers()`` when it defines one (see the module docstring)."""
    freeze = getattr(type(net), 'freeze_guidance_layers', None)
    if freeze is not None:
        freeze(net)
