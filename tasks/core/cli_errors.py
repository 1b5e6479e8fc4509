"""The CLI boundary: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import UserError


def run_cli(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; ``UserError``/``ValueError``/missing files exit 2 with one line (RSUITE_DEBUG=1: traceback)."""
    try:
        return fn()
    except (UserError, ValueError, FileNotFoundError) as err:
        if os.environ.get("RSUITE_DEBUG"):
            raise
        message = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted; resume with: rsuite train TASK --resume RUN_DIR", file=sys.stderr)
        sys.exit(130)
