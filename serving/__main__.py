"""`python -m serving …`: see serving/cli.py."""

from __future__ import annotations

import sys

from serving.cli import main

if __name__ == "__main__":
    sys.exit(main())
