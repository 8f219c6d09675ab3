"""Checkpoint files: reading them safely (`load_weights`), writing them atomically, finding the state to resume.

`load_weights` is the one loader of weights and states: ``torch.load(weights_only=True)``, and when that fails,
a verdict that names the file and tells a corrupt or truncated file (`CorruptCheckpointError`: re-save or copy
it again; trusting it would not help) from a whole one that holds arbitrary Python objects
(`UnsafeCheckpointError`: loaded only when the user trusts its source).

Telling the two apart never unpickles the file (`inspect_checkpoint`): a PyTorch file is either a zip archive
(``torch.save``'s default: ``<name>/data.pkl`` plus one member per tensor storage) or the legacy layout (a pickled
magic number, protocol version and system info, then the pickled object, then the raw storages); ``pickletools``
walks it (reading opcodes only) and reports what is broken or which Python globals the object pickle names.
"""
import io
import os
import os.path as osp
import pickle
import pickletools
import zipfile
from collections import namedtuple

import torch

_TORCH_GLOBAL_PREFIXES = ('torch.', 'collections.OrderedDict', 'builtins.', '_codecs.encode')


class CheckpointFormatError(ValueError):
    """A checkpoint cannot be used: corrupt, unsafe to unpickle, or not the file that was expected."""


class CorruptCheckpointError(CheckpointFormatError):
    """The file is truncated, damaged or not a PyTorch checkpoint at all."""


class UnsafeCheckpointError(CheckpointFormatError):
    """The file is a whole checkpoint, but loading it needs arbitrary unpickling (it can run code)."""


def _first_line(error):
    text = str(error).strip()
    return f'{type(error).__name__}: {text.splitlines()[0] if text else type(error).__name__}'


def checkpoint_error(path, error, how_to_trust):
    """The `CheckpointFormatError` that explains why ``torch.load(path, weights_only=True)`` raised ``error``.

    Args:
        path (str): The file.
        error (Exception): What ``torch.load`` raised.
        how_to_trust (str): How the user allows arbitrary unpickling (for `UnsafeCheckpointError` only).

    Returns:
        CheckpointFormatError: `CorruptCheckpointError` when the file's zip or pickle structure is broken, or
        when it is whole and still failed for another reason than a refused global; `UnsafeCheckpointError`
        when it is whole and the weights-only unpickler refused it.
    """
    inspection = inspect_checkpoint(path)
    if inspection.corrupt:
        return CorruptCheckpointError(f'{path} is corrupt or truncated: {inspection.detail} '
                                      f'({osp.getsize(path)} bytes). Save or copy it again.')
    if not isinstance(error, pickle.UnpicklingError):
        return CorruptCheckpointError(f'{path} is corrupt or truncated: torch cannot read it '
                                      f'({_first_line(error)}). Save or copy it again.')
    foreign = [name for name in inspection.globals if not name.startswith(_TORCH_GLOBAL_PREFIXES)]
    named = f" (it names {', '.join(foreign[:5])})" if foreign else ''
    return UnsafeCheckpointError(
        f'{path} needs arbitrary unpickling to load: it holds more than tensors and plain containers{named}, '
        f'and unpickling it can run code. If you trust its source, {how_to_trust}. Detail: {_first_line(error)}')


#: ``path.trust_checkpoint``'s default: a weight file that needs arbitrary unpickling is refused.
TRUST_CHECKPOINT_DEFAULT = False
#: How a YAML's user trusts a checkpoint (`load_weights`' ``how_to_trust``).
HOW_TO_TRUST_IN_YAML = 'set path.trust_checkpoint: true in the YAML'


def trusted_in(opt):
    """``path.trust_checkpoint`` of a BasicSR option dict, or `TRUST_CHECKPOINT_DEFAULT`."""
    return bool((opt.get('path') or {}).get('trust_checkpoint', TRUST_CHECKPOINT_DEFAULT))


def load_weights(path, trust_checkpoint=False, how_to_trust='pass --trust-checkpoint (trust_checkpoint=True)',
                 map_location='cpu'):
    """``torch.load`` with ``weights_only=True``; a corrupt file or a pickle that needs more is refused by name.

    Args:
        path (str): File to read.
        trust_checkpoint (bool): Allow arbitrary unpickling of a whole file that needs it (only for files from
            a source you trust). A corrupt file is refused either way.
        how_to_trust (str): How the caller's user opts in, for the refusal message.
        map_location: Where tensors go (``torch.load``'s argument). Default: 'cpu'.

    Raises:
        FileNotFoundError: No file at ``path``.
        CorruptCheckpointError: Truncated, damaged, or not a PyTorch file.
        UnsafeCheckpointError: Needs arbitrary unpickling and ``trust_checkpoint`` is False.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'No such checkpoint file: {path}')
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001  (torch raises many kinds; each is explained by checkpoint_error)
        verdict = checkpoint_error(path, error, how_to_trust)
        if not trust_checkpoint or not isinstance(verdict, UnsafeCheckpointError):
            raise verdict from error
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # noqa: BLE001
        raise CheckpointFormatError(f'{path} cannot be unpickled even as a trusted file ({_first_line(error)})') \
            from error


def atomic_torch_save(obj, path):
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``.

    A kill or a full disk during the save leaves the previous ``path`` intact (the rename is atomic).
    """
    temporary = f'{path}.tmp{os.getpid()}'
    try:
        with open(temporary, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    finally:
        if osp.exists(temporary):
            os.remove(temporary)
    directory = os.open(osp.dirname(osp.abspath(path)), os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def training_states_newest_first(states_dir):
    """Paths of the ``<iter>.state`` files in ``states_dir``, highest iteration first."""
    if not osp.isdir(states_dir):
        return []
    iterations = [int(name[:-len('.state')]) for name in os.listdir(states_dir)
                  if name.endswith('.state') and name[:-len('.state')].isdigit()]
    return [osp.join(states_dir, f'{iteration}.state') for iteration in sorted(iterations, reverse=True)]


def count_blocks(state, prefix):
    """How many numbered children ``prefix.N`` the keys of a state dict hold (the blocks of a stack)."""
    return len({key[len(prefix) + 1:].split('.')[0] for key in state if key.startswith(prefix + '.')})


# The first pickle of a legacy-format torch file (torch.serialization.MAGIC_NUMBER).
LEGACY_MAGIC_NUMBER = 0x1950a86a20f9469cfc6c
ZIP_LOCAL_HEADER = b'PK\x03\x04'
_STRING_OPS = frozenset({'SHORT_BINUNICODE', 'BINUNICODE', 'BINUNICODE8', 'UNICODE', 'SHORT_BINSTRING',
                         'BINSTRING', 'STRING'})

CheckpointInspection = namedtuple('CheckpointInspection', ['corrupt', 'detail', 'globals'])


class _BoundedReader:
    """A file's ``read`` that never asks for more than is left (a corrupt length field must not allocate GBs)."""

    def __init__(self, stream, size):
        self.stream, self.left = stream, size

    def read(self, count=-1):
        count = self.left if count is None or count < 0 else min(count, self.left)
        data = self.stream.read(count)
        self.left -= len(data)
        return data

    def readline(self):
        line = self.stream.readline(self.left)
        self.left -= len(line)
        return line


def _opcodes(stream):
    """The (name, arg) opcodes of one pickle read from ``stream``; ValueError/EOFError when it is malformed."""
    return [(op.name, arg) for op, arg, _ in pickletools.genops(stream)]


def pickle_globals(opcodes):
    """``module.name`` of every global (class or function) a pickle refers to, in order of appearance."""
    names, strings = [], []
    for name, arg in opcodes:
        if name in _STRING_OPS:
            strings.append(str(arg))
        elif name == 'GLOBAL' or name == 'INST':
            names.append(str(arg).replace(' ', '.'))
        elif name == 'STACK_GLOBAL':
            names.append('.'.join(strings[-2:]) if len(strings) >= 2 else '<unknown global>')
    return list(dict.fromkeys(names))


def _inspect_zip(path):
    try:
        with zipfile.ZipFile(path) as archive:
            members = [name for name in archive.namelist() if name == 'data.pkl' or name.endswith('/data.pkl')]
            if not members:
                return CheckpointInspection(True, 'a zip archive without data.pkl: not a PyTorch checkpoint', [])
            bad_member = archive.testzip()
            if bad_member is not None:
                return CheckpointInspection(True, f'member {bad_member} fails its CRC check', [])
            opcodes = _opcodes(io.BytesIO(archive.read(members[0])))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as error:
        return CheckpointInspection(True, f'unreadable zip archive ({type(error).__name__}: {error})', [])
    return CheckpointInspection(False, '', pickle_globals(opcodes))


def _inspect_legacy(path):
    with open(path, 'rb') as raw:
        f = _BoundedReader(raw, os.fstat(raw.fileno()).st_size)
        try:
            magic = _opcodes(f)
        except (ValueError, EOFError):
            magic = []
        if not any(name.startswith(('LONG', 'INT', 'BININT')) and arg == LEGACY_MAGIC_NUMBER for name, arg in magic):
            return CheckpointInspection(True, 'neither a zip archive nor a legacy PyTorch pickle: the file is '
                                        'corrupt or not a checkpoint', [])
        try:
            for _ in range(2):  # protocol version, system info
                _opcodes(f)
            opcodes = _opcodes(f)
        except (ValueError, EOFError) as error:
            return CheckpointInspection(True, f'its pickled data ends early or is malformed ({error})', [])
    return CheckpointInspection(False, '', pickle_globals(opcodes))


def inspect_checkpoint(path):
    """Whether the file at ``path`` is structurally broken, and the globals its object pickle names.

    Returns:
        CheckpointInspection: ``corrupt`` (bool), ``detail`` (what is broken, '' when whole) and ``globals``
        (``module.name`` strings named by the pickle; empty when corrupt).
    """
    with open(path, 'rb') as f:
        head = f.read(len(ZIP_LOCAL_HEADER))
    if not head:
        return CheckpointInspection(True, 'the file is empty', [])
    if zipfile.is_zipfile(path):
        return _inspect_zip(path)
    if head == ZIP_LOCAL_HEADER:
        return CheckpointInspection(True, 'a zip archive without its central directory: the file is truncated '
                                    '(an interrupted save or copy)', [])
    return _inspect_legacy(path)
