"""``python -m zoo``: the ``zoo`` command (see :mod:`zoo.cli`)."""

import sys

from zoo.cli import main

if __name__ == "__main__":
    sys.exit(main())
