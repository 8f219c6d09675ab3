"""Speed and memory of a restoration system: a training step (with its guidance), and inference.

    python scripts/benchmark.py --help        # every flag, with examples
    python scripts/benchmark.py -opt options/test_promptir_nhrbl.yml

The measurements live in the package (`vlunet_basicsr.tools.benchmark`); this file is their command line.
"""
import sys

from vlunet_basicsr.tools.benchmark.command import main

if __name__ == '__main__':
    sys.exit(main())
