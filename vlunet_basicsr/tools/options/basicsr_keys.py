"""The option keys that BasicSR's train/test pipelines, data loader builder and ``BaseModel``/``SRModel`` read.

Our models declare their own keys on top of these (``OPTIONS``); together they are every key a run may use.
"""
from vlunet_basicsr.tools.options.spec import REQUIRED, Option

#: Top-level keys (``network_*`` entries are declared by each model).
TOP_LEVEL = (
    Option('name', 'str', REQUIRED, 'Experiment (train) or result (test) folder name: a plain name.'),
    Option('model_type', 'str', REQUIRED, 'A registered model.'),
    Option('scale', 'int', 1, 'Upscaling factor passed to every dataset.', minimum=1),
    Option('num_gpu', 'any', 'auto', "GPUs to use: an integer or 'auto'."),
    Option('manual_seed', 'int', None, 'Random seed (rank is added). Default: random.', minimum=0),
    Option('datasets', 'dict', REQUIRED, 'One entry per phase: train, val*, test*.'),
    Option('path', 'dict', None, 'Weights to load, resume state; derived folders are added.'),
    Option('train', 'dict', None, 'Training settings.'),
    Option('val', 'dict', None, 'Validation (train) or test settings.'),
    Option('logger', 'dict', None, 'Logging settings.'),
    Option('dist_params', 'dict', None, 'Distributed settings: backend, port.'),
    Option('find_unused_parameters', 'bool', False, 'Passed to DistributedDataParallel.'),
    Option('plugins', 'list[str]', None, 'Modules to import before building (they register classes).'),
    Option('cpu_allocator', 'str', None, 'CPU memory policy without a GPU. Default: tuned (train), system (test).',
           choices=('tuned', 'system')),
)

LOGGER = (
    Option('print_freq', 'int', REQUIRED, 'Log every this many iterations (training).', minimum=1),
    Option('save_checkpoint_freq', 'int', REQUIRED, 'Save every this many iterations (training).', minimum=1),
    Option('use_tb_logger', 'bool', False, 'Write tensorboard logs.'),
    Option('wandb', 'dict', None, 'wandb settings: project, resume_id.'),
)

DIST_PARAMS = (
    Option('backend', 'str', None, 'Process-group backend. Default: nccl with CUDA, else gloo.',
           choices=('nccl', 'gloo', 'mpi', 'ucc')),
    Option('port', 'int', None, 'Master port under slurm.', minimum=1, maximum=65535),
)

#: Keys of every dataset entry that BasicSR's loader builder and option parser read.
DATASET_LOADER = (
    Option('name', 'str', None, 'Set name, in logs and result folders: a plain name.'),
    Option('type', 'str', REQUIRED, 'A registered dataset.'),
    Option('phase', 'str', None, 'Set by the pipeline from the entry name.'),
    Option('scale', 'int', None, 'Set by the pipeline from the top-level scale.'),
    Option('batch_size_per_gpu', 'int', None, 'Batch size per process.', minimum=1),
    Option('num_worker_per_gpu', 'int', None, 'Data loader workers per process.', minimum=0),
    Option('dataset_enlarge_ratio', 'int', 1, 'Repeat the training set this many times per epoch.', minimum=1),
    Option('prefetch_mode', 'str', None, 'None, cpu or cuda.', choices=('cpu', 'cuda')),
    Option('num_prefetch_queue', 'int', 1, 'Prefetch queue length.', minimum=1),
    Option('pin_memory', 'bool', False, 'Pinned memory in the data loader.'),
    Option('persistent_workers', 'bool', False, 'Keep workers between epochs.'),
    Option('use_shuffle', 'bool', True, 'Shuffle the training set.'),
)

TRAIN = (
    Option('train.total_iter', 'int', REQUIRED, 'Iterations to train.', minimum=1),
    Option('train.warmup_iter', 'int', -1, "BasicSR's linear warm-up overlay (-1: none).", minimum=-1),
    Option('train.ema_decay', 'float', 0, 'EMA of net_g (0: none).', minimum=0, maximum=1),
    Option('train.scheduler', 'dict', None, 'Learning-rate schedule: type and its arguments.'),
)

VAL = (
    Option('val.val_freq', 'int', None, 'Validate every this many iterations (training).', minimum=1),
    Option('val.save_img', 'bool', False, 'Save restored images.'),
    Option('val.suffix', 'str', None, 'Test mode: file name suffix of saved images. Default: the run name.'),
    Option('val.metrics', 'dict', None, 'Metrics: name -> {type, ...}.'),
    Option('val.pbar', 'bool', False, 'Progress bar during validation.'),
)

PATH = (
    Option('path.resume_state', 'str', None, 'Training state to resume from.'),
    Option('path.ignore_resume_networks', 'list[str]', None, 'Networks not loaded on resume.'),
)

#: Per-network path keys: ``<prefix><label>``, e.g. ``pretrain_network_g``.
PATH_PER_NETWORK = (
    Option('path.pretrain_network_', 'str', None, 'Weights to load into network_<label>.'),
    Option('path.param_key_', 'str', 'params', 'Entry of the weights file to load.'),
    Option('path.strict_load_', 'bool', True, 'Fail on missing or unexpected keys.'),
)

#: Keys the pipeline itself adds; a YAML may carry them (e.g. a copied resolved file).
DERIVED = frozenset({'is_train', 'dist', 'rank', 'world_size', 'auto_resume', 'root_path'})
DERIVED_PATHS = frozenset({'experiments_root', 'models', 'training_states', 'log', 'visualization', 'results_root'})
