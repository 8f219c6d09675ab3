"""Reading option files: YAML loading, plugin imports, ``--force_yml`` overrides and registry checks."""
import difflib
import os
import importlib
import os.path as osp
from importlib import metadata

import yaml

PLUGIN_ENTRY_POINT_GROUP = 'basicsr.plugins'


def load_yaml(path):
    """Load an option file into a dict, naming the file in every error."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Option file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            opt = yaml.safe_load(f)
        except yaml.YAMLError as error:
            raise ValueError(f'{path}: invalid YAML: {error}') from error
    if not isinstance(opt, dict):
        raise ValueError(f'{path}: expected a mapping of options at the top level, got {type(opt).__name__}')
    return opt


def import_entry_point_plugins():
    """Import every installed package that declares the entry-point group ``basicsr.plugins``."""
    for entry_point in metadata.entry_points(group=PLUGIN_ENTRY_POINT_GROUP):
        try:
            entry_point.load()
        except Exception as error:
            raise ImportError(f"Plugin entry point '{entry_point.name} = {entry_point.value}' "
                              f"(group {PLUGIN_ENTRY_POINT_GROUP}) failed to import: {error}") from error


def import_plugins(module_names, opt_path):
    """Import the modules listed under the top-level YAML key ``plugins`` (they register their classes)."""
    import_entry_point_plugins()
    if module_names is None:
        return
    if isinstance(module_names, str) or not isinstance(module_names, list):
        raise ValueError(f'{opt_path}: plugins: expected a list of module names, got {module_names!r}')
    for name in module_names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(f"{opt_path}: plugins: cannot import module '{name}': {error}") from error


def force_values(opt, entries):
    """Apply ``--force_yml`` entries of the form ``section:key=value`` (value parsed as YAML)."""
    for entry in entries:
        if '=' not in entry:
            raise ValueError(f"--force_yml entry '{entry}' is not of the form key:subkey=value")
        keys, value = (part.strip() for part in entry.split('=', 1))
        *parents, last = keys.split(':')
        node = opt
        for depth, key in enumerate(parents):
            if not isinstance(node, dict) or key not in node:
                raise KeyError(f"--force_yml '{entry}': no option '{':'.join(parents[:depth + 1])}'")
            node = node[key]
        node[last] = yaml.safe_load(value)


def _registries():
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY
    return ARCH_REGISTRY, DATASET_REGISTRY, LOSS_REGISTRY, METRIC_REGISTRY, MODEL_REGISTRY


def _typed_entries(opt):
    """Yield (yaml key path, registry name, type name) for every ``type`` that a BasicSR builder will look up."""
    arch, dataset, loss, metric, model = _registries()
    if 'model_type' in opt:
        yield 'model_type', model, opt['model_type']
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict) and 'type' in value:
            yield f'{key}.type', arch, value['type']
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        if isinstance(dataset_opt, dict) and 'type' in dataset_opt:
            yield f'datasets.{phase}.type', dataset, dataset_opt['type']
    for key, value in (opt.get('train') or {}).items():
        if key.endswith('_opt') and isinstance(value, dict) and 'type' in value:
            yield f'train.{key}.type', loss, value['type']
    for name, metric_opt in ((opt.get('val') or {}).get('metrics') or {}).items():
        if isinstance(metric_opt, dict) and 'type' in metric_opt:
            yield f'val.metrics.{name}.type', metric, metric_opt['type']


def check_registered_types(opt, opt_path):
    """Fail before building anything if a ``type`` is not registered, listing the registered names."""
    problems = []
    for key, registry, name in _typed_entries(opt):
        if name in registry or f'{name}_basicsr' in registry:
            continue
        names = sorted(registry.keys())
        close = difflib.get_close_matches(str(name), names, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        problems.append(f"{key}: '{name}' is not in the {registry._name} registry.{hint} "
                        f"Registered: {', '.join(names)}")
    if problems:
        raise ValueError(f'{opt_path}:\n  ' + '\n  '.join(problems))


#: Keys that BasicSR's dataloader builder and option parser read from every dataset entry.
LOADER_KEYS = frozenset({'name', 'type', 'phase', 'scale', 'batch_size_per_gpu', 'num_worker_per_gpu',
                         'dataset_enlarge_ratio', 'prefetch_mode', 'num_prefetch_queue', 'pin_memory',
                         'persistent_workers', 'use_shuffle'})


def _ours(cls):
    return cls.__module__.startswith('vlunet_basicsr.')


def _keyword_names(cls):
    """Keyword arguments of ``cls.__init__``, or None when it takes ``**kwargs``."""
    import inspect
    parameters = list(inspect.signature(cls.__init__).parameters.values())[1:]
    if any(p.kind == p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def _unknown(given, valid, where, class_name):
    problems = []
    for key in sorted(set(given) - set(valid)):
        close = difflib.get_close_matches(key, sorted(valid), n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ''
        problems.append(f"{where}: unknown option '{key}' for {class_name}.{hint}")
    return problems


def check_option_keys(opt, opt_path):
    """Fail on an unknown key of one of our classes (archs, losses, datasets and their sources), naming the
    closest valid key."""
    from vlunet_basicsr.data.image_source import ImageSource
    arch, dataset, loss, _, _ = _registries()
    problems = []
    for key, registry, name in _typed_entries(opt):
        if registry not in (arch, loss, dataset):
            continue
        cls = registry.get(name)
        if not _ours(cls):
            continue
        where = key[:-len('.type')]
        entry = opt
        for part in where.split('.'):
            entry = entry[part]
        if registry is dataset:
            problems += _unknown(entry, cls.OPTION_KEYS | LOADER_KEYS, where, name)
            for i, source in enumerate(entry.get('sources') or []):
                if isinstance(source, dict):
                    problems += _unknown(source, ImageSource.OPTION_KEYS | {'repeat', 'weight'},
                                         f'{where}.sources[{i}]', 'a source')
        else:
            valid = _keyword_names(cls)
            if valid is not None:
                problems += _unknown(entry, valid | {'type'}, where, name)
    if problems:
        raise ValueError(f'{opt_path}:\n  ' + '\n  '.join(problems))


def check_speed_options(opt, opt_path):
    """``train.amp``, ``val.amp`` (`vlunet_basicsr.utils.precision`) and ``val.compile``, named with the YAML file."""
    from vlunet_basicsr.utils.precision import amp_dtype, train_amp_dtype
    from vlunet_basicsr.utils.restore_util import compile_arguments
    val_opt = opt.get('val') or {}
    try:
        train_amp_dtype((opt.get('train') or {}).get('amp'))
        amp_dtype(val_opt.get('amp'), 'val.amp')
        compile_arguments(val_opt.get('compile'))
    except ValueError as error:
        raise ValueError(f'{opt_path}: {error}') from None


def _path_entries(opt):
    """(yaml key, path) of every file or folder the options need to exist before training or testing."""
    from vlunet_basicsr.archs.degradation_clip_arch import looks_like_path
    for phase, dataset_opt in (opt.get('datasets') or {}).items():
        entries = [(f'datasets.{phase}', dataset_opt)]
        entries += [(f'datasets.{phase}.sources[{i}]', s) for i, s in enumerate(dataset_opt.get('sources') or [])]
        for where, entry in entries:
            for key in ('dataroot_gt', 'dataroot_lq', 'meta_info_file'):
                if isinstance(entry, dict) and entry.get(key) is not None:
                    yield f'{where}.{key}', entry[key]
    for key, value in opt.items():
        if key.startswith('network_') and isinstance(value, dict):
            if value.get('adapter_path') is not None:
                yield f'{key}.adapter_path', value['adapter_path']
            pretrained = value.get('pretrained')
            if isinstance(pretrained, str) and looks_like_path(pretrained):
                yield f'{key}.pretrained', pretrained
    for key, value in (opt.get('path') or {}).items():
        if value is not None and (key.startswith('pretrain_network') or key == 'resume_state'):
            yield f'path.{key}', value


def check_required_paths(opt, opt_path):
    """Check every data and weight path of the options at once; list all that do not exist."""
    missing = [f'{key}: {path}' for key, path in _path_entries(opt) if not os.path.exists(os.path.expanduser(path))]
    if missing:
        raise FileNotFoundError(f'{opt_path}: {len(missing)} path(s) do not exist:\n  ' + '\n  '.join(missing))
