"""Restore your own images (the same as `basicsr restore`); `python scripts/inference.py -h` for the options."""
import sys

from vlunet_basicsr.tools.restore.inference import main

if __name__ == '__main__':
    sys.exit(main())
