"""docs/layout.md lists every module of the two packages (the layer rule itself: tests/test_import_graph.py)."""
import glob
import os.path as osp
import re

from conftest import REPO


PACKAGES = ('vlunet_basicsr', 'vlunet_basicsr_cli')


def _listed_modules(text):
    """The modules docs/layout.md's first block lists: each ``  path.py  what`` line under its ``package/`` line."""
    listed, package = set(), None
    for line in text.split('```')[1].splitlines():
        header = re.match(r'^(\S+)/\s', line + ' ')
        if header:
            package = header.group(1)
        module = re.match(r'^  (\S+\.py)(?:\s|$)', line)
        if module and package:
            listed.add(f'{package}/{module.group(1)}')
    return listed


def test_docs_layout_lists_every_module_of_the_package_and_no_other():
    listed = _listed_modules(open(osp.join(REPO, 'docs', 'layout.md'), encoding='utf-8').read())
    present = {osp.relpath(path, REPO).replace(osp.sep, '/')
               for package in PACKAGES for path in glob.glob(osp.join(REPO, package, '**', '*.py'), recursive=True)}
    assert not present - listed, f'modules missing from docs/layout.md: {sorted(present - listed)}'
    assert not listed - present, f'docs/layout.md lists modules that do not exist: {sorted(listed - present)}'
    assert _listed_modules('```\np/  x\n  a.py  x\n  b/c.py\n  not a module\nq/\n  d.py\n```') == {
        'p/a.py', 'p/b/c.py', 'q/d.py'}
