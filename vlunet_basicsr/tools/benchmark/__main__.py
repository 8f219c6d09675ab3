"""python -m vlunet_basicsr.tools.benchmark: scripts/benchmark.py's command (--compare-release runs each arch so)."""
import sys

from vlunet_basicsr.tools.benchmark.command import main

if __name__ == '__main__':
    sys.exit(main())
