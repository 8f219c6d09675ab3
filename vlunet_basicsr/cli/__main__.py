"""``python -m vlunet_basicsr.cli COMMAND ...``: the ``basicsr`` command."""
import sys

from vlunet_basicsr.cli.front_door import main

sys.exit(main())
