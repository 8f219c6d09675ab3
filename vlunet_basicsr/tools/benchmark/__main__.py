"""python -m vlunet_basicsr.tools.benchmark: scripts/benchmark.py's command (--compare-release runs each arch so)."""
import gc
import sys

from vlunet_basicsr.tools.benchmark.command import main

if __name__ == '__main__':
    code = main()
    gc.freeze()  # the process ends here: no last collection over torch's objects (as `basicsr`, vlunet_basicsr_cli)
    sys.exit(code)
