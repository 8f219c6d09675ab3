"""Writing checkpoints safely and finding the training state to resume from."""
import os
import os.path as osp

import torch


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
