"""Checkpoint files: reading them safely (`load_weights`), writing them atomically, finding the state to resume.

`load_weights` is the one loader of weights and states: ``torch.load(weights_only=True)``, and when that fails,
a verdict that names the file and tells a corrupt or truncated file (`CorruptCheckpointError`: re-save or copy
it again; trusting it would not help) from a whole one that holds arbitrary Python objects
(`UnsafeCheckpointError`: loaded only when the user trusts its source).
"""
import os
import os.path as osp
import pickle

import torch

from vlunet_basicsr.utils.checkpoint_inspect import inspect_checkpoint

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
