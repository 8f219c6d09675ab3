"""``python -m vlunet_basicsr.test -opt X.yml [BasicSR flags]``: the test pipeline, e.g. under torchrun."""
import sys

from vlunet_basicsr.cli import run

if __name__ == '__main__':
    run('test', sys.argv[1:])
