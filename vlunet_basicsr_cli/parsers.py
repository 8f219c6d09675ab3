"""The arguments of every ``basicsr`` command, torch-free (descriptions: `vlunet_basicsr_cli.help_texts`).

``restore``, ``export`` and ``serve`` take their network from the same sources, written once in
`network_source_flags`; ``restore`` and ``serve`` share the run flags of `run_flags`.
"""
import argparse

from vlunet_basicsr_cli.help_texts import (COMPARE_DESCRIPTION, EXPORT_DESCRIPTION, RESTORE_DESCRIPTION,
                                           SERVE_DESCRIPTION)


def pipeline_parser(prog='basicsr train'):
    """BasicSR's flags for the train and test pipelines (plus ``--local-rank``, which torch's launcher passes)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument('-opt', type=str, required=True, help='Path to option YAML file.')
    parser.add_argument('--launcher', choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')
    parser.add_argument('--auto_resume', action='store_true', help='resume from the latest training state')
    parser.add_argument('--debug', action='store_true')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override YAML values, parsed as YAML. Examples: train:ema_decay=0.999 '
                        'train:optim_g:lr=1e-4')
    return parser


def network_source_flags(opt_help, repeat_opt=False):
    """The parent parser of the network sources: ``-opt YAML``, or ``--weights`` with ``--clip-weights``/``--adapter``.

    Args:
        opt_help (str): What the command reads from the YAML.
        repeat_opt (bool): ``-opt`` may be given several times (one system each). Default: False.
    """
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('-opt', action='append' if repeat_opt else 'store', metavar='YAML', help=opt_help)
    parser.add_argument('--weights', help='net_g.pth (BasicSR format); network options are read from its shapes')
    parser.add_argument('--clip-weights', help='CLIP backbone weights (e.g. the converter\'s clip_backbone.pth)')
    parser.add_argument('--adapter', help='CLIP adapters (clip_adapter.pth, or the released clip_tuned.pth)')
    parser.add_argument('--clip-model', default=None,
                        help='open_clip model name of --clip-weights/--adapter (default: the paper\'s)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling of the network weights (--weights or path.pretrain_network_g)'
                        '; only for files from a source you trust')
    return parser


def _size(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive number, got {text}')
    return value


def run_flags(tile_default=None):
    """The parent parser of how a network runs: tiles, device, precision and the CPU allocator."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--tile', type=_size if tile_default else int, default=tile_default,
                        help='restore in tiles of this size' + (f' (default: {tile_default})' if tile_default else
                                                                 ' (large images)'))
    parser.add_argument('--tile-overlap', type=int, default=32, help='overlap of neighbouring tiles (default: 32)')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='auto (default): cuda when available, else cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                        help='autocast precision (default: none = float32); bf16 is the fast choice on recent GPUs')
    parser.add_argument('--cpu-allocator', choices=['tuned', 'system'], default='system',
                        help='on CPU: glibc defaults (system, default) or keep freed memory for reuse (tuned: '
                        'faster, but whole large images then need up to twice the memory)')
    return parser


def backend_flags():
    """The parent parser of the runtime: the torch network, or the graphs of ``basicsr export`` in a runtime."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument('--backend', choices=['torch', 'onnxruntime', 'openvino'], default='torch',
                        help='torch (default), or ONNX Runtime (its execution providers follow --device) or OpenVINO '
                        '(CPU) running the graphs of basicsr export (--onnx)')
    parser.add_argument('--onnx', metavar='FILE', help='with --backend onnxruntime or openvino: the model.onnx of '
                        'basicsr export (a guided system\'s model.guidance.onnx sits beside it)')
    parser.add_argument('--ov-precision', choices=['f32', 'bf16'],
                        help="with --backend openvino: OpenVINO's inference precision (default f32: float32 "
                        'arithmetic; bf16: faster on CPUs with bf16 units)')
    return parser


def _command_parser(prog, description, parents=()):
    return argparse.ArgumentParser(prog=prog, description=description, parents=list(parents),
                                   formatter_class=argparse.RawDescriptionHelpFormatter)


def restore_parser():
    """The arguments of ``basicsr restore`` (``--device auto`` is resolved when the command runs)."""
    parser = _command_parser('basicsr restore', RESTORE_DESCRIPTION, [
        network_source_flags('a test YAML (network_g, network_clip, path.pretrain_network_g)'), run_flags(),
        backend_flags()])
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('-o', '--output', default='results/restore', help='output folder (default: results/restore)')
    parser.add_argument('--half', action='store_const', dest='amp', const='fp16', help='same as --amp fp16')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (minutes to compile; pays off over many images of one size)')
    parser.add_argument('--explain', action='store_true', help='save key-mixture weights and residual maps')
    parser.add_argument('--degradation-type', help='text-guided archs (VL-UR): the degradation to restore every image '
                        'with (a label, its name such as low_haze, or the prompt) instead of the predicted one')
    return parser


#: Restore options that choose or tune the torch network, which --backend onnxruntime/openvino replace by the --onnx
#: graphs.
TORCH_BACKEND_ONLY = {'opt': '-opt', 'weights': '--weights', 'clip_weights': '--clip-weights', 'adapter': '--adapter',
                      'trust_checkpoint': '--trust-checkpoint', 'compile': '--compile', 'explain': '--explain'}


def restore_backend_error(args):
    """What is wrong with the backend options of parsed ``basicsr restore`` ``args``, or None."""
    backend = args.backend
    if getattr(args, 'ov_precision', None) and backend != 'openvino':
        return f'--ov-precision goes with --backend openvino (not {backend})'
    if backend == 'torch':
        return '--onnx goes with --backend onnxruntime or openvino' if args.onnx else None
    if not args.onnx:
        return f'--backend {backend} needs --onnx MODEL.onnx (written by basicsr export)'
    given = [flag for key, flag in TORCH_BACKEND_ONLY.items() if getattr(args, key, None)]
    if given:
        return (f"--backend {backend} runs the network and encoder of --onnx {args.onnx}; {', '.join(given)} "
                'belong(s) to the torch backend')
    if args.amp != 'none':
        return (f'--backend {backend} runs the exported graphs; --amp {args.amp} is for the torch backend' +
                (' (use --ov-precision)' if backend == 'openvino' else ''))
    return None


def tile_error(args):
    """What is wrong with ``--tile`` / ``--tile-overlap`` of parsed ``args`` (restore, serve), or None."""
    if args.tile is not None and (args.tile < 1 or not 0 <= args.tile_overlap < args.tile):
        return (f'--tile {args.tile} --tile-overlap {args.tile_overlap}: need --tile >= 1 and 0 <= --tile-overlap < '
                '--tile (the overlap is part of each tile)')
    return None


def _verify_size(text):
    try:
        height, width = (int(part) for part in text.lower().split('x'))
    except ValueError:
        raise argparse.ArgumentTypeError(f'expected HEIGHTxWIDTH such as 64x64, got {text!r}') from None
    if height < 1 or width < 1:
        raise argparse.ArgumentTypeError(f'sizes must be positive, got {text!r}')
    return height, width


def export_parser():
    """The arguments of ``basicsr export``."""
    parser = _command_parser('basicsr export', EXPORT_DESCRIPTION, [
        network_source_flags('a test YAML (network_g, network_clip, prompts, path.pretrain_network_g)')])
    parser.add_argument('-o', '--output', required=True, metavar='MODEL.onnx', help='the ONNX file to write')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace an existing MODEL.onnx (and its MODEL.guidance.onnx); refused without it')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (default: 18, torch\'s exporter\'s own)')
    parser.add_argument('--verify-sizes', type=_verify_size, nargs=2, default=[(64, 64), (45, 61)],
                        metavar='HxW', help='the two verification sizes (default: 64x64 45x61)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted |ONNX Runtime - torch| (default: 1e-4)')
    return parser


class _ServeParser(argparse.ArgumentParser):
    """``basicsr serve`` needs a network: at least one ``-opt``, ``--weights`` (one system), or an exported graph
    (``--backend`` with ``--onnx``, one system)."""

    def parse_known_args(self, args=None, namespace=None):
        parsed, rest = super().parse_known_args(args, namespace)
        if restore_backend_error(parsed):
            self.error(restore_backend_error(parsed))
        if parsed.backend != 'torch':
            return parsed, rest
        if not parsed.opt and not parsed.weights:
            self.error('give -opt YAML (repeat for several systems), --weights net_g.pth, or --backend with --onnx')
        if parsed.opt and parsed.weights:
            self.error('--weights is one system on its own; give it without -opt')
        return parsed, rest


def serve_parser():
    """The arguments of ``basicsr serve`` (``--device auto`` is resolved when the command runs)."""
    parser = _ServeParser(
        prog='basicsr serve', description=SERVE_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter,
        parents=[network_source_flags('a test YAML (network_g, network_clip, path.pretrain_network_g); repeat for '
                                      'several systems', repeat_opt=True), run_flags(tile_default=512),
                backend_flags()])
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to '
                        'your network)')
    parser.add_argument('--port', type=int, default=7860, help='port (default: 7860)')
    parser.add_argument('--max-file-size', default='25mb', help='largest upload (default: 25mb; e.g. 500kb, 1gb)')
    parser.add_argument('--max-pixels', type=_size, default=40_000_000,
                        help='largest image in pixels (default: 40000000)')
    return parser


def compare_parser():
    """The arguments of ``basicsr compare``."""
    parser = _command_parser('basicsr compare', COMPARE_DESCRIPTION)
    parser.add_argument('-opt', required=True, metavar='YAML', help='the compare file (e.g. options/compare_nhrbl.yml)')
    parser.add_argument('-o', '--output', default='compare_output',
                        help='output folder (default: compare_output)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the output folder of an earlier basicsr compare')
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override compare file values, parsed as YAML. Examples: total_iter=100 '
                        'timing:train_steps=3')
    return parser
