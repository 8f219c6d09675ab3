"""The packages' import graph, read from their source (every ``import`` and ``from`` statement, function-level ones
too): the layers point one way (utilities, core, tools, command line), no cycle, a longest chain of at most 8
modules, and nothing imported from outside the packages except the standard library and installed distributions
(no ``scripts``, no ``tests``)."""
import ast
import functools
import glob
import importlib.util
import os.path as osp
import subprocess
import sys
from importlib import metadata

from conftest import REPO

PACKAGES = ('vlunet_basicsr', 'vlunet_basicsr_cli')

#: The layers, lowest first: a module may import its own layer and those below, never one above.
LAYER_NAMES = ('utilities', 'core', 'tools', 'command line')
CORE = ('compat', 'archs', 'data', 'losses', 'metrics', 'models')
#: Entry points of the command line that live in the plugin's folder (``python -m vlunet_basicsr.train``).
COMMAND_LINE_MODULES = ('vlunet_basicsr.train', 'vlunet_basicsr.test')
MAX_CHAIN = 8


def layer(module):
    """0 utilities (``utils/``), 1 core (the package root and what basicsr's registries see), 2 tools (``tools/``),
    3 the command line (``vlunet_basicsr_cli``)."""
    parts = module.split('.')
    if parts[0] == 'vlunet_basicsr_cli' or module in COMMAND_LINE_MODULES:
        return 3
    if len(parts) == 1 or parts[1] in CORE:
        return 1
    return {'utils': 0, 'tools': 2}[parts[1]]


def module_name(path):
    """The dotted module name of a source file of the package (a package's ``__init__.py`` names the package)."""
    parts = osp.relpath(path, REPO)[:-len('.py')].split(osp.sep)
    return '.'.join(parts[:-1] if parts[-1] == '__init__' else parts)


def package_modules():
    """{dotted name: source path} of every module of the packages."""
    paths = [path for package in PACKAGES for path in glob.glob(osp.join(REPO, package, '**', '*.py'), recursive=True)]
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
            if target.split('.')[0] in PACKAGES:
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


def upward_imports(graph):
    """['a (layer) -> b (layer)'] for every import of a higher layer."""
    return sorted(f'{module} ({LAYER_NAMES[layer(module)]}) -> {target} ({LAYER_NAMES[layer(target)]})'
                  for module, targets in graph.items() for target in targets if layer(target) > layer(module))


def longest_chain(graph):
    """The longest import chain (a list of modules) of an acyclic graph."""
    @functools.lru_cache(maxsize=None)
    def chain(module):
        return max(([module] + chain(target) for target in graph[module]), key=len, default=[module])
    return max((chain(module) for module in graph), key=len)


def test_every_module_has_a_layer_and_the_layers_point_one_way():
    graph = import_graph()[0]
    for module in graph:
        layer(module)  # KeyError names a folder outside the layers
    assert not upward_imports(graph), '\n'.join(upward_imports(graph))


def test_the_layer_check_refuses_an_upward_import_even_inside_a_function(tmp_path):
    graph = {'vlunet_basicsr.utils.padding': {'vlunet_basicsr.tools.restore.restorer'},
             'vlunet_basicsr.tools.restore.restorer': {'vlunet_basicsr_cli.parsers'},
             'vlunet_basicsr.archs.vlunet_arch': {'vlunet_basicsr.utils.padding'},
             'vlunet_basicsr_cli.parsers': set()}
    assert upward_imports(graph) == [
        'vlunet_basicsr.tools.restore.restorer (tools) -> vlunet_basicsr_cli.parsers (command line)',
        'vlunet_basicsr.utils.padding (utilities) -> vlunet_basicsr.tools.restore.restorer (tools)']
    source = tmp_path / 'vlunet_basicsr' / 'utils' / 'x.py'
    source.parent.mkdir(parents=True)
    source.write_text('def f():\n    from vlunet_basicsr.tools import pipelines\n')
    modules = {'vlunet_basicsr.tools.pipelines': ''}
    assert list(imported_names(str(source), 'vlunet_basicsr.utils.x', modules)) == ['vlunet_basicsr.tools.pipelines']


def test_the_longest_import_chain_is_short():
    chain = longest_chain(import_graph()[0])
    assert len(chain) <= MAX_CHAIN, ' -> '.join(chain)
    assert longest_chain({'a': {'b'}, 'b': {'c'}, 'c': set(), 'd': {'c'}}) == ['a', 'b', 'c']


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


def test_import_vlunet_basicsr_registers_every_class_whatever_the_program_is_called(tmp_path):
    """A fresh interpreter: what its import registers is what is tested."""
    code = ('import sys; sys.argv[0] = "basicsr"; import vlunet_basicsr\n'
            'from basicsr.utils.registry import ARCH_REGISTRY, MODEL_REGISTRY\n'
            'print("REGISTERED", "VLUNet" in ARCH_REGISTRY, "VLUNetModel" in MODEL_REGISTRY)')
    proc = subprocess.run([sys.executable, '-I', '-c', code], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert 'REGISTERED True True' in proc.stdout, proc.stdout + proc.stderr[-2000:]
