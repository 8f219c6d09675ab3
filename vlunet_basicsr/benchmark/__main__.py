"""python -m vlunet_basicsr.benchmark: scripts/benchmark.py's command (--compare-release runs each arch so)."""
import sys

from vlunet_basicsr.benchmark.command import main

if __name__ == '__main__':
    sys.exit(main())
