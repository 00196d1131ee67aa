"""What the command-line tools share."""

from __future__ import annotations

import sys


def fail(prog: str, msg: str, code: int = 2) -> int:
    """Print ``prog: error: msg`` (one line) to stderr and return the exit status ``code``."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code
