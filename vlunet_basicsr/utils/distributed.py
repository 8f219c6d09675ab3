"""Distributed start-up: `init_dist` for the ``pytorch`` (torchrun) and ``slurm`` launchers, on CPU and GPU.

Called by the option pipeline (`vlunet_basicsr.tools.options.parse_options`) for ``--launcher pytorch|slurm``, in
place of basicsr's own (compat fix 2, see `vlunet_basicsr.compat`).
"""
import os
import subprocess

import torch


def default_backend():
    """The process-group backend used when the YAML does not set ``dist_params.backend``."""
    return 'nccl' if torch.cuda.is_available() else 'gloo'


def init_dist(launcher, backend=None, port=None, **kwargs):
    """Fix 2: initialise torch.distributed for ``pytorch`` (torchrun) or ``slurm`` launchers.

    basicsr's version hard-codes nccl for ``pytorch``, ignores ``dist_params`` for it, and calls
    ``torch.cuda.set_device(rank % device_count())``, a division by zero on CPU. Here the backend is
    ``dist_params.backend`` for every launcher (default: nccl with CUDA, else gloo) and the device is
    ``LOCAL_RANK`` (``SLURM_LOCALID`` under slurm), so multi-node runs pick the right GPU.

    Args:
        launcher (str): 'pytorch' or 'slurm'.
        backend (str | None): Process-group backend. Default: nccl if CUDA is available, else gloo.
        port (int | None): Master port for slurm (torchrun sets its own). Default: $MASTER_PORT or 29500.
        **kwargs: Passed to ``torch.distributed.init_process_group``.
    """
    import torch.distributed as dist
    backend = backend or default_backend()
    if launcher == 'pytorch':
        local_rank = int(os.environ.get('LOCAL_RANK', 0))
    elif launcher == 'slurm':
        proc_id = int(os.environ['SLURM_PROCID'])
        first_host = subprocess.getoutput(f"scontrol show hostname {os.environ['SLURM_NODELIST']} | head -n1")
        os.environ.setdefault('MASTER_ADDR', first_host.strip())
        os.environ['MASTER_PORT'] = str(port or os.environ.get('MASTER_PORT', 29500))
        os.environ['WORLD_SIZE'] = os.environ['SLURM_NTASKS']
        os.environ['RANK'] = str(proc_id)
        local_rank = int(os.environ.get('SLURM_LOCALID', 0))
        os.environ['LOCAL_RANK'] = str(local_rank)
    else:
        raise ValueError(f"Invalid launcher '{launcher}': expected 'pytorch' or 'slurm'.")
    if backend == 'nccl' and not torch.cuda.is_available():
        raise RuntimeError("dist_params.backend is 'nccl' but CUDA is not available; use 'gloo' on CPU.")
    if torch.cuda.is_available() and local_rank < torch.cuda.device_count():
        torch.cuda.set_device(local_rank)
    dist.init_process_group(backend=backend, **kwargs)
