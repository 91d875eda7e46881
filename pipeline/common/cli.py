"""What every stage script shares: logging set-up, offline defaults, and one line (exit 2) for a bad config."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Sequence

from pipeline.common.config import ConfigError


def run_stage(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """Run a stage's `main`; a ConfigError (bad params, a missing input) prints one line and returns 2.

    Why not SystemExit: errors stay exceptions that tests and callers can catch; only the script's entry
    point turns them into an exit status.
    """
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        return int(main(argv))
    except ConfigError as exc:
        print(f"config error: {exc}", file=sys.stderr)
        return 2
