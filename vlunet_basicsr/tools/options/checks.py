"""Checks of a whole option file before anything is built; each problem names its YAML key (and the file).

- `check_registered_types`: every ``type`` is in its registry (the closest name and the full list otherwise).
- `check_declared_options`: keys and values of BasicSR's pipeline (`spec`); of every arch, loss and
  scheduler against its constructor's signature, its values by the class's own ``argument_problems`` (the check
  its constructor runs); of every dataset and model against its ``OPTION_DEFAULTS``, its values by its own
  ``option_problems`` (`vlunet_basicsr.utils.option_values`); another plugin's class that declares ``OPTIONS``
  (`spec.Option`) against those; optimizer arguments against the torch optimizer's own signature; required keys;
  plain experiment and set names.
- `check_required_paths`: every data and weight path exists (all missing ones listed at once).
"""
import inspect
import os
import os.path as osp
from dataclasses import replace

from vlunet_basicsr.tools.options import spec
from vlunet_basicsr.tools.options.spec import REQUIRED, Option, check_entry, closest_hint, section
from vlunet_basicsr.utils.option_values import located, unknown_key_problems


def _registries():
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    return ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY


def _fail(opt_path, problems, error=ValueError):
    if problems:
        raise error(f'{opt_path}:\n  ' + '\n  '.join(problems))


def typed_entries(opt):
    """Yield (yaml key path, registry, type name) for every ``type`` that a BasicSR builder will look up."""
    arch, dataset, loss, metric, model = _registries()
    if isinstance(opt.get('model_type'), str):
        yield 'model_type', model, opt['model_type']
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict) and 'type' in value:
            yield f'{key}.type', arch, value['type']
    for phase, dataset_opt in _mapping(opt.get('datasets')).items():
        if isinstance(dataset_opt, dict) and 'type' in dataset_opt:
            yield f'datasets.{phase}.type', dataset, dataset_opt['type']
    for key, value in _mapping(opt.get('train')).items():
        if key.endswith('_opt') and isinstance(value, dict) and 'type' in value:
            yield f'train.{key}.type', loss, value['type']
    for name, metric_opt in _mapping(_mapping(opt.get('val')).get('metrics')).items():
        if isinstance(metric_opt, dict) and 'type' in metric_opt:
            yield f'val.metrics.{name}.type', metric, metric_opt['type']


def _mapping(value):
    return value if isinstance(value, dict) else {}


def check_registered_types(opt, opt_path):
    """Fail before building anything if a ``type`` is not registered, listing the registered names."""
    problems = []
    for key, registry, name in typed_entries(opt):
        if name in registry or f'{name}_basicsr' in registry:
            continue
        names = sorted(registry.keys())
        problems.append(f"{key}: '{name}' is not in the {registry._name} registry.{closest_hint(name, names)} "
                        f"Registered: {', '.join(names)}")
    _fail(opt_path, problems)


def declares_options(cls):
    """Whether ``cls`` (another plugin's) declares its option keys as ``OPTIONS``, a sequence of `Option`."""
    declared = getattr(cls, 'OPTIONS', None)
    return isinstance(declared, (tuple, list)) and all(isinstance(option, Option) for option in declared)


def declared_keys(cls):
    """The `Option` declarations of a dataset or model: its ``OPTIONS``, or one per key of its ``OPTION_DEFAULTS``
    (values unchecked here: the class's ``option_problems`` checks them); None when it declares neither."""
    if declares_options(cls):
        return tuple(cls.OPTIONS)
    defaults = getattr(cls, 'OPTION_DEFAULTS', None)
    if not isinstance(defaults, dict):
        return None
    return tuple(Option(key, 'any', default) for key, default in defaults.items())


def constructor_problems(cls, entry, where, owner, given=()):
    """Problems of an arch's, loss's or scheduler's YAML mapping: keys its constructor does not take (none for a
    ``**kwargs`` constructor), required arguments missing, and values, by the class's ``argument_problems``.

    Args:
        given (Iterable[str]): Constructor arguments that the builder passes itself (a scheduler's optimizer).
    """
    if declares_options(cls):
        return check_entry(entry, tuple(cls.OPTIONS), where, owner, {'type'})
    if not isinstance(entry, dict):
        return [f'{where}: expected a mapping of options for {owner}, got {entry!r}']
    signature = inspect.signature(cls)
    parameters = {name: p for name, p in signature.parameters.items()
                  if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and name not in given}
    arguments = {key: value for key, value in entry.items() if key != 'type'}
    if not any(p.kind == p.VAR_KEYWORD for p in signature.parameters.values()):
        unknown = unknown_key_problems(arguments, parameters, where, owner)
        if unknown:
            return unknown
    missing = [f'{where}.{name}: required by {owner}' for name, p in parameters.items()
               if p.default is p.empty and name not in arguments]
    check = getattr(cls, 'argument_problems', None)
    if missing or check is None:
        return missing
    bound = signature.bind_partial(**arguments)
    bound.apply_defaults()
    return located(where, check(dict(bound.arguments)))


def plain_name_problem(value):
    """Why ``value`` cannot name a folder inside experiments/ or results/ (or None when it can)."""
    if not isinstance(value, str) or not value.strip():
        return f'{value!r} is not a name'
    separators = {'/', '\\', os.sep} | ({os.altsep} if os.altsep else set())
    if value in ('.', '..') or any(s in value for s in separators) or osp.isabs(value) or '\0' in value:
        return (f"{value!r} is not a plain name: no '/', '\\', '..' or absolute path, since it names a folder that "
                'must stay inside experiments/, results/ or tb_logger/')
    return None


def _check_names(opt):
    problems = []
    candidates = [('name', opt.get('name'))]
    candidates += [(f'datasets.{phase}.name', entry.get('name'))
                   for phase, entry in _mapping(opt.get('datasets')).items()
                   if isinstance(entry, dict) and entry.get('name') is not None]
    if _mapping(opt.get('val')).get('suffix') is not None:
        candidates.append(('val.suffix', opt['val']['suffix']))
    for key, value in candidates:
        if key == 'name' and value is None:
            continue  # reported as a missing required key
        problem = plain_name_problem(value)
        if problem:
            problems.append(f'{key}: {problem}')
    return problems


def _optimizer_problems(where, entry):
    """Arguments of ``train.optim_*`` against the torch optimizer's signature (numbers must be numbers)."""
    import torch
    optimizer_class = getattr(torch.optim, str(entry.get('type')), None)
    if not (isinstance(optimizer_class, type) and issubclass(optimizer_class, torch.optim.Optimizer)):
        return []  # named by the optimizer builder (compat.get_optimizer) with the list of optimizers
    parameters = dict(list(inspect.signature(optimizer_class.__init__).parameters.items())[2:])
    declared = [Option('type', 'str', REQUIRED), Option('lr', 'float', REQUIRED, 'Learning rate.', minimum=0)]
    for name, parameter in parameters.items():
        if name == 'lr' or parameter.kind in (parameter.VAR_KEYWORD, parameter.VAR_POSITIONAL):
            continue
        default = parameter.default
        kind = ('bool' if isinstance(default, bool) else 'float' if isinstance(default, (int, float))
                else 'list[float]' if isinstance(default, tuple) else 'any')
        declared.append(Option(name, kind, default if default is not parameter.empty else REQUIRED))
    return check_entry(entry, declared, where, entry.get('type'))


def _section_problems(opt, model_options, name, owner, extra_keys=(), unknown=True):
    declared = section(getattr(spec, name.upper()) + tuple(model_options), name)
    return check_entry(_mapping(opt.get(name)), declared, name, owner, extra_keys, unknown)


def _network_labels(opt, model_options):
    declared = [o.key for o in section(model_options, '') if o.key.startswith('network_')]
    return {key[len('network_'):] for key in declared + [k for k in opt if k.startswith('network_')]}


def _model_problems(opt, model_cls, is_train):
    """Top-level, train, val and path keys against BasicSR's keys and the model's declarations."""
    from basicsr.models.sr_model import SRModel
    declared = declared_keys(model_cls) if model_cls is not None else None
    strict = declared is not None  # declaring models declare every key they read; others may read more
    model_options = tuple(declared or ())
    if not strict and model_cls is not None and issubclass(model_cls, SRModel):
        model_options = (Option('network_g', 'dict', REQUIRED, 'The restoration network.'),
                         Option('train.optim_g', 'dict', REQUIRED, 'Optimizer of net_g.'))
    owner = model_cls.__name__ if model_cls is not None else 'this run'
    top = spec.TOP_LEVEL + section(model_options, '')
    network_keys = {k for k in opt if k.startswith('network_')}
    problems = check_entry(opt, top, '', owner, spec.DERIVED | network_keys, unknown=strict)
    if 'logger' in opt and is_train:
        problems += check_entry(_mapping(opt['logger']), spec.LOGGER, 'logger', 'the logger')
    elif is_train:
        problems.append('logger: required in training (print_freq, save_checkpoint_freq)')
    problems += check_entry(_mapping(opt.get('dist_params')), spec.DIST_PARAMS, 'dist_params', 'dist_params')
    if is_train:
        losses = {key for key in _mapping(opt.get('train')) if key.endswith('_opt')}  # each a registered loss
        problems += _section_problems(opt, model_options, 'train', owner, losses, unknown=strict)
        for key, value in _mapping(opt.get('train')).items():
            if key.startswith('optim_') and isinstance(value, dict):
                problems += _optimizer_problems(f'train.{key}', value)
    problems += _section_problems(opt, model_options, 'val', owner, unknown=strict)
    per_network = tuple(replace(option, name=option.name + label) for option in spec.PATH_PER_NETWORK
                        for label in sorted(_network_labels(opt, model_options)))
    problems += check_entry(_mapping(opt.get('path')), section(spec.PATH + per_network + model_options, 'path'),
                            'path', owner, spec.DERIVED_PATHS, unknown=strict)
    return problems


def dataset_entry_problems(cls, entry, where):
    """Problems of one ``datasets.<phase>`` mapping: its keys against the dataset's declaration and the loader's
    keys, its values by the dataset's own ``option_problems`` (only the loader's keys for an undeclaring class)."""
    loader = spec.DATASET_LOADER
    declared = declared_keys(cls) if cls is not None else None
    if declared is None:
        return check_entry(entry, loader, where, entry.get('type'), unknown=False)
    if not hasattr(cls, 'option_problems'):
        return check_entry(entry, declared + loader, where, entry['type'], spec.DERIVED)
    keys = tuple(replace(option, default=None) for option in declared)  # required: named by option_problems
    problems = check_entry(entry, keys + loader, where, entry['type'], spec.DERIVED)
    return problems + located(where, cls.option_problems(entry))


def _dataset_problems(opt, is_train):
    _, dataset_registry, _, _, _ = _registries()
    datasets = opt.get('datasets')
    if not isinstance(datasets, dict):
        return [] if datasets is None else [f'datasets: expected a mapping of phases, got {datasets!r}']
    problems = []
    if is_train and 'train' not in datasets:
        problems.append('datasets.train: required in training')
    for phase, entry in datasets.items():
        where = f'datasets.{phase}'
        if is_train and phase != 'train' and not str(phase).startswith('val'):
            problems.append(f"{where}: training runs know the phases 'train' and 'val*' only")
        if not isinstance(entry, dict):
            problems.append(f'{where}: expected a mapping of dataset options, got {entry!r}')
            continue
        cls = dataset_registry.get(entry['type']) if entry.get('type') in dataset_registry else None
        problems += dataset_entry_problems(cls, entry, where)
        if is_train and phase == 'train':
            problems += [f'{where}.{key}: required in training' for key in ('batch_size_per_gpu', 'num_worker_per_gpu')
                         if key not in entry]
    return problems


def _declared_class_problems(opt):
    """Keys of our archs (``network_*``) and losses (``train.*_opt``) and the scheduler."""
    from vlunet_basicsr.models.lr_scheduler import SCHEDULER_REGISTRY
    arch, _, loss, _, _ = _registries()
    problems = []
    for key, registry, name in typed_entries(opt):
        if registry not in (arch, loss) or name not in registry:
            continue
        where = key[:-len('.type')]
        entry = opt[where] if registry is arch else opt['train'][where.split('.', 1)[1]]
        problems += constructor_problems(registry.get(name), entry, where, name)
    scheduler = _mapping(_mapping(opt.get('train')).get('scheduler'))
    if scheduler.get('type') in SCHEDULER_REGISTRY:
        problems += constructor_problems(SCHEDULER_REGISTRY.get(scheduler['type']), scheduler, 'train.scheduler',
                                         scheduler['type'], given={'optimizer', 'last_epoch'})
    return problems


def check_declared_options(opt, opt_path, is_train):
    """Fail on any unknown key, missing required key or invalid value, naming each key and value, all at once."""
    _, _, _, _, model_registry = _registries()
    model_type = opt.get('model_type')
    model_cls = model_registry.get(model_type) if isinstance(model_type, str) and model_type in model_registry else None
    problems = _model_problems(opt, model_cls, is_train)
    problems += _dataset_problems(opt, is_train)
    problems += _declared_class_problems(opt)
    problems += _check_names(opt)
    if model_cls is not None and hasattr(model_cls, 'option_problems'):  # values, and constraints between keys
        problems += model_cls.option_problems(opt, is_train)
    elif model_cls is not None and declares_options(model_cls) and hasattr(model_cls, 'check_options'):
        problems += model_cls.check_options(opt, is_train)
    _fail(opt_path, problems)


def check_speed_options(opt, opt_path):
    """``train.amp``, ``val.amp`` (`vlunet_basicsr.utils.precision`) and ``val.compile``, named with the YAML file."""
    from vlunet_basicsr.utils.precision import amp_dtype, train_amp_dtype
    from vlunet_basicsr.utils.compile_util import compile_arguments
    val_opt = _mapping(opt.get('val'))
    try:
        train_amp_dtype(_mapping(opt.get('train')).get('amp'))
        amp_dtype(val_opt.get('amp'), 'val.amp')
        compile_arguments(val_opt.get('compile'))
    except ValueError as error:
        raise ValueError(f'{opt_path}: {error}') from None


def _path_entries(opt):
    """(yaml key, path) of every file or folder the options need to exist before training or testing."""
    from vlunet_basicsr.archs.degradation_clip_arch import looks_like_path
    for phase, dataset_opt in _mapping(opt.get('datasets')).items():
        dataset_opt = _mapping(dataset_opt)
        entries = [(f'datasets.{phase}', dataset_opt)]
        entries += [(f'datasets.{phase}.sources[{i}]', s) for i, s in enumerate(dataset_opt.get('sources') or [])]
        for where, entry in entries:
            for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
                if isinstance(entry, dict) and isinstance(entry.get(key), str):
                    yield f'{where}.{key}', entry[key]
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            if isinstance(value.get('adapter_path'), str):
                yield f'{key}.adapter_path', value['adapter_path']
            pretrained = value.get('pretrained')
            if isinstance(pretrained, str) and looks_like_path(pretrained):
                yield f'{key}.pretrained', pretrained
    for key, value in _mapping(opt.get('train')).items():
        if key.endswith('_opt') and isinstance(value, dict) and isinstance(value.get('vgg_path'), str):
            yield f'train.{key}.vgg_path', value['vgg_path']
    for key, value in _mapping(opt.get('path')).items():
        if isinstance(value, str) and (key.startswith('pretrain_network') or key == 'resume_state'):
            yield f'path.{key}', value


def check_required_paths(opt, opt_path):
    """Check every data and weight path of the options at once; list all that do not exist."""
    missing = [f'{key}: {path}' for key, path in _path_entries(opt) if not os.path.exists(os.path.expanduser(path))]
    if missing:
        raise FileNotFoundError(f'{opt_path}: {len(missing)} path(s) do not exist:\n  ' + '\n  '.join(missing))
