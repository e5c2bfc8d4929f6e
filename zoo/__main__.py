"""``python -m zoo``: the ``zoo`` command (see the top-level module ``zoo_cli``)."""

import sys

from zoo_cli import main

if __name__ == "__main__":
    sys.exit(main())
