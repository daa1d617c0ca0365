"""``python -m linrank ...``: the same command line as the ``linrank`` console script."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
