"""The package's import graph, read from its source (every ``import`` and ``from`` statement, function-level ones
too): no cycle among ``vlunet_basicsr`` modules, and nothing imported from outside the package except the standard
library and installed distributions (no root module such as the former ``vlunet_basicsr_cli``, no ``scripts``)."""
import ast
import functools
import glob
import importlib.util
import os.path as osp
import subprocess
import sys
from importlib import metadata

from conftest import REPO

PACKAGE = 'vlunet_basicsr'


def module_name(path):
    """The dotted module name of a source file of the package (a package's ``__init__.py`` names the package)."""
    parts = osp.relpath(path, REPO)[:-len('.py')].split(osp.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def package_modules():
    """{dotted name: source path} of every module of the package."""
    paths = glob.glob(osp.join(REPO, PACKAGE, '**', '*.py'), recursive=True)
    return {module_name(path): path for path in sorted(paths)}


def imported_names(path, name, modules):
    """Yield every module the file imports: ``from X import y`` names ``X.y`` when that is a module, else ``X``."""
    is_package = path.endswith('__init__.py')
    for node in ast.walk(ast.parse(open(path, encoding='utf-8').read(), path)):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ''
            if node.level:  # relative: from the file's package, one level up per extra dot
                anchor = name.split('.')[:len(name.split('.')) - node.level + is_package]
                base = '.'.join(anchor + ([base] if base else []))
            for alias in node.names:
                yield f'{base}.{alias.name}' if f'{base}.{alias.name}' in modules else base


def import_graph():
    """{module: set of package modules it imports}, and [(module, outside name)] for every other import."""
    modules = package_modules()
    graph, outside = {}, []
    for name, path in modules.items():
        graph[name] = set()
        for target in imported_names(path, name, modules):
            if target == PACKAGE or target.startswith(PACKAGE + '.'):
                while target not in modules:  # ``import vlunet_basicsr.x.Y``-style names: the module holding Y
                    target = target.rsplit('.', 1)[0]
                if target != name:
                    graph[name].add(target)
            else:
                outside.append((name, target))
    return graph, outside


def find_cycle(graph):
    """One import cycle as a list of modules (first == last), or None."""
    state = {}  # module -> 'open' while on the path, 'done' once all it reaches is cycle-free

    def visit(node, path):
        state[node] = 'open'
        for target in sorted(graph[node]):
            if state.get(target) == 'open':
                return path[path.index(target):] + [target]
            if target not in state:
                cycle = visit(target, path + [target])
                if cycle:
                    return cycle
        state[node] = 'done'
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


@functools.lru_cache(maxsize=None)
def is_third_party_or_stdlib(top):
    """Whether a top-level module name belongs to the standard library or to an installed distribution that is not
    this repository's own files (a root module or folder of the checkout would be found on sys.path too)."""
    if top in sys.stdlib_module_names or top == '__future__':
        return True
    if top not in _distribution_modules():
        return False
    spec = importlib.util.find_spec(top)
    origin = (spec.origin or (list(spec.submodule_search_locations or [''])[0])) if spec else ''
    return not osp.abspath(origin or '').startswith(osp.abspath(REPO) + osp.sep)


@functools.lru_cache(maxsize=1)
def _distribution_modules():
    return metadata.packages_distributions()


def test_the_package_imports_no_cycle():
    cycle = find_cycle(import_graph()[0])
    assert cycle is None, 'import cycle: ' + ' -> '.join(cycle)


def test_the_package_imports_nothing_outside_it_but_stdlib_and_installed_distributions():
    _, outside = import_graph()
    offenders = sorted({f'{module}: {target}' for module, target in outside
                        if not is_third_party_or_stdlib(target.split('.')[0])})
    assert not offenders, offenders


def test_the_cycle_finder_finds_a_cycle_and_the_outside_check_refuses_a_root_module(tmp_path):
    assert find_cycle({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': set()}) == ['a', 'b', 'c', 'a']
    assert find_cycle({'a': {'b'}, 'b': set()}) is None
    assert not is_third_party_or_stdlib('conftest') and not is_third_party_or_stdlib('scripts')
    assert is_third_party_or_stdlib('os') and is_third_party_or_stdlib('yaml')


def test_import_vlunet_basicsr_registers_every_class_outside_the_basicsr_program(tmp_path):
    code = ('import sys, vlunet_basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY\n'
            'print("REGISTERED", "VLUNet" in ARCH_REGISTRY, "VLUNetModel" in MODEL_REGISTRY)')
    proc = subprocess.run([sys.executable, '-I', '-c', code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert 'REGISTERED True True' in proc.stdout, proc.stdout + proc.stderr[-2000:]
