"""Finding and reading checkpoints and training states."""
import os
import os.path as osp


def latest_training_state(states_dir):
    """Path of the ``<iter>.state`` file with the highest iteration in ``states_dir``, or None."""
    if not osp.isdir(states_dir):
        return None
    iterations = [int(name[:-len('.state')]) for name in os.listdir(states_dir)
                  if name.endswith('.state') and name[:-len('.state')].isdigit()]
    if not iterations:
        return None
    return osp.join(states_dir, f'{max(iterations)}.state')
