"""`python -m processors.derive` is `vdp derive` (what the tests and `vdp process` start)."""

import sys

from processors.derive.cli import main

if __name__ == "__main__":
    sys.exit(main())
