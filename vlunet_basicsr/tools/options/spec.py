"""Declared option keys of the tools: BasicSR's own keys (below), the optimizer arguments and compare files.

The core's classes declare no `Option`: archs and losses are described by their constructors, datasets and models
by ``OPTION_DEFAULTS`` (`vlunet_basicsr.utils.option_values`). Another plugin's class that still carries
``OPTIONS = (Option(...), ...)`` is checked against it.

Types are written as strings: ``int``, ``float`` (ints accepted), ``bool``, ``str``, ``dict``, ``list``,
``list[int]``, ``list[float]``, ``list[str]``, ``list[dict]`` and ``any``.
"""
from dataclasses import dataclass

from vlunet_basicsr.utils.option_values import REQUIRED, bounds, closest_hint, element_kind, expectation, value_problem

__all__ = ['REQUIRED', 'Option', 'check_entry', 'closest_hint', 'section']

_KINDS = ('int', 'float', 'bool', 'str', 'dict', 'any')


@dataclass(frozen=True)
class Option:
    """One option key.

    Args:
        name (str): The key; for a model, ``section.key`` for keys under ``train``, ``val`` or ``path``.
        type (str): See the module docstring.
        default (object): Value when the key is absent; `REQUIRED` when it must be given. Default: None.
        doc (str): One line for the docs.
        choices (tuple | None): Allowed values. Default: None (any of the type).
        minimum (float | None): Smallest allowed number (each element for lists). Default: None.
        maximum (float | None): Largest allowed number (each element for lists). Default: None.
        multiple (int | None): Integers only: each value must be a multiple of it. Default: None.
        nullable (bool): Whether ``~`` (None) is allowed; always true when the default is None. Default: False.
        length (int | None): Required length of a list. Default: None.
        entries (tuple[Option] | None): For ``list[dict]``: the declarations of each mapping. Default: None.
        entry_owner (str): Who reads each mapping of ``entries``, for messages. Default: 'an entry'.
    """

    name: str
    type: str
    default: object = None
    doc: str = ''
    choices: tuple = None
    minimum: float = None
    maximum: float = None
    multiple: int = None
    nullable: bool = False
    length: int = None
    entries: tuple = None
    entry_owner: str = 'an entry'

    def __post_init__(self):
        element = element_kind(self.type)
        if self.type not in _KINDS and element not in _KINDS:
            raise ValueError(f'Option {self.name}: unknown type {self.type!r}')

    @property
    def key(self):
        """The key within its section (``grad_clip_norm`` for ``train.grad_clip_norm``)."""
        return self.name.rsplit('.', 1)[-1]

    @property
    def section(self):
        """``train``, ``val``, ``path`` or '' (top level, or the whole entry of a compare file)."""
        return self.name.rsplit('.', 1)[0] if '.' in self.name else ''

    def _rules(self):
        return dict(choices=self.choices, minimum=self.minimum, maximum=self.maximum, multiple=self.multiple,
                    nullable=self.nullable or self.default is None, length=self.length)

    def bounds(self, multiple_words='multiple of'):
        """The numeric bounds as phrases: '>= 1', '<= 8', '<multiple_words> 2'."""
        return bounds(self.minimum, self.maximum, self.multiple, multiple_words)

    def expectation(self):
        """What a valid value looks like, in words."""
        return expectation(self.type, **self._rules())

    def problem(self, value):
        """None when ``value`` is valid for this key, else what is wrong with it (without the key's name)."""
        return value_problem(value, self.type, **self._rules())

    def normalised(self, value):
        """A valid ``value`` as the key's type: whole floats given for integers become ints."""
        if self.type == 'int' and isinstance(value, float):
            return int(value)
        if self.type == 'list[int]' and isinstance(value, (list, tuple)):
            return [int(v) for v in value]
        return value


def check_entry(entry, options, where, owner, extra_keys=(), unknown=True):
    """Problems of one mapping of options against declarations: unknown keys, missing and invalid values.

    Valid values are normalised in place (`Option.normalised`).

    Args:
        entry (dict): The YAML mapping (e.g. ``network_g`` or one dataset).
        options (Iterable[Option]): Declarations of this mapping's keys (their section part is ignored).
        where (str): YAML location of ``entry``, e.g. ``network_g`` ('' for the top level).
        owner (str): Who reads the keys, for messages (a class name, or 'a source').
        extra_keys (Iterable[str]): Keys read by others (e.g. BasicSR's data loader), accepted as they are.
        unknown (bool): Report keys that nothing declares. Default: True.

    Returns:
        list[str]: One line per problem.
    """
    def at(key):
        return f'{where}.{key}' if where else str(key)

    if not isinstance(entry, dict):
        return [f'{where}: expected a mapping of options for {owner}, got {entry!r}']
    declared = {option.key: option for option in options}
    problems = []
    for key in sorted(set(entry) - set(declared) - set(extra_keys) if unknown else (), key=str):
        problems.append(f"{where + ': ' if where else ''}unknown option '{key}' for {owner}."
                        f'{closest_hint(key, set(declared) | set(extra_keys))}')
    for key, option in declared.items():
        if key not in entry:
            if option.default is REQUIRED:
                detail = option.doc or (option.expectation() if option.type != 'any' else '')
                problems.append(f'{at(key)}: required by {owner}' + (f' ({detail})' if detail else ''))
            continue
        problem = option.problem(entry[key])
        if problem is not None:
            problems.append(f'{at(key)}: {problem}')
            continue
        entry[key] = option.normalised(entry[key])
        if option.entries is not None and entry[key] is not None:
            for i, item in enumerate(entry[key]):
                problems += check_entry(item, option.entries, f'{at(key)}[{i}]', option.entry_owner)
    return problems


def section(options, name):
    """The declarations of one section (``train``, ``val``, ``path``; '' for the top level or a whole entry)."""
    return tuple(option for option in options if option.section == name)


# BasicSR's own keys: what its train/test pipelines, data loader builder and BaseModel/SRModel read. Our models
# declare theirs on top of these (OPTION_DEFAULTS); together they are every key a run may use.

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
