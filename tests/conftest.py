"""Shared fixtures: tiny images made on the fly, option files written like a user would, the `basicsr` command."""
import os
import os.path as osp
import shutil
import socket
import subprocess
import sys

import cv2
import numpy as np
import pytest
import yaml

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
REFERENCE = osp.join(osp.dirname(REPO), 'shared', 'reference')


def reference_file(name):
    path = osp.join(REFERENCE, name)
    if not osp.isfile(path):
        pytest.fail(f'reference file missing: {path} (shared/reference must sit beside the checkout)')
    return path


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


def write_yaml(path, opt):
    with open(path, 'w') as f:
        yaml.safe_dump(opt, f, sort_keys=False)
    return str(path)


def basicsr_command():
    command = shutil.which('basicsr', path=osp.dirname(sys.executable))
    if command is None:
        pytest.fail('the basicsr console script is not installed beside this Python (pip install -e .)')
    return command


def run_basicsr(args, cwd, env_extra=None, timeout=600):
    """Run the real `basicsr` command; fail the test with its output when it exits non-zero."""
    env = dict(os.environ, PYTHONUNBUFFERED='1', **(env_extra or {}))
    proc = subprocess.run([basicsr_command(), *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    return proc


@pytest.fixture
def image_pairs(tmp_path):
    return write_image_pairs(tmp_path / 'data')


def pytest_configure(config):
    import vlunet_basicsr
    installed = osp.dirname(osp.dirname(osp.abspath(vlunet_basicsr.__file__)))
    if installed != REPO:
        raise pytest.UsageError(f'vlunet_basicsr is imported from {installed}, not from this checkout ({REPO}); '
                                'run `make test` (it re-points the editable install) or `pip install -e .`')
