"""One set of training or test images: GT + LQ pairs, or clean GT images to which noise is added.

Images come from a folder (through basicsr's disk FileClient) or from a BasicSR LMDB (``folder.lmdb`` with
``data.mdb`` and ``meta_info.txt``, the image name without extension as key, identical keys in the GT and LQ
LMDBs). LMDBs are opened lazily, read-only, once per process and shared by every source that reads them:
py-lmdb 3 refuses to open one environment twice in a process (basicsr's LMDB FileClient opens one per
client), and several sources often share one LMDB (noise sigma 15/25/50 on the same clean images).
"""
import os
import os.path as osp

import lmdb

from basicsr.utils import FileClient
from vlunet_basicsr.utils.option_values import (REQUIRED, expect, missing_key_problems, option, problems_of,
                                                 raise_problems)
from vlunet_basicsr.utils.image_io import decode_image as read_decoded
from vlunet_basicsr.utils.image_extensions import IMAGE_EXTENSIONS  # noqa: F401  (read here, and imported from here)
from vlunet_basicsr.utils.prompts import DEGRADATION_PROMPTS


_LMDB_ENVIRONMENTS = {}


def lmdb_environment(path):
    """The read-only environment of ``path`` for this process (one per process, shared by all readers)."""
    key = osp.realpath(path)
    entry = _LMDB_ENVIRONMENTS.get(key)
    if entry is not None:
        pid, environment = entry
        if pid == os.getpid():
            return environment
        environment.close()  # inherited through fork(): an LMDB environment must not cross processes
    try:
        environment = lmdb.open(path, readonly=True, lock=False, readahead=False, meminit=False)
    except lmdb.Error as error:
        raise OSError(f'cannot open the LMDB {path}: {error}') from error
    try:
        check_lmdb_size(environment, path)
    except TruncatedLMDBError:
        environment.close()
        raise
    _LMDB_ENVIRONMENTS[key] = (os.getpid(), environment)
    return environment


class TruncatedLMDBError(RuntimeError):
    """A whole LMDB is unusable (not one bad sample: ``skip_bad_samples`` does not skip it)."""


def check_lmdb_size(environment, path):
    """Raise a `TruncatedLMDBError` naming ``path`` when its data.mdb is shorter than its header says it is.

    A truncated data.mdb (an interrupted copy) opens fine, but reading a page past the end of the file kills
    the process with SIGBUS; the header (meta page) gives the last page in use and the page size, so the file
    must hold at least ``(last_pgno + 1) * psize`` bytes.
    """
    data_file = osp.join(path, 'data.mdb')
    if not osp.isfile(data_file):
        return  # not the folder layout; lmdb.open found its data elsewhere
    needed = (environment.info()['last_pgno'] + 1) * environment.stat()['psize']
    size = osp.getsize(data_file)
    if size < needed:
        raise TruncatedLMDBError(f'LMDB {path} is truncated: its data.mdb holds {size} bytes but its header says it '
                                 f'uses {needed} bytes (an interrupted copy?); copy or build it again')


def image_key(path):
    """The name that identifies an image in a set: its file name without extension (or the LMDB key)."""
    return osp.splitext(osp.basename(path))[0]


def read_lmdb_keys(folder, where):
    """Keys of a BasicSR LMDB, from its meta_info.txt (``name.ext (h,w,c) level`` per line)."""
    meta = osp.join(folder, 'meta_info.txt')
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{where}: LMDB folder not found: {folder}')
    if not osp.isfile(meta):
        raise FileNotFoundError(f'{where}: {folder} has no meta_info.txt (not a BasicSR LMDB; build it with '
                                'scripts/prepare_datasets.py)')
    with open(meta) as f:
        return [image_key(line.split(' (')[0].strip()) for line in f if line.strip()]


def list_image_files(folder, where):
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{where}: image folder not found: {folder}')
    return sorted(name for name in os.listdir(folder) if name.lower().endswith(IMAGE_EXTENSIONS))


def decode_image(content, path):
    """Bytes of an image file -> float32 RGB HxWx3 in [0, 1] (alpha dropped), by the package's one decoder
    (`vlunet_basicsr.utils.image_io.decode_image`: empty, truncated or corrupt files raise a ValueError naming
    ``path``)."""
    return read_decoded(content, path).rgb


class ImageSource:
    """A paired set (``dataroot_gt`` + ``dataroot_lq``) or a clean set (``dataroot_gt`` + ``noise_sigma``).

    Option keys (``OPTION_DEFAULTS``; values checked by `option_problems`):
        name (str): Shown in logs and errors. Default: the GT folder's name.
        label (int): Degradation label (index into the prompt list).
        text (str): Prompt of the degradation. Default: the release's prompt of ``label``.
        dataroot_gt (str): Folder or ``*.lmdb`` of clean images.
        dataroot_lq (str): Folder or ``*.lmdb`` of degraded images with the same names/keys.
        noise_sigma (float): Instead of ``dataroot_lq``: Gaussian noise sigma (0-255 scale) added to GT.
        io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``.
        meta_info_file (str): Disk only: a file whose lines start with the image names to use.
        filename_tmpl (str): Disk only: LQ name from the GT name without extension. Default: '{}'.

    Args:
        opt (dict): The options above.
        where (str): YAML location of these options, for error messages.
    """

    OPTION_DEFAULTS = {'name': None, 'label': REQUIRED, 'text': None, 'dataroot_gt': REQUIRED, 'dataroot_lq': None,
                       'noise_sigma': None, 'io_backend': None, 'meta_info_file': None, 'filename_tmpl': '{}'}

    @classmethod
    def option_problems(cls, opt, owner='a source'):
        """Problems of a source's options (``'key: ...'``, without its location); [] when they are valid."""
        problems = missing_key_problems(opt, cls.OPTION_DEFAULTS, '', owner) + problems_of(
            expect('name', opt.get('name'), 'str', nullable=True),
            expect('label', opt.get('label'), 'int', minimum=0, nullable='label' not in opt),
            expect('text', opt.get('text'), 'str', nullable=True),
            expect('dataroot_gt', opt.get('dataroot_gt'), 'str', nullable='dataroot_gt' not in opt),
            expect('dataroot_lq', opt.get('dataroot_lq'), 'str', nullable=True),
            expect('noise_sigma', opt.get('noise_sigma'), 'float', minimum=0, maximum=255, nullable=True),
            expect('io_backend', opt.get('io_backend'), 'dict', nullable=True),
            expect('meta_info_file', opt.get('meta_info_file'), 'str', nullable=True),
            expect('filename_tmpl', option(opt, cls.OPTION_DEFAULTS, 'filename_tmpl'), 'str'))
        if problems:
            return problems
        if (opt.get('dataroot_lq') is None) == (opt.get('noise_sigma') is None):
            problems.append('dataroot_lq: give exactly one of dataroot_lq (paired set) or noise_sigma (clean set)')
        if opt.get('text') is None and not 0 <= opt['label'] < len(DEGRADATION_PROMPTS):
            problems.append(f"label: no default prompt for label {opt['label']}; set text")
        backend = (opt.get('io_backend') or {'type': 'disk'}).get('type')
        if backend not in ('disk', 'lmdb'):
            problems.append(f"io_backend: type must be 'disk' or 'lmdb', got {backend!r}")
        return problems

    def __init__(self, opt, where):
        self.where = where
        raise_problems(where, self.option_problems(opt))
        self.root_gt = opt['dataroot_gt']
        self.root_lq = opt.get('dataroot_lq')
        self.noise_sigma = opt.get('noise_sigma')
        self.name = opt.get('name') or osp.basename(osp.normpath(self.root_gt))
        self.label = int(opt['label'])
        self.text = opt.get('text') or DEGRADATION_PROMPTS[self.label]
        io_opt = dict(opt.get('io_backend') or {'type': 'disk'})
        self.backend = io_opt.pop('type')
        self.io_kwargs = io_opt
        self.samples = self._list_samples(opt.get('meta_info_file'), option(opt, self.OPTION_DEFAULTS, 'filename_tmpl'))
        if not self.samples:
            raise ValueError(f'{where}: no images found in {self.root_gt}')
        self._client = None

    def __len__(self):
        return len(self.samples)

    def _list_samples(self, meta_info_file, filename_tmpl):
        if self.backend == 'lmdb':
            for root in filter(None, (self.root_gt, self.root_lq)):
                if not root.endswith('.lmdb'):
                    raise ValueError(f"{self.where}: io_backend lmdb needs '*.lmdb' folders, got {root}")
            keys = read_lmdb_keys(self.root_gt, self.where)
            if self.root_lq is not None:
                lq_keys = set(read_lmdb_keys(self.root_lq, self.where))
                missing, extra = sorted(set(keys) - lq_keys), sorted(lq_keys - set(keys))
                if missing or extra:
                    raise ValueError(f'{self.where}: GT and LQ LMDB keys differ: {len(missing)} GT keys have no LQ '
                                     f'(e.g. {missing[:5]}), {len(extra)} LQ keys have no GT (e.g. {extra[:5]})')
            return [(key, key, key if self.root_lq else None) for key in sorted(keys)]

        if meta_info_file is not None:
            if not osp.isfile(meta_info_file):
                raise FileNotFoundError(f'{self.where}: meta_info_file not found: {meta_info_file}')
            with open(meta_info_file) as f:
                gt_names = [line.split(' ')[0].strip() for line in f if line.strip()]
        else:
            gt_names = list_image_files(self.root_gt, self.where)
        samples = []
        if self.root_lq is None:
            return [(image_key(n), osp.join(self.root_gt, n), None) for n in gt_names]
        lq_by_stem = {image_key(n): n for n in list_image_files(self.root_lq, self.where)}
        missing = []
        for name in gt_names:
            lq_name = lq_by_stem.get(filename_tmpl.format(image_key(name)))
            if lq_name is None:
                missing.append(name)
            else:
                samples.append((image_key(name), osp.join(self.root_gt, name), osp.join(self.root_lq, lq_name)))
        if missing:
            raise ValueError(f'{self.where}: {len(missing)} GT images have no LQ image in {self.root_lq} '
                             f"(filename_tmpl '{filename_tmpl}'), e.g. {missing[:5]}")
        return samples

    def _read(self, path, client_key):
        where = f'{self.where}: {client_key} image {path}'
        root = self.root_gt if client_key == 'gt' else self.root_lq
        if self.backend == 'lmdb':
            with lmdb_environment(root).begin(write=False) as txn:
                content = txn.get(path.encode('ascii'))
            if content is None:
                raise KeyError(f'{where}: key not found in {root}')
        else:
            if self._client is None:
                self._client = FileClient('disk', **self.io_kwargs)
            try:
                content = self._client.get(path)
            except OSError as error:
                raise FileNotFoundError(f'{where}: cannot read: {error}') from error
        try:
            return decode_image(content, path)
        except ValueError as error:
            raise ValueError(f'{self.where}: {error}') from error

    def read(self, index):
        """Return ``key``, ``gt_path``, ``lq_path``, ``gt`` and ``lq`` (float32 RGB HxWx3 in [0, 1]).

        For a clean set ``lq`` is None and ``lq_path`` is the GT path (the noisy image is made from it).
        """
        key, gt_path, lq_path = self.samples[index]
        gt = self._read(gt_path, 'gt')
        lq = None if lq_path is None else self._read(lq_path, 'lq')
        if lq is not None and lq.shape != gt.shape:
            raise ValueError(f'{self.where}: LQ {lq_path} is {lq.shape[1]}x{lq.shape[0]} but GT {gt_path} is '
                             f'{gt.shape[1]}x{gt.shape[0]}; paired images must have the same size')
        gt_display = self._display_path(gt_path, self.root_gt)
        lq_display = gt_display if lq_path is None else self._display_path(lq_path, self.root_lq)
        return {'key': key, 'gt': gt, 'lq': lq, 'gt_path': gt_display, 'lq_path': lq_display}

    def read_lq(self, index):
        """The LQ image of sample ``index`` alone (float32 RGB HxWx3 in [0, 1]) and its path, without reading
        the GT (e.g. another degraded version of a scene); ``(None, None)`` for a clean set."""
        _, _, lq_path = self.samples[index]
        if lq_path is None:
            return None, None
        return self._read(lq_path, 'lq'), self._display_path(lq_path, self.root_lq)

    def _display_path(self, path, root):
        return osp.join(root, path) if self.backend == 'lmdb' else path


def to_sample(gt, lq, source, record):
    """The dict every VLU-Net dataset returns: CHW float tensors in [0, 1] (RGB) plus label, text and paths."""
    from basicsr.utils import img2tensor
    gt_tensor, lq_tensor = img2tensor([gt, lq], bgr2rgb=False, float32=True)
    return {'lq': lq_tensor, 'gt': gt_tensor, 'label': source.label, 'text': source.text,
            'lq_path': record['lq_path'], 'gt_path': record['gt_path'], 'source': source.name}
