"""``python -m vlunet_basicsr.train -opt X.yml [BasicSR flags]``: the training pipeline, e.g. under torchrun."""
import sys

from vlunet_basicsr.cli import run

if __name__ == '__main__':
    run('train', sys.argv[1:])
