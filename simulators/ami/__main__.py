"""``python -m simulators.ami``: see :mod:`simulators.ami.cli`."""

import sys

from simulators.ami.cli import main

sys.exit(main())
