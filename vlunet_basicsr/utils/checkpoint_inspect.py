"""Telling a corrupt checkpoint from one that is whole but needs arbitrary unpickling, without unpickling it.

A PyTorch file is either a zip archive (``torch.save``'s default: ``<name>/data.pkl`` plus one member per
tensor storage) or the legacy layout (a pickled magic number, protocol version and system info, then the
pickled object, then the raw storages). `inspect_checkpoint` walks that structure with ``pickletools`` (which
only reads opcodes, it never builds an object) and reports either what is broken or which Python globals the
object pickle names. This runs only after ``torch.load(weights_only=True)`` failed, to say why.
"""
import io
import os
import pickletools
import zipfile
from collections import namedtuple

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
