"""``python -m simulators.ami``; ``main(argv)`` (from :mod:`simulators.ami.cli`) for ``volna sim ami``."""

import sys

from simulators.ami.cli import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
