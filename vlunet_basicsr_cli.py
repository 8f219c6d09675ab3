"""The ``basicsr`` command's front door: arguments, ``--help`` and argument errors without importing torch.

``basicsr train|test -opt X.yml [BasicSR flags]`` and ``basicsr restore ...`` are parsed here, in a module
outside the ``vlunet_basicsr`` package (importing that package registers every class, which imports torch and
basicsr: seconds of start-up that ``--help`` should not pay). Only a valid command line goes on to
`vlunet_basicsr.cli`.
"""
import argparse
import sys

COMMANDS = {
    'train': 'train a model from an option YAML (BasicSR train pipeline)',
    'test': 'test a model from an option YAML (BasicSR test pipeline)',
    'restore': 'restore your own images with a trained or released network (see "basicsr restore -h")',
    'export': 'write a restoration system as ONNX graphs, verified against torch (see "basicsr export -h")',
    'serve': 'a local web page to try the loaded systems on your own images (see "basicsr serve -h")',
    'compare': 'train and test several systems on the same test sets, in one report (see "basicsr compare -h")',
}


def command_parser():
    """The top-level parser: ``basicsr {train,test,restore} ...``."""
    parser = argparse.ArgumentParser(
        prog='basicsr', description='BasicSR pipelines with VLU-Net and any installed basicsr plugins.',
        epilog='train and test take BasicSR flags: -opt FILE [--launcher none|pytorch|slurm] [--auto_resume] '
        '[--debug] [--force_yml key:sub=value ...]; restore takes its own. "basicsr COMMAND -h" lists them.')
    subparsers = parser.add_subparsers(dest='command', metavar='{' + ','.join(COMMANDS) + '}')
    for name, text in COMMANDS.items():
        subparsers.add_parser(name, help=text, add_help=False)
    return parser


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


RESTORE_DESCRIPTION = """Restore your own images with a trained or released VLU-Net.

INPUT is an image or a folder (png, jpg, jpeg, bmp, tif, tiff, webp). Each output has the input's size and bit
depth (8 or 16), stays grayscale if the input is, and keeps the input's alpha channel untouched. Results are PNG
files in the output folder, named <stem>.png (<stem>_<ext>.png when inputs share a stem; <name>_2.png, ... when
that name is already another input's result). No result ever replaces an input file: an input whose result
would is refused by name. Images are read by the datasets' decoder: an empty, truncated (JPEG without its end
marker, PNG without IEND) or corrupt file is named, the others are still restored, and the exit code is 1;
a folder without images, or network weights that are missing, corrupt or unsafe, stop it with exit code 2.
The predicted degradation of each image (zero-shot over the prompts with the tuned adapters) is printed and
written to degradations.csv; --explain also saves, per image, the key-mixture weights of every stage and the
gradient-step residual maps phi(x, keys) - y (the paper's degradation maps). Progress (images, and tiles with
--tile) is shown on stderr.
"""


def restore_parser():
    """The arguments of ``basicsr restore`` (``--device auto`` is resolved when the command runs)."""
    parser = argparse.ArgumentParser(prog='basicsr restore', description=RESTORE_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('input', help='an image file or a folder of images')
    parser.add_argument('-o', '--output', default='results/restore', help='output folder (default: results/restore)')
    parser.add_argument('-opt', help='a test YAML (network_g, network_clip, path.pretrain_network_g)')
    parser.add_argument('--weights', help='net_g.pth (BasicSR format); network options are read from its shapes')
    parser.add_argument('--clip-weights', help='CLIP backbone weights (e.g. the converter\'s clip_backbone.pth)')
    parser.add_argument('--adapter', help='CLIP adapters (clip_adapter.pth, or the released clip_tuned.pth)')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling of the network weights (--weights or path.pretrain_network_g)'
                        '; only for files from a source you trust')
    parser.add_argument('--tile', type=int, help='restore in tiles of this size (large images)')
    parser.add_argument('--tile-overlap', type=int, default=32)
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='auto (default): cuda when available, else cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none',
                        help='autocast precision (default: none = float32); bf16 is the fast choice on recent GPUs')
    parser.add_argument('--half', action='store_const', dest='amp', const='fp16', help='same as --amp fp16')
    parser.add_argument('--compile', action='store_true',
                        help='torch.compile the network (minutes to compile; pays off over many images of one size)')
    parser.add_argument('--cpu-allocator', choices=['tuned', 'system'], default='system',
                        help='on CPU: glibc defaults (system, default) or keep freed memory for reuse (tuned: '
                        'faster, but whole large images then need up to twice the memory)')
    parser.add_argument('--explain', action='store_true', help='save key-mixture weights and residual maps')
    parser.add_argument('--degradation-type', help='text-guided archs (VL-UR): the degradation to restore every image '
                        'with (a label, its name such as low_haze, or the prompt) instead of the predicted one')
    parser.add_argument('--backend', choices=['torch', 'onnxruntime', 'openvino'], default='torch',
                        help='torch (default), or ONNX Runtime (its execution providers follow --device) or OpenVINO '
                        '(CPU) running the graphs of basicsr export (--onnx)')
    parser.add_argument('--onnx', metavar='FILE', help='with --backend onnxruntime or openvino: the model.onnx of '
                        'basicsr export (a guided system\'s model.guidance.onnx sits beside it)')
    parser.add_argument('--ov-precision', choices=['f32', 'bf16'],
                        help="with --backend openvino: OpenVINO's inference precision (default f32: float32 "
                        'arithmetic; bf16: faster on CPUs with bf16 units)')
    return parser


#: Restore options that choose or tune the torch network, which --backend onnxruntime replaces by the --onnx graphs.
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
    given = [flag for key, flag in TORCH_BACKEND_ONLY.items() if getattr(args, key)]
    if given:
        return (f"--backend {backend} runs the network and encoder of --onnx {args.onnx}; {', '.join(given)} "
                'belong(s) to the torch backend')
    if args.amp != 'none':
        return (f'--backend {backend} runs the exported graphs; --amp {args.amp} is for the torch backend' +
                (' (use --ov-precision)' if backend == 'openvino' else ''))
    return None


EXPORT_DESCRIPTION = """Write the restoration network of a test YAML (or of --weights) as an ONNX graph with dynamic
batch, height and width, and for a guided system (VLU-Net, VL-UR) the guidance encoder as a second graph beside it
(MODEL.guidance.onnx: the CLIP image branch and its adapter; the prompts' text embeddings in its metadata).
The graphs pass onnx's checker, then run in ONNX Runtime (CPU) against torch at two sizes (the first at batch
2): the largest absolute differences are printed, and the files are kept only when all are within the
tolerance (exit code 1 otherwise). Run them with basicsr restore --backend onnxruntime --onnx MODEL.onnx.
"""


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
    parser = argparse.ArgumentParser(prog='basicsr export', description=EXPORT_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', help='a test YAML (network_g, network_clip, prompts, path.pretrain_network_g)')
    parser.add_argument('-o', '--output', required=True, metavar='MODEL.onnx', help='the ONNX file to write')
    parser.add_argument('--weights', help='net_g.pth (BasicSR format); network options are read from its shapes')
    parser.add_argument('--clip-weights', help='CLIP backbone weights (e.g. the converter\'s clip_backbone.pth)')
    parser.add_argument('--adapter', help='CLIP adapters (clip_adapter.pth, or the released clip_tuned.pth)')
    parser.add_argument('--clip-model', default='ViT-B-32', help='open_clip model name (default: ViT-B-32)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling of the network weights; only for files you trust')
    parser.add_argument('--opset', type=int, default=18, help='ONNX opset (default: 18, torch\'s exporter\'s own)')
    parser.add_argument('--verify-sizes', type=_verify_size, nargs=2, default=[(64, 64), (45, 61)],
                        metavar='HxW', help='the two verification sizes (default: 64x64 45x61)')
    parser.add_argument('--tolerance', type=float, default=1e-4,
                        help='largest accepted |ONNX Runtime - torch| (default: 1e-4)')
    return parser


SERVE_DESCRIPTION = """Start a local web page (Gradio) to restore images with the systems of one or more test YAMLs.

Upload images (or pick demo photographs), choose the systems, and see input and output side by side, the
predicted degradation with the confidence of each class, VLU-Net's per-stage key mixtures and residual maps
(explain), and download each result as a PNG of the input's size and bit depth. Restoration is the code path of
basicsr restore. Uploads and results stay in one temporary folder, removed when the server stops.
"""


def _size(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'expected a positive number, got {text}')
    return value


def serve_parser():
    """The arguments of ``basicsr serve`` (``--device auto`` is resolved when the command runs)."""
    parser = argparse.ArgumentParser(prog='basicsr serve', description=SERVE_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', action='append', required=True, metavar='YAML',
                        help='a test YAML (network_g, network_clip, path.pretrain_network_g); repeat for several '
                        'systems')
    parser.add_argument('--host', default='127.0.0.1',
                        help='address to listen on (default: 127.0.0.1, this machine only; 0.0.0.0 opens it to '
                        'your network)')
    parser.add_argument('--port', type=int, default=7860, help='port (default: 7860)')
    parser.add_argument('--max-file-size', default='25mb', help='largest upload (default: 25mb; e.g. 500kb, 1gb)')
    parser.add_argument('--max-pixels', type=_size, default=40_000_000,
                        help='largest image in pixels (default: 40000000)')
    parser.add_argument('--tile', type=_size, default=512, help='restore in tiles of this size (default: 512)')
    parser.add_argument('--tile-overlap', type=int, default=32, help='overlap of neighbouring tiles (default: 32)')
    parser.add_argument('--device', choices=['auto', 'cpu', 'cuda'], default='auto',
                        help='auto (default): cuda when available, else cpu')
    parser.add_argument('--amp', choices=['none', 'bf16', 'fp16'], default='none', help='autocast precision')
    parser.add_argument('--cpu-allocator', choices=['tuned', 'system'], default='system',
                        help='on CPU: glibc defaults (system, default) or keep freed memory for reuse (tuned)')
    parser.add_argument('--trust-checkpoint', action='store_true',
                        help='allow arbitrary unpickling of the network weights; only for files you trust')
    return parser


COMPARE_DESCRIPTION = """Train and/or test several systems on the same test sets and write one report.

The compare file (docs/compare.md) declares the test sets once and lists the systems: a train YAML and/or a test
YAML, finished weights or a finished experiment folder each. Each system is trained (basicsr train) and tested
(basicsr test) on the shared sets with the float RGB PSNR/SSIM, in its own process, its experiments/ and results/
under the output folder; its parameters, MACs at 256x256, training-step and per-image inference time and the
accuracy of its predicted degradation are measured in the same run. A system that fails is reported with its
error and the others still run (exit code 1). The output folder gets report.md, report.json, psnr.png and
grid_<set>.png; an existing one is replaced only with --overwrite, and only if basicsr compare wrote it.
"""


def compare_parser():
    """The arguments of ``basicsr compare``."""
    parser = argparse.ArgumentParser(prog='basicsr compare', description=COMPARE_DESCRIPTION,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('-opt', required=True, metavar='YAML', help='the compare file (e.g. options/compare_nhrbl.yml)')
    parser.add_argument('-o', '--output', default='compare_output',
                        help='output folder (default: compare_output)')
    parser.add_argument('--overwrite', action='store_true',
                        help='replace the output folder of an earlier basicsr compare')
    parser.add_argument('--force_yml', nargs='+', default=None,
                        help='Override compare file values, parsed as YAML. Examples: total_iter=100 '
                        'timing:train_steps=3')
    return parser


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = command_parser()
    if not argv or argv[0] in ('-h', '--help'):
        parser.print_help()
        return 0 if argv else 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        parser.error(f"unknown command '{command}' (choose from {', '.join(COMMANDS)})")
    if command == 'serve':
        args = serve_parser().parse_args(rest)  # --help and argument errors end here, before torch and gradio
        from vlunet_basicsr.serve.server import run as serve_run
        return serve_run(args)
    if command == 'compare':
        args = compare_parser().parse_args(rest)  # --help and argument errors end here, before torch
        from vlunet_basicsr.compare.command import run as compare_run
        return compare_run(args)
    if command == 'export':
        args = export_parser().parse_args(rest)  # --help and argument errors end here, before torch
        from vlunet_basicsr.onnx_export import run as export_run
        return export_run(args)
    if command == 'restore':
        parser = restore_parser()
        args = parser.parse_args(rest)  # --help and argument errors end here, before torch
        if restore_backend_error(args):
            parser.error(restore_backend_error(args))
        from vlunet_basicsr.inference import run as restore_run
        return restore_run(args)
    pipeline_parser(f'basicsr {command}').parse_args(rest)  # --help and argument errors end here
    from vlunet_basicsr.cli import run
    run(command, rest)
    return 0


if __name__ == '__main__':
    sys.exit(main())
