"""The house's dependency rule: utils/ imports nothing from archs/, data/ or models/ (dependencies point down)."""
import ast
import glob
import os.path as osp

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
