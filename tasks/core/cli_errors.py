"""The CLI boundary: user errors become one line on stderr and exit code 2."""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Callable
from typing import Any

from .errors import Interrupted, UserError

#: what to do about a filesystem error, by errno
_FS_FIXES = {errno.ENOSPC: "free some space", errno.EACCES: "make it writable or choose another path",
             errno.EROFS: "the file system is read-only; choose another path",
             errno.ENOTDIR: "a file stands where a folder should be", errno.EISDIR: "give a file, not a folder"}


def one_line(err: BaseException) -> str:
    """The first line of an error's message (its type name when it has none)."""
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def describe_os_error(err: OSError) -> str:
    """``cannot write runs/x/eval.json: No space left on device; free some space``."""
    where = f" {err.filename}" if err.filename else ""
    fix = _FS_FIXES.get(err.errno or 0, "check the path and its permissions")
    return f"file system error at{where}: {err.strerror or one_line(err)}; {fix}"


def run_cli(fn: Callable[[], Any]) -> Any:
    """Call ``fn``; user errors, bad values and filesystem errors exit 2 with one line on stderr
    (``RSUITE_DEBUG=1`` shows the traceback instead); an interrupted training exits 130."""
    try:
        return fn()
    except Interrupted as err:
        print(one_line(err), file=sys.stderr)
        sys.exit(130)
    except (UserError, ValueError, OSError) as err:
        if os.environ.get("RSUITE_DEBUG"):
            raise
        if isinstance(err, OSError) and err.strerror:
            message = describe_os_error(err)
        else:
            message = one_line(err)
        print(f"error: {message}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("interrupted before any checkpoint of this run was written", file=sys.stderr)
        sys.exit(130)
