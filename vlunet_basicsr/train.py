"""``python -m vlunet_basicsr.train -opt X.yml [BasicSR flags]``: ``basicsr train``, as torchrun starts it.

Like Real-ESRGAN's ``train.py``, an entry point of the command line (layer 4), not of the plugin."""
import sys

from vlunet_basicsr_cli.front_door import console_main

if __name__ == '__main__':
    sys.exit(console_main(['train'] + sys.argv[1:]))
