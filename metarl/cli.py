"""What the command-line tools share."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def fail(prog: str, msg: str, code: int = 2) -> int:
    """Print ``prog: error: msg`` (one line) to stderr and return the exit status ``code``."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors (unknown flag, invalid choice, bad type) are one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)
