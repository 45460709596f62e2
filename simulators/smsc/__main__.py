"""``python -m simulators.smsc``: see :mod:`simulators.smsc.cli`."""

import sys

from simulators.smsc.cli import main

sys.exit(main())
