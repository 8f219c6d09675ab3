"""Start and stop the ``basicsr serve`` page (arguments: `vlunet_basicsr_cli.parsers.serve_parser`).

The server listens on ``--host`` (127.0.0.1 by default), takes uploads up to ``--max-file-size`` and images up
to ``--max-pixels``, keeps every upload and result in one temporary folder (`Workspace`) and removes it when it
stops (Ctrl-C or SIGTERM). Gradio's analytics are off; the page uses system fonts, so nothing is fetched from
elsewhere.
"""
import os
import signal
import sys

from vlunet_basicsr.tools.serve.workspace import Workspace


def _stop(signum, frame):
    raise KeyboardInterrupt(f'signal {signum}')


def run(args):
    """Serve as the parsed ``args`` say; returns the exit code (2: the systems could not be loaded)."""
    os.environ['GRADIO_ANALYTICS_ENABLED'] = 'False'
    workspace = Workspace(root=getattr(args, 'workspace', None))
    os.environ['GRADIO_TEMP_DIR'] = workspace.uploads  # before gradio is imported: some of its modules read it then
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        return _serve(args, workspace)
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        workspace.remove()
        print('stopped; temporary folder removed', flush=True)


def _serve(args, workspace):
    from vlunet_basicsr.utils.argument_checks import port_error
    error = port_error(args.host, args.port)
    if error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    try:
        import gradio  # noqa: F401
    except ImportError:
        print('error: basicsr serve needs gradio: pip install gradio', file=sys.stderr)
        return 2
    from vlunet_basicsr.tools.restore.restorer import resolve_device
    from vlunet_basicsr.tools.serve.app import build_app, theme
    from vlunet_basicsr.tools.serve.systems import load_systems
    from vlunet_basicsr.utils.cpu_allocator import tune_cpu_allocator

    try:
        exported = (args.backend, args.onnx, args.ov_precision, args.device) if args.backend != 'torch' else None
        # an exported graph's runtime meets torch on the host (ONNX Runtime's execution providers follow --device)
        device = resolve_device('cpu' if exported else args.device)
        if device.type == 'cpu':
            tune_cpu_allocator(args.cpu_allocator)
        systems = load_systems(args.opt, device, args.amp, args.tile, args.tile_overlap, args.trust_checkpoint,
                               exported, weights=args.weights, clip_weights=args.clip_weights, adapter=args.adapter,
                               clip_model=args.clip_model)
    except (FileNotFoundError, ValueError) as error:
        print(f'error: {error}', file=sys.stderr)
        return 2
    for system in systems:
        print(f'{system.name}: {system.description}')
    print(f'temporary folder: {workspace.root}', flush=True)
    page = build_app(systems, workspace, args.max_pixels)
    page.queue(default_concurrency_limit=1)
    page.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size, show_error=True,
                theme=theme(), footer_links=['api', 'settings'], inbrowser=False, share=False, ssr_mode=False)
    return 0
