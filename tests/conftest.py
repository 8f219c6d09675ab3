"""Shared fixtures: tiny images made on the fly, option files written like a user would, the `basicsr` command."""
import contextlib
import os
import os.path as osp
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import zlib

import cv2
import numpy as np
import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFERENCE = osp.join(osp.dirname(REPO), 'shared', 'reference')

# `import openvino` sends usage telemetry unless declined, from a thread that forks the importing process and tries
# the network; it declines itself where CI=true (tests/test_openvino.py, docs/onnx.md).
os.environ['CI'] = 'true'


def reference_file(name):
    path = osp.join(REFERENCE, name)
    if not osp.isfile(path):
        pytest.fail(f'reference file missing: {path} (shared/reference must sit beside the checkout)')
    return path


def published_state_dict(keys_name):
    """A published network's state dict rebuilt from its key list in shared/reference (``*_keys.tsv``: index, key,
    shape) by the reference rule: tensor ``i`` is ``(rand(shape, seed i) * 2 - 1) / sqrt(fan_in)``."""
    import csv
    import math

    import torch
    state = {}
    with open(reference_file(keys_name)) as f:
        for row in csv.DictReader(f, delimiter='\t'):
            shape = [int(n) for n in row['shape'].split('x')]
            generator = torch.Generator().manual_seed(int(row['index']))
            state[row['key']] = (torch.rand(shape, generator=generator) * 2 - 1) / math.sqrt(math.prod(shape[1:]))
    return state


def lightning_checkpoint(state):
    """A checkpoint as the PyTorch Lightning releases (PromptIR, AdaIR, MoCE-IR) save it: ``net.`` keys."""
    return {'epoch': 119, 'global_step': 1, 'state_dict': {'net.' + key: value for key, value in state.items()}}


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def write_image_pairs(root, count=4, size=(32, 32), seed=0):
    """Write ``count`` clean/degraded PNG pairs with the same names into root/gt and root/lq."""
    rng = np.random.default_rng(seed)
    for sub in ('gt', 'lq'):
        os.makedirs(osp.join(root, sub), exist_ok=True)
    yy, xx = np.mgrid[0:size[0], 0:size[1]]
    for i in range(count):
        base = np.stack([(xx * (3 + i)) % 256, (yy * (5 + i)) % 256, ((xx + yy) * 2) % 256], -1).astype(np.float32)
        noisy = np.clip(base + rng.normal(0, 20, base.shape), 0, 255)
        cv2.imwrite(osp.join(root, 'gt', f'img{i:02d}.png'), base.astype(np.uint8))
        cv2.imwrite(osp.join(root, 'lq', f'img{i:02d}.png'), np.round(noisy).astype(np.uint8))
    return osp.join(root, 'gt'), osp.join(root, 'lq')


def lmdb_copy(gt_dir, lq_dir, out):
    """The image pairs of ``gt_dir`` (and ``lq_dir``, same names) written as gt/lq LMDBs under ``out``; returns
    {'gt': path, 'lq': path}."""
    from vlunet_basicsr.data.dataset_writer import write_pairs
    names = sorted(os.listdir(gt_dir))
    pairs = [(osp.splitext(n)[0], osp.join(gt_dir, n), osp.join(lq_dir, n) if lq_dir else None) for n in names]
    return write_pairs(pairs, str(out), fmt='lmdb', progress=False)


def script_main(name):
    """The ``main`` function of ``scripts/<name>.py`` (scripts are not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, osp.join(REPO, 'scripts', f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def degradation_datasets(gt, lq, workers=0, seed=None):
    """A tiny training mix (a paired derain source and a sigma-25 noise source) and two validation sets."""
    paired = {'type': 'PairedDegradationDataset', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq}
    noise_val = {**paired, 'name': 'val_noise', 'dataroot_lq': None, 'noise_sigma': 25}
    if seed is not None:
        noise_val['noise_seed'] = seed
    return {'train': {'name': 'mix', 'type': 'MixedDegradationDataset', 'gt_size': 16, 'num_worker_per_gpu': workers,
                      'batch_size_per_gpu': 2,
                      'sources': [{'name': 'derain', 'label': 4, 'dataroot_gt': gt, 'dataroot_lq': lq},
                                  {'name': 'denoise_25', 'label': 1, 'dataroot_gt': gt, 'noise_sigma': 25}]},
            'val_1': {**paired, 'name': 'val_rain'}, 'val_2': noise_val}


def step_then_test(model, size=(24, 20)):
    """One training step on random images (it must change net_g and log l_pix), then ``test()``."""
    import torch
    batch = {'lq': torch.rand(2, 3, *size), 'gt': torch.rand(2, 3, *size)}
    before = [p.detach().clone() for p in model.net_g.parameters()]
    model.feed_data(batch)
    model.optimize_parameters(1)
    assert 'l_pix' in model.get_current_log()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.net_g.parameters()))
    model.test()
    assert model.output.shape == batch['lq'].shape


def fresh_fork_context():
    """multiprocessing's forkserver context, its server with the plugin imported (`_start_the_forkserver_as_a_fork`):
    a process forked from it starts in a fraction of a second where a fresh interpreter spends seconds on its
    imports, and it carries none of the test process's state, as a fork of that would (autograd refuses backward
    passes in a fork of a process that ran one; OpenMP's threads)."""
    import multiprocessing
    return multiprocessing.get_context('forkserver')


def _start_the_forkserver_as_a_fork():
    """Start this test process's forkserver (multiprocessing's) as a fork of this process, made after the plugin is
    imported and before any test runs: the server then holds the plugin without importing it again, which a server
    started the usual way (a new interpreter) does for 8 to 10 s of CPU in each pytest worker.

    multiprocessing starts a forkserver only as a new interpreter; this sets what its ``ensure_running`` sets once
    it has started one (Python 3.11's ``multiprocessing.forkserver``), so that it uses this one. Its other
    descriptors become /dev/null, pytest-xdist's channel and the standard streams among them: the tests that read
    a child's output give it files of its own (`run_code_in_a_fork`) or return it (`run_on_ranks`).
    """
    import socket as socket_module
    import traceback
    from multiprocessing import connection, forkserver, resource_tracker, util

    import vlunet_basicsr  # noqa: F401
    server = forkserver._forkserver
    if server._forkserver_pid is not None:
        return
    resource_tracker.ensure_running()
    address = connection.arbitrary_address('AF_UNIX')
    listener = socket_module.socket(socket_module.AF_UNIX)
    listener.bind(address)
    if not util.is_abstract_socket_namespace(address):
        os.chmod(address, 0o600)
    listener.listen()
    alive_r, alive_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 0
        try:
            # /dev/null in place of every other descriptor, not closed: objects of this process's memory (pytest's
            # log file handler, say) still name them, and a closed number is reused by the next descriptor opened.
            null = os.open(os.devnull, os.O_RDWR)
            for fd in map(int, os.listdir('/proc/self/fd')):
                if fd not in (null, listener.fileno(), alive_r):
                    with contextlib.suppress(OSError):
                        os.dup2(null, fd)
            forkserver.main(listener.fileno(), alive_r, [])
        except SystemExit:  # the server's way out: every holder of the alive pipe has ended
            pass
        except BaseException:  # noqa: BLE001 -- the server must never return into pytest
            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    listener.close()
    os.close(alive_r)
    server._forkserver_address, server._forkserver_alive_fd, server._forkserver_pid = address, alive_w, pid


def pytest_collection_finish(session):
    # The objects the imports made (torch, basicsr, the plugin, the test files) live until the process ends. Frozen,
    # the collector's full passes no longer walk them: before, each walked all of a worker's million-odd objects,
    # 26 to 28 passes and 19 s of each worker's run (gc.callbacks); the last pass, at exit, skips them too. What the
    # tests import later (torch.export, onnxscript) is still walked, so a full pass waits for 100 collections of the
    # middle generation instead of 10: 38 to 43 passes and 16 s of each worker -> 18 to 24 passes and 7 to 9 s, the
    # larger worker's peak RSS 3.4 -> 3.5 GB (docs/benchmarks/house.md). The forkserver's children keep Python's
    # defaults (it is forked before this).
    import gc
    gc.freeze()
    youngest, middle, _ = gc.get_threshold()
    gc.set_threshold(youngest, middle, 100)


@pytest.hookimpl(tryfirst=True)
def pytest_collection(session):
    # Before the test files are imported (they import huggingface_hub, which a test needs unimported in its child),
    # within pytest's capture of warnings; every process that runs tests, not pytest-xdist's controller (it runs
    # none and imports no torch).
    xdist_controller = session.config.getoption('numprocesses', None) and not hasattr(session.config, 'workerinput')
    if not xdist_controller:
        _start_the_forkserver_as_a_fork()


def _with_fork_by_default(target, *args):
    """``target(*args)`` with fork as the default start method, as in a rank torchrun starts on Linux (a forkserver's
    child inherits forkserver, so its DataLoader workers would each start a fresh interpreter)."""
    import multiprocessing
    multiprocessing.set_start_method('fork', force=True)
    return target(*args)


def run_on_ranks(target, *args, world_size=2, timeout=300):
    """Run ``target(rank, world_size, port, *args, queue)`` in ``world_size`` processes of `fresh_fork_context`;
    each puts ``(rank, result)`` on the queue. Returns {rank: result}; fails (not hangs) when a rank dies or times
    out."""
    import queue as queue_module
    import time

    context = fresh_fork_context()
    queue, port = context.Queue(), free_port()
    processes = [context.Process(target=_with_fork_by_default, args=(target, rank, world_size, port, *args, queue))
                 for rank in range(world_size)]
    for process in processes:
        process.start()
    results, deadline = {}, time.time() + timeout
    while len(results) < world_size:
        try:
            rank, result = queue.get(timeout=1)
            results[rank] = result
        except queue_module.Empty:
            dead = [p.exitcode for p in processes if p.exitcode not in (None, 0)]
            assert not dead and time.time() < deadline, f'a rank failed (exit codes {dead}) or timed out'
    for process in processes:
        process.join(timeout=timeout)
        assert process.exitcode == 0
    return results


def _exec_with_output_in(code, env_extra, output):
    """`run_code_in_a_fork`'s child: file descriptors 1 and 2 go to ``output``.{out,err}, then ``code`` runs as
    ``python -c`` would run it (an exception: its traceback and exit code 1)."""
    import traceback
    os.environ.update(env_extra)
    for fd, suffix in ((1, 'out'), (2, 'err')):
        with open(f'{output}.{suffix}', 'w') as f:
            os.dup2(f.fileno(), fd)
    sys.stdout, sys.stderr = (open(fd, 'w', buffering=1, closefd=False) for fd in (1, 2))
    try:
        exec(compile(code, '<string>', 'exec'), {'__name__': '__main__'})
    except SystemExit:
        raise
    except BaseException:  # noqa: BLE001 -- as the interpreter does
        traceback.print_exc()
        sys.exit(1)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()


def run_code_in_a_fork(code, env_extra=None, timeout=300):
    """``python -c CODE`` (``env_extra`` added to its environment before CODE runs) in a process of
    `fresh_fork_context`: for the tests that need a process of their own (a signal that kills it, a setting for the
    whole process, a module that reads its environment when it is imported) but not a fresh interpreter.

    Returns:
        subprocess.CompletedProcess: its exit code (negative: the signal that killed it), its output and its errors.
    """
    with tempfile.TemporaryDirectory() as folder:
        output = osp.join(folder, 'output')
        for suffix in ('out', 'err'):  # there when the child dies before it opens them
            open(f'{output}.{suffix}', 'w').close()
        process = fresh_fork_context().Process(target=_exec_with_output_in,
                                               args=(code, {k: str(v) for k, v in (env_extra or {}).items()}, output))
        process.start()
        process.join(timeout)
        if process.exitcode is None:
            process.kill()
            process.join()
            pytest.fail(f'the forked process did not end within {timeout} s:\n{code}')
        with open(f'{output}.out') as out, open(f'{output}.err') as err:
            return subprocess.CompletedProcess(['python', '-c', code], process.exitcode, out.read(), err.read())


def png_bomb(width, height, header_only=False):
    """A complete 1-bit PNG of ``width`` x ``height`` black pixels (kilobytes, whatever its size), written chunk by
    chunk so that no image of that size is ever held; ``header_only``: IHDR and IEND, no pixel data."""
    def chunk(kind, data):
        return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

    header = chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0))
    pixels = b''
    if not header_only:
        compressor, row = zlib.compressobj(9), bytes(1 + (width + 7) // 8)  # filter byte + packed bits per row
        pixels = chunk(b'IDAT', b''.join(compressor.compress(row) for _ in range(height)) + compressor.flush())
    return b'\x89PNG\r\n\x1a\n' + header + pixels + chunk(b'IEND', b'')


@pytest.fixture(scope='session')
def bombs(tmp_path_factory):
    """Decompression bombs (issue 33's files): a 14000x14000 1-bit PNG made by Pillow, a 20000x20000 header, a
    40000x40000 bomb."""
    from PIL import Image
    root = tmp_path_factory.mktemp('bombs')
    Image.new('1', (14000, 14000)).save(root / 'bomb14000.png', optimize=True)
    (root / 'header20000.png').write_bytes(png_bomb(20000, 20000, header_only=True))
    (root / 'bomb40000.png').write_bytes(png_bomb(40000, 40000))
    return {name: root / f'{name}.png' for name in ('bomb14000', 'header20000', 'bomb40000')}


def write_yaml(path, opt):
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def basicsr_command():
    command = shutil.which('basicsr', path=osp.dirname(sys.executable))
    if command is None:
        pytest.fail('the basicsr console script is not installed beside this Python (pip install -e .)')
    return command


def run_front_door(argv, cwd, timeout=120, env_extra=None):
    """Run the real ``basicsr`` console script under ``python -X importtime`` (``env_extra`` added to its environment).

    Returns:
        tuple[subprocess.CompletedProcess, set[str]]: The process (its stderr without the import-time lines) and
        the top-level names of every module the process imported.
    """
    proc = subprocess.run([sys.executable, '-X', 'importtime', basicsr_command(), *argv], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, **(env_extra or {})))
    lines = proc.stderr.splitlines()
    imported = {line.rsplit('|', 1)[1].strip().split('.')[0] for line in lines if line.startswith('import time:')}
    proc.stderr = '\n'.join(line for line in lines if not line.startswith('import time:'))
    return proc, imported - {'package'}  # 'package' is the heading line


def run_basicsr(args, cwd, env_extra=None, timeout=600):
    """Run the real `basicsr` command; fail the test with its output when it exits non-zero."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    proc = subprocess.run([basicsr_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc


def restore_main(argv):
    """``basicsr restore ARGV`` in this process; returns the exit code (argument errors: 2)."""
    from vlunet_basicsr_cli import main
    try:
        return main(['restore', *map(str, argv)])
    except SystemExit as exit_:
        return exit_.code


#: The latest second a run's `get_time_str` gave (`_names_in_a_new_second`).
_last_named_second = [0]


@contextlib.contextmanager
def _names_in_a_new_second():
    """basicsr names a run's log file and the folders it archives after the second (`get_time_str`): two commands
    cannot start in one second, but two runs in this process can. Within this context the second of those names is
    never earlier than the second after the previous run's last name, instead of a wait for the next second: the
    names of runs that follow each other within a second run ahead of the clock, a second per run."""
    import time

    from basicsr.utils import misc
    original = misc.get_time_str
    start = max(int(time.time()), _last_named_second[0] + 1)

    def get_time_str():
        second = max(int(time.time()), start)
        _last_named_second[0] = max(_last_named_second[0], second)
        return time.strftime('%Y%m%d_%H%M%S', time.localtime(second))

    bound = [module for name, module in list(sys.modules.items())
             if name.split('.')[0] == 'basicsr' and getattr(module, 'get_time_str', None) is original]
    for module in bound:
        module.get_time_str = get_time_str
    try:
        yield
    finally:
        for module in bound:
            module.get_time_str = original


@contextlib.contextmanager
def _fresh_basicsr_logger():
    """basicsr's logger (`get_root_logger` sets it up once per process) put aside for a run, which sets it up anew,
    with its own log file and its stream on the current ``sys.stderr``, as a new process would; the run's handlers
    are closed after it and the logger is given back as it was."""
    import logging

    from basicsr.utils import logger as basicsr_logger
    logger = logging.getLogger('basicsr')
    saved = (list(logger.handlers), logger.level, logger.propagate,
             basicsr_logger.initialized_logger.pop('basicsr', None))
    for handler in saved[0]:
        logger.removeHandler(handler)
    try:
        yield
    finally:
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        basicsr_logger.initialized_logger.pop('basicsr', None)
        for handler in saved[0]:
            logger.addHandler(handler)
        logger.level, logger.propagate = saved[1], saved[2]
        if saved[3] is not None:
            basicsr_logger.initialized_logger['basicsr'] = saved[3]


def run_in_process(function, *args, cwd, env_extra=None, **kwargs):
    """``function(*args, **kwargs)`` as a process would run it, in this one: in ``cwd``, with ``env_extra`` in the
    environment (a ``PYTHONPATH`` there also goes on ``sys.path``, a ``TMPDIR`` is `tempfile`'s folder) and a fresh
    basicsr logger (set up by the run, so it writes its own log file, and closed after it). The environment, the
    folder and ``sys.path`` are given back after the run. Its timestamped log and archive names differ from the
    previous run's (`_names_in_a_new_second`).

    Returns:
        subprocess.CompletedProcess: The exit code (the function's return value, 0 for None; a `SystemExit`'s code;
        1 with the traceback in stderr for an exception), the printed output and basicsr's log lines (stderr).
    """
    import io
    import traceback

    env_extra = {k: str(v) for k, v in (env_extra or {}).items()}
    saved_env, saved_path, saved_cwd, saved_tempdir = dict(os.environ), list(sys.path), os.getcwd(), tempfile.tempdir
    stdout, stderr = io.StringIO(), io.StringIO()
    try:
        os.environ.update(env_extra)
        tempfile.tempdir = None  # read again from TMPDIR
        if env_extra.get('PYTHONPATH'):
            sys.path[:0] = env_extra['PYTHONPATH'].split(os.pathsep)
        os.chdir(cwd)
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr), _fresh_basicsr_logger(), \
                _names_in_a_new_second():
            try:
                code = function(*args, **kwargs)
            except SystemExit as exit_:
                code = exit_.code
                if not isinstance(code, (int, type(None))):
                    print(code, file=sys.stderr)
                    code = 1
            except Exception:  # noqa: BLE001 -- a process would print the traceback and exit 1
                traceback.print_exc()
                code = 1
    finally:
        os.chdir(saved_cwd)
        sys.path[:] = saved_path
        if dict(os.environ) != saved_env:  # what the run set in its environment goes with it
            os.environ.clear()
            os.environ.update(saved_env)
        tempfile.tempdir = saved_tempdir
    return subprocess.CompletedProcess(args, code or 0, stdout.getvalue(), stderr.getvalue())


def run_cli(args, cwd, env_extra=None):
    """``basicsr ARGS`` (`vlunet_basicsr_cli.main`) with `run_in_process`: what `run_basicsr` does, without a
    process, for the tests where the process is not what they test."""
    from vlunet_basicsr_cli import main
    proc = run_in_process(main, [str(a) for a in args], cwd=cwd, env_extra=env_extra)
    proc.args = ['basicsr', *map(str, args)]
    return proc


def run_script(name, args):
    """``python scripts/<name>.py ARGS`` with `run_in_process` (its ``main`` in this process)."""
    return run_in_process(script_main(name), [str(a) for a in args], cwd=os.getcwd())


#: The verification sizes of the tests' exports (the first at batch 2), and the seed drawn before every load of an
#: exported system's YAML: the tiny CLIP has random weights drawn when it is built, so the exported, the reference and
#: the torch backend's encoders are one encoder (the benchmark seeds 0 before it builds, too).
EXPORT_SIZES = ['24x24', '13x21']
EXPORT_SEED = 0
#: A tiny open_clip ViT (random weights) with 32-d embeddings, and a VLUNet that takes 32-d vectors.
TINY_CLIP = {'embed_dim': 32,
             'vision_cfg': {'image_size': 32, 'layers': 1, 'width': 32, 'patch_size': 8, 'head_width': 16},
             'text_cfg': {'context_length': 77, 'vocab_size': 49408, 'width': 32, 'heads': 2, 'layers': 1}}
TINY_VLUNET = {'type': 'VLUNet', 'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'de_dim': 5,
               'degradation_dim': 32}
TINY_CLIP_NET = {'type': 'DegradationCLIP', 'model_name': 'ViT-B-32', 'pretrained': None, 'model_cfg': TINY_CLIP}
TINY_DGUNET = {'type': 'DGUNet', 'n_feat': 8, 'scale_unetfeats': 4, 'scale_orsnetfeats': 4, 'depth': 1}
TINY_VLUR = {'type': 'VLURNet', 'dim': 8, 'num_blocks': [1, 1, 1, 1], 'heads': [1, 1, 1, 1], 'text_dim': 32}
TINY_PROMPTIR = {'type': 'PromptIR', 'dim': 12, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1,
                 'prompt_size': 16}
TINY_ADAIR = {'type': 'AdaIR', 'dim': 16, 'num_blocks': [1, 1, 1, 1], 'num_refinement_blocks': 1, 'heads': [1, 2, 2, 4]}


def exportable_system(root, network_g, network_clip=None, prompts=None):
    """A test YAML under ``root`` for ``network_g`` with random weights saved beside it (and ``network_clip``)."""
    import torch
    from basicsr.archs import build_network
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save({'params': build_network(dict(network_g)).state_dict()}, root / 'net_g.pth')
    opt = {'name': 'export', 'model_type': 'GuidedRestorationModel', 'network_g': dict(network_g),
           'network_clip': network_clip, 'path': {'pretrain_network_g': str(root / 'net_g.pth')}}
    if prompts is not None:
        opt['prompts'] = prompts
    return write_yaml(root / 'test.yml', opt)


def export_command(opt, model, *flags):
    """``basicsr export -opt OPT -o MODEL --verify-sizes EXPORT_SIZES FLAGS`` in this process, seeded as the tests
    load the YAML; returns the exit code."""
    import torch

    from vlunet_basicsr_cli import main
    torch.manual_seed(EXPORT_SEED)
    return main(['export', '-opt', str(opt), '-o', str(model), '--verify-sizes', *EXPORT_SIZES, *flags])


def _run_folder(tmp_path_factory):
    """The folder of this pytest run that every xdist worker shares (a worker's base folder is inside it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get('PYTEST_XDIST_WORKER') else base


def export_once(tmp_path_factory, name, network_g, network_clip=None, prompts=None):
    """ONE ``basicsr export`` of a tiny system for the whole run (an export takes a minute or more): the first
    worker that needs it exports into the run's shared folder, the others wait for it and read it (read-only).
    Returns (option file, graph)."""
    from filelock import FileLock
    shared = _run_folder(tmp_path_factory) / f'exported_{name}'
    shared.mkdir(exist_ok=True)
    with FileLock(str(shared / '.lock')):
        if not (shared / 'model.onnx').is_file():
            opt = exportable_system(shared, network_g, network_clip, prompts)
            assert export_command(opt, shared / 'model.onnx') == 0, f'the export of the tiny {name} failed'
    return str(shared / 'test.yml'), shared / 'model.onnx'


@pytest.fixture(scope='session')
def exported_vlunet(tmp_path_factory):
    """The tiny VLUNet with its tiny CLIP encoder, exported once per run (`export_once`)."""
    return export_once(tmp_path_factory, 'vlunet', TINY_VLUNET, dict(TINY_CLIP_NET))


@pytest.fixture(scope='session')
def exported_vlur(tmp_path_factory):
    """The tiny VL-UR (text-guided, the CDD-11 prompts) with its tiny CLIP encoder, exported once per run."""
    return export_once(tmp_path_factory, 'vlur', TINY_VLUR, dict(TINY_CLIP_NET), 'cdd11')


@pytest.fixture(scope='session')
def exported_dgunet(tmp_path_factory):
    """The tiny DGUNet (unguided, three stages: the middle one inverts a Gram matrix), exported once per run."""
    return export_once(tmp_path_factory, 'dgunet', TINY_DGUNET)


@pytest.fixture(scope='session')
def exported_promptir(tmp_path_factory):
    """The tiny PromptIR (unguided, padded to 8 by the shared layer), exported once per run."""
    return export_once(tmp_path_factory, 'promptir', TINY_PROMPTIR)


def backend_images(folder):
    """Three images the backends must restore alike: odd-sized colour, small gray, 16-bit."""
    folder.mkdir(parents=True)
    rng = np.random.default_rng(3)
    cv2.imwrite(str(folder / 'odd.png'), rng.integers(0, 256, (19, 27, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / 'gray.png'), rng.integers(0, 256, (6, 9), dtype=np.uint8))  # below one multiple of 8
    cv2.imwrite(str(folder / 'deep.png'), rng.integers(0, 65536, (16, 24, 3), dtype=np.uint16))
    return folder


def restore_with_both_backends(tmp_path, opt, model, extra=(), backend=('--backend', 'onnxruntime')):
    """Restore `backend_images` with the torch backend and ``backend``; the files agree within rounding. Returns the
    two output folders."""
    import torch
    images = backend_images(tmp_path / 'in')
    torch_out, onnx_out = tmp_path / 'torch', tmp_path / 'onnx'
    torch.manual_seed(EXPORT_SEED)
    assert restore_main([str(images), '-o', str(torch_out), '-opt', opt, *extra]) == 0
    assert restore_main([str(images), '-o', str(onnx_out), *backend, '--onnx', str(model), *extra]) == 0
    assert_same_restored_images(torch_out, onnx_out)
    return torch_out, onnx_out


def assert_same_restored_images(first, second):
    """`backend_images` restored into two folders: the same files within rounding."""
    for name in ('odd.png', 'gray.png', 'deep.png'):
        a = cv2.imread(str(first / name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        b = cv2.imread(str(second / name), cv2.IMREAD_UNCHANGED).astype(np.int64)
        assert a.shape == b.shape and np.abs(a - b).max() <= 1, name


def degradation_readout(folder):
    """The rows of a restore's degradations.csv."""
    import csv
    with open(folder / 'degradations.csv') as f:
        return list(csv.DictReader(f))


@pytest.fixture
def image_pairs(tmp_path):
    return write_image_pairs(tmp_path / 'data')


#: The files that take 20 seconds or more, longest first. make test's workers (pytest-xdist, --dist loadfile
#: --no-loadscope-reorder) take files in collection order: these first, so that the last ones are short and the two
#: workers end together.
LONGEST_FIRST = ('test_onnx_systems.py', 'test_onnx.py', 'test_serve.py', 'test_promptir_training.py',
                 'test_distributed.py', 'test_benchmark.py', 'test_vlunet_model.py', 'test_compare.py',
                 'test_dgunet_arch.py', 'test_spawn_workers.py')


def pytest_collection_modifyitems(items):
    rank = {name: index for index, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: the others keep their order


def pytest_configure(config):
    # Where the package would be imported from, without importing it: pytest-xdist's controller runs this hook
    # before it starts the workers, and it runs no test.
    import importlib.util
    spec = importlib.util.find_spec('vlunet_basicsr')
    if spec is None:
        raise pytest.UsageError('vlunet_basicsr is not installed: run `make test` (it installs it) or '
                                '`pip install -e .`')
    installed = osp.dirname(osp.dirname(osp.abspath(spec.origin)))
    if installed != REPO:
        raise pytest.UsageError(f'vlunet_basicsr is imported from {installed}, not from this checkout ({REPO}); '
                                'run `make test` (it re-points the editable install) or `pip install -e .`')
