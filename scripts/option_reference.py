"""Write docs/option_reference.md from the option declarations: ``python scripts/option_reference.py``.

Run it after adding or changing a declared option; tests/test_options.py fails while the page is stale.
"""
import os.path as osp

import vlunet_basicsr  # noqa: F401  (registers every class)
from vlunet_basicsr.tools.options.reference import render_reference

if __name__ == '__main__':
    path = osp.join(osp.dirname(osp.dirname(osp.abspath(__file__))), 'docs', 'option_reference.md')
    with open(path, 'w', encoding='utf-8') as f:
        f.write(render_reference())
    print(f'wrote {path}')
