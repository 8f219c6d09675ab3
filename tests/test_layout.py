"""The house rules on the layout: utils/ imports nothing from archs/, data/ or models/ (dependencies point down), and
docs/layout.md lists every module of the package."""
import ast
import glob
import os.path as osp
import re

from conftest import REPO


def test_utils_import_nothing_from_archs_data_or_models():
    offenders = []
    for path in sorted(glob.glob(osp.join(REPO, 'vlunet_basicsr', 'utils', '*.py'))):
        for node in ast.walk(ast.parse(open(path, encoding='utf-8').read())):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else \
                [node.module or ''] if isinstance(node, ast.ImportFrom) else []
            offenders += [f'{osp.basename(path)}: {name}' for name in names
                          if name.startswith(('vlunet_basicsr.archs', 'vlunet_basicsr.data', 'vlunet_basicsr.models'))]
    assert not offenders, offenders


def _listed_modules(text):
    """The package modules docs/layout.md lists: the ``  path.py  what`` lines under ``vlunet_basicsr/``."""
    block = text.split('```')[1]
    return {'vlunet_basicsr/' + match for match in re.findall(r'^  (\S+\.py)(?:\s|$)', block, flags=re.M)}


def test_docs_layout_lists_every_module_of_the_package_and_no_other():
    listed = _listed_modules(open(osp.join(REPO, 'docs', 'layout.md'), encoding='utf-8').read())
    present = {osp.relpath(path, REPO).replace(osp.sep, '/')
               for path in glob.glob(osp.join(REPO, 'vlunet_basicsr', '**', '*.py'), recursive=True)}
    assert not present - listed, f'modules missing from docs/layout.md: {sorted(present - listed)}'
    assert not listed - present, f'docs/layout.md lists modules that do not exist: {sorted(listed - present)}'
    assert _listed_modules('```\n  a.py  x\n  b/c.py\n  not a module\n```') == {'vlunet_basicsr/a.py',
                                                                                  'vlunet_basicsr/b/c.py'}
