"""``python -m vlunet_basicsr_cli COMMAND ...``: the ``basicsr`` command."""
import sys

from vlunet_basicsr_cli.front_door import console_main

sys.exit(console_main())
