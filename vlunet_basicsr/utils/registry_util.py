"""Importing every registry module of a sub-package, as basicsr does for its own."""
import importlib
import os


def import_modules_with_suffix(package_name, package_file, suffix):
    """Import ``<package_name>.<name>`` for every ``<name><suffix>.py`` beside ``package_file``."""
    folder = os.path.dirname(os.path.abspath(package_file))
    names = sorted(name[:-3] for name in os.listdir(folder) if name.endswith(f'{suffix}.py'))
    return [importlib.import_module(f'{package_name}.{name}') for name in names]
