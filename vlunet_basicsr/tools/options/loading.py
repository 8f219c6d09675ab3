"""Reading option files: YAML loading, plugin imports and ``--force_yml`` overrides."""
import importlib
import os
import os.path as osp
import re
import sys
from importlib import metadata

import yaml

PLUGIN_ENTRY_POINT_GROUP = 'basicsr.plugins'


class OptionLoader(yaml.SafeLoader):
    """YAML's safe loader, reading ``1e-4`` as a number.

    YAML 1.1 (PyYAML) reads a float only with a dot (``1.0e-4``), so ``lr: 2e-4`` and ``--force_yml
    train:optim_g:lr=1e-4`` would give strings; BasicSR's own files write ``!!float 2e-4`` for that reason.
    Here every plain scalar in exponent notation is a float, as in YAML 1.2 and JSON.
    """


OptionLoader.add_implicit_resolver(
    'tag:yaml.org,2002:float', re.compile(r'^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$'),
    list('-+0123456789'))


def parse_yaml(text):
    """Parse option text (a file's content or a ``--force_yml`` value) with `OptionLoader`."""
    return yaml.load(text, Loader=OptionLoader)


def load_yaml(path):
    """Load an option file into a dict, naming the file in every error."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'Option file not found: {path}')
    with open(path, encoding='utf-8') as f:
        try:
            opt = parse_yaml(f)
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
    """Import the modules listed under the top-level YAML key ``plugins`` (they register their classes).

    As with ``python -m``, the working folder is searched first, so a module beside the experiment is found
    without ``PYTHONPATH``.
    """
    import_entry_point_plugins()
    if module_names is None:
        return
    if isinstance(module_names, str) or not isinstance(module_names, list):
        raise ValueError(f'{opt_path}: plugins: expected a list of module names, got {module_names!r}')
    working_folder = os.getcwd()
    if working_folder not in (osp.abspath(p or '.') for p in sys.path):
        sys.path.insert(0, working_folder)
    for name in module_names:
        try:
            importlib.import_module(name)
        except ImportError as error:
            raise ImportError(f"{opt_path}: plugins: cannot import module '{name}': {error}") from error


def _list_index(entry, path, items, key):
    """The item index ``key`` names in a list option (0 to len - 1), else KeyError naming the entry."""
    if not key.isdigit() or int(key) >= len(items):
        valid = f'0-{len(items) - 1}' if items else 'it is empty'
        raise KeyError(f"--force_yml '{entry}': '{path}' is a list of {len(items)} items; "
                       f"'{key}' is not an index of it ({valid})")
    return int(key)


def force_values(opt, entries):
    """Apply ``--force_yml`` entries of the form ``section:key=value`` (value parsed as YAML). A list option's
    items are addressed by their index: ``datasets:train:sources:5:repeat=6``, ``network_g:num_blocks:0=2``."""
    for entry in entries:
        if '=' not in entry:
            raise ValueError(f"--force_yml entry '{entry}' is not of the form key:subkey=value")
        keys, value = (part.strip() for part in entry.split('=', 1))
        *parents, last = keys.split(':')
        node = opt
        for depth, key in enumerate(parents):
            if isinstance(node, list):
                key = _list_index(entry, ':'.join(parents[:depth]), node, key)
            elif not isinstance(node, dict) or key not in node:
                raise KeyError(f"--force_yml '{entry}': no option '{':'.join(parents[:depth + 1])}'")
            node = node[key]
        if isinstance(node, list):
            last = _list_index(entry, ':'.join(parents), node, last)
        elif not isinstance(node, dict):
            raise KeyError(f"--force_yml '{entry}': '{':'.join(parents)}' is a value, not a section")
        node[last] = parse_yaml(value)
