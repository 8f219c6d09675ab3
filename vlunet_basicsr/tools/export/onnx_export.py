"""``basicsr export``: write a restoration system as ONNX graphs and verify them against torch.

Two graphs for a guided system, one for an unguided one (arguments: `vlunet_basicsr_cli.parsers.export_parser`):

``model.onnx`` (the restoration network)
    ``lq`` (B, C, H, W) float32 [, ``guidance`` (B, d)] -> ``output`` (B, C, H, W); batch, height and width are
    dynamic. The arch's size rule (`vlunet_basicsr.models.network_inputs.size_rule`) is in the metadata
    (``size_multiple``, ``min_size``): the ONNX Runtime backend pads the graph's inputs to it and crops back, as
    torch does; an arch's own padding also runs inside the graph (`vlunet_basicsr.utils.padding.pad_bottom_right`
    gathers by index while exporting).
``model.guidance.onnx`` (guided systems: VLU-Net's image features, VL-UR's text embedding)
    ``clip_image`` (B, 3, S, S) -> ``image_features`` (B, d): the CLIP image branch and its adapter. Its metadata
    holds the prompts, their adapted text features and the logit scale (the zero-shot readout and VL-UR's text
    embeddings) and the CLIP preprocessing constants.

Why two graphs: the guidance is computed once per image from the whole image, then every tile is restored with it
(as the torch backend does); the readout reports each image's probabilities; and a text-guided arch can be
restored with a given degradation type instead of the predicted one. One image-only graph could do none of these.

After writing, the export checks the graphs with onnx's checker and runs them with ONNX Runtime (CPU) against
torch at two sizes (the first at batch 2); it prints the largest absolute differences and keeps the files only
when all are within the tolerance.
"""
import contextlib
import json
import os
import os.path as osp
import sys

import torch

from vlunet_basicsr.models.guidance import Guidance
from vlunet_basicsr.tools.export.onnx_runtime import (CLIP_IMAGE, FORMAT, GUIDANCE, IMAGE_FEATURES, LQ, OUTPUT,
                                                      OnnxGuidance, OnnxNetwork, encode_array, guidance_path)
from vlunet_basicsr.utils.padding import SizeRule
from vlunet_basicsr.utils.restore_util import padded

#: torch's ONNX exporter writes this opset natively (no version conversion).
DEFAULT_OPSET = 18
#: (height, width) pairs of the verification; the first runs at batch 2.
DEFAULT_SIZES = ((64, 64), (45, 61))
#: Largest absolute difference between ONNX Runtime and torch (float32) that passes.
DEFAULT_TOLERANCE = 1e-4


class ExportVerificationError(RuntimeError):
    """ONNX Runtime's outputs differ from torch's by more than the tolerance (the files are removed)."""


class ExportUnsupportedError(ValueError):
    """The arch declares that it cannot be exported (``export_unsupported``, the arch protocol): nothing is written."""


@contextlib.contextmanager
def _nchw(net):
    """Trace the NCHW code path: channels_last exists for oneDNN's convolutions; ONNX tensors have no layout, and
    the NCHW path of the attention has no per-head products to stitch back together."""
    flags = [(module, module.channels_last) for module in net.modules()
             if isinstance(getattr(module, 'channels_last', None), bool)]
    try:
        for module, _ in flags:
            module.channels_last = False
        yield net
    finally:
        for module, value in flags:
            module.channels_last = value


class _ImageBranch(torch.nn.Module):
    """`DegradationCLIP`'s image branch and adapter: preprocessed images -> adapted image features (float32)."""

    def __init__(self, clip):
        super().__init__()
        self.clip = clip

    def forward(self, clip_images):
        return self.clip.encode_image(clip_images).float()


def _translations(opset):
    """Translations of aten operators that ONNX's standard opsets lack (``custom_translation_table``).

    ``linalg_inv_ex`` (DGUNet's subspace projection inverts a 16x16 Gram matrix per image) becomes ONNX Runtime's
    ``com.microsoft.Inverse``; the error code it also returns is zero (torch checks it only on request).
    """
    import numpy as np
    import onnx
    import onnxscript
    from onnx.defs import OpSchema
    op = onnxscript.values.Opset('', opset)
    schema = OpSchema('Inverse', 'com.microsoft', 1, inputs=[OpSchema.FormalParameter('X', 'T')],
                      outputs=[OpSchema.FormalParameter('Y', 'T')],
                      type_constraints=[('T', ['tensor(float)', 'tensor(double)', 'tensor(float16)'], '')])
    inverse = onnxscript.values.Op(onnxscript.values.Opset('com.microsoft', 1), 'Inverse', schema)
    zero = onnx.numpy_helper.from_array(np.zeros(1, dtype=np.int32))

    def linalg_inv_ex(matrix, check_errors: bool = False):
        return inverse(matrix), op.ConstantOfShape(op.Shape(matrix, end=-2), value=zero)

    return {torch.ops.aten.linalg_inv_ex.default: linalg_inv_ex}


#: onnxscript rewrite rules the export's optimizer leaves out. ``SlicesSplit`` (two Slices of one tensor -> one
#: Split) tries every node of the graph beside each node, and it never matches the Slices torch writes (they carry
#: ``steps``, its pattern does not): half to three quarters of the optimizer's time on the tiny test networks for
#: the same graphs (VLU-Net 19.1 s -> 4.3 s; docs/benchmarks/house.md).
SKIPPED_REWRITE_RULES = ('SlicesSplit',)


def _optimize(program):
    """``program.optimize()``, which ``torch.onnx.export`` runs by default, without `SKIPPED_REWRITE_RULES`.

    onnxscript's optimizer takes its rules from a module constant and has no argument for them.
    """
    from onnxscript import rewriter
    rules = rewriter._DEFAULT_REWRITE_RULES
    rewriter._DEFAULT_REWRITE_RULES = tuple(rule for rule in rules
                                            if getattr(rule, 'name', None) not in SKIPPED_REWRITE_RULES)
    try:
        program.optimize()
    finally:
        rewriter._DEFAULT_REWRITE_RULES = rules


def _export(module, args, input_names, output_name, dynamic_shapes, opset, path, metadata):
    """``torch.onnx.export`` (torch.export, dynamic dims) of ``module`` to ``path`` with ``metadata``."""
    program = torch.onnx.export(module, args, None, input_names=input_names, output_names=[output_name],
                                dynamic_shapes=dynamic_shapes, opset_version=opset, dynamo=True, verbose=False,
                                custom_translation_table=_translations(opset), optimize=False)
    _optimize(program)
    program.model.metadata_props.update({'format': FORMAT, **{key: str(value) for key, value in metadata.items()}})
    program.save(path, external_data=False)
    import onnx
    onnx.checker.check_model(path, full_check=True)


def export_network(networks, path, guidance_file, opset=DEFAULT_OPSET):
    """Write the restoration graph of ``networks`` (from `load_networks`) to ``path``.

    Args:
        networks (Networks): The loaded system.
        path (str): The ONNX file to write.
        guidance_file (str | None): Base name of the guidance graph (recorded in the metadata), or None.
        opset (int): ONNX opset. Default: `DEFAULT_OPSET`.
    """
    net, inputs, rule = networks.net.eval(), networks.inputs, SizeRule.of(networks.size_rule)
    dynamic = torch.export.Dim.DYNAMIC
    example = rule.pad(torch.rand(2, 3, 40, 44))[0]
    args, names, shapes = (example,), [LQ], [{0: dynamic, 2: dynamic, 3: dynamic}]
    if guidance_file is not None:
        with torch.no_grad():
            width = _guidance(networks)(example[:1], evaluating=True).shape[-1]
        args, names, shapes = args + (torch.randn(2, width),), names + [GUIDANCE], shapes + [{0: dynamic}]
    metadata = {'graph': 'restoration', 'arch': inputs.arch, 'guidance_input': inputs.guidance_input or '',
                'size_multiple': rule.multiple, 'min_size': rule.min_size, 'guidance_graph': guidance_file or '',
                'fixed_label': '' if networks.fixed_label is None else networks.fixed_label}
    with torch.no_grad(), _nchw(net):
        _export(net, args, names, OUTPUT, tuple(shapes), opset, path, metadata)


def _guidance(networks):
    """The `Guidance` of ``networks`` (the restoration graph's second input, computed as restore computes it)."""
    return Guidance(networks.inputs, networks.clip, networks.prompts, networks.fixed_label)


def export_guidance(networks, path, opset=DEFAULT_OPSET):
    """Write the guidance graph of ``networks`` (CLIP image branch + adapter; prompts in the metadata) to ``path``."""
    clip = networks.clip.eval()
    with torch.no_grad():
        text = clip.encode_text(networks.prompts).float()
        scale = clip.backbone.logit_scale.exp().float()
    metadata = {'graph': 'guidance', 'input_size': clip.input_size, 'mean': json.dumps(clip.mean.flatten().tolist()),
                'std': json.dumps(clip.std.flatten().tolist()), 'prompts': json.dumps(list(networks.prompts)),
                'feature_dim': text.shape[1], 'prompt_features': encode_array(text.numpy()),
                'logit_scale': repr(float(scale)), 'encoder': f'{type(clip).__name__} {clip.model_name}'}
    example = torch.rand(2, 3, clip.input_size, clip.input_size)
    with torch.no_grad():
        _export(_ImageBranch(clip).eval(), (example,), [CLIP_IMAGE], IMAGE_FEATURES, ({0: torch.export.Dim.DYNAMIC},),
                opset, path, metadata)


def verify(networks, path, guidance=None, sizes=DEFAULT_SIZES, log=print):
    """Largest |ONNX Runtime (CPU) - torch| per output of the graphs at ``path`` (and ``guidance``) at each size
    (the first at batch 2), logged per size.

    Returns:
        dict: ``{'output': d, 'image_features': d, 'probabilities': d}`` (the last two for guided systems), each the
        maximum over ``sizes``.
    """
    providers = ['CPUExecutionProvider']
    onnx_net = OnnxNetwork(path, providers)
    onnx_clip = OnnxGuidance(guidance, providers) if guidance is not None else None
    inputs, clip, prompts = networks.inputs, networks.clip, networks.prompts
    guidance_of = _guidance(networks) if clip is not None else None
    rule = networks.size_rule
    generator = torch.Generator().manual_seed(0)
    worst = {}
    for index, (height, width) in enumerate(sizes):
        lq = torch.rand(2 if index == 0 else 1, 3, height, width, generator=generator)
        differences, guidance = {}, None
        with torch.no_grad():
            if clip is not None:
                vector = clip.degradation_vector(lq)
                probabilities = clip.prompt_probabilities(vector, prompts)
                onnx_vector = onnx_clip.degradation_vector(lq)
                differences['image_features'] = (onnx_vector - vector).abs().max().item()
                onnx_probabilities = onnx_clip.prompt_probabilities(onnx_vector, prompts)
                differences['probabilities'] = (onnx_probabilities - probabilities).abs().max().item()
                guidance = guidance_of(lq, evaluating=True)
            expected = padded(inputs.final(networks.net, guidance), rule)(lq)
            got = padded(inputs.final(onnx_net, guidance), rule)(lq)
        differences['output'] = (got - expected).abs().max().item()
        log(f'verify {tuple(lq.shape)}: max |ONNX Runtime - torch| ' +
            ', '.join(f'{name} {value:.2e}' for name, value in differences.items()))
        for name, value in differences.items():
            worst[name] = max(worst.get(name, 0.0), value)
    return worst


def _unused_name(path):
    """A name beside ``path`` that no file has, for the graph until it is verified (``.NAME.PID-N.partial.onnx``)."""
    folder, name = osp.split(osp.abspath(path))
    number = 0
    while osp.lexists(osp.join(folder, f'.{name}.{os.getpid()}-{number}.partial.onnx')):
        number += 1
    return osp.join(folder, f'.{name}.{os.getpid()}-{number}.partial.onnx')


def export_system(networks, output, opset=DEFAULT_OPSET, sizes=DEFAULT_SIZES, tolerance=DEFAULT_TOLERANCE,
                  log=print):
    """Export ``networks`` to ``output`` (and its guidance graph beside it), then verify; see the module docstring.

    The graphs are written under temporary names and renamed into place only once verified.

    Returns:
        list[str]: The files written.

    Raises:
        ExportUnsupportedError: The arch cannot be exported (its reason names the operator).
        ExportVerificationError: A difference above ``tolerance`` (nothing is left behind).
    """
    if networks.inputs.export_unsupported:
        inputs = networks.inputs
        raise ExportUnsupportedError(f'{inputs.arch} cannot be exported: {inputs.export_unsupported}')
    guided = networks.clip is not None
    finals = [output] + ([guidance_path(output)] if guided else [])
    partials = [_unused_name(path) for path in finals]  # no file of the user's is replaced or removed
    try:
        log(f'exporting {networks.inputs.arch} to {output} (opset {opset}) ...')
        export_network(networks, partials[0], osp.basename(finals[1]) if guided else None, opset)
        if guided:
            log(f'exporting the guidance encoder ({type(networks.clip).__name__}) to {finals[1]} ...')
            export_guidance(networks, partials[1], opset)
        worst = verify(networks, partials[0], partials[1] if guided else None, sizes, log)
        failed = {name: value for name, value in worst.items() if not value <= tolerance}
        if failed:
            raise ExportVerificationError(
                f'export of {output} failed verification: max |ONNX Runtime - torch| above {tolerance:g}: ' +
                ', '.join(f'{name} {value:.2e}' for name, value in failed.items()) + '; no file was kept')
        for partial, final in zip(partials, finals):
            os.replace(partial, final)
    finally:
        for partial in partials:
            if osp.exists(partial):
                os.remove(partial)
    log(f"verified (max |ONNX Runtime - torch| {', '.join(f'{k} {v:.2e}' for k, v in worst.items())}, "
        f"tolerance {tolerance:g}); wrote {', '.join(finals)}")
    return finals


def run(args):
    """``basicsr export`` with parsed ``args``; returns the exit code (0 done, 1 verification failed, 2 bad input)."""
    from vlunet_basicsr.tools.restore.restorer import load_networks
    from vlunet_basicsr.utils.output_names import existing_outputs_problem
    output = args.output
    try:
        if not output.endswith('.onnx'):
            raise ValueError(f'-o/--output: {output} must end with .onnx')
        if not osp.isdir(osp.dirname(osp.abspath(output))):
            raise FileNotFoundError(f'-o/--output: no folder {osp.dirname(osp.abspath(output))} to write {output}')
        problem = existing_outputs_problem([output], args.overwrite)  # before the minutes of loading and export
        if problem:
            raise FileExistsError(f'-o/--output: {problem}')
        networks = load_networks(args.opt, args.weights, args.clip_weights, args.adapter, args.clip_model,
                                 args.trust_checkpoint)
        problem = existing_outputs_problem([guidance_path(output)] if networks.clip is not None else [],
                                           args.overwrite)
        if problem:
            raise FileExistsError(f'-o/--output: the guidance graph beside it: {problem}')
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    print(networks.inputs.describe(None if networks.clip is None else type(networks.clip).__name__))
    try:
        export_system(networks, output, args.opset, args.verify_sizes, args.tolerance)
    except ExportUnsupportedError as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    except ExportVerificationError as error:
        print(f'error: {error}', file=sys.stderr)
        return 1
    return 0
