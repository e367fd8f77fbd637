"""`python -m sweepbench ...`: the `sweepbench` command (sweepbench.cli)."""

import sys

from sweepbench.cli import main

if __name__ == "__main__":
    sys.exit(main())
