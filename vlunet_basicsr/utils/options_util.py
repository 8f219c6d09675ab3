"""Reading option files: YAML loading, plugin imports, ``--force_yml`` overrides and registry checks."""
import difflib
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
