"""``python -m simulators.smsc`` (and ``volna sim smsc``, which calls :func:`main`): see :mod:`simulators.smsc.cli`."""

import sys

from simulators.smsc.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
