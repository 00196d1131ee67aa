"""A one-line progress bar for meta-training: iterations, ETA and the latest pre/post-adaptation returns."""

from __future__ import annotations

import sys
import time


class Progress:
    """A one-line progress bar with ETA and the latest post-adaptation return."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def update(self, it: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done = it - self.start
        rate = (now - self.t0) / max(done, 1)
        eta = rate * (self.total - it)
        frac = it / max(self.total, 1)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        line = (
            f"[{bar}] {it}/{self.total} ETA {_hms(eta)} | return pre {metrics['adapt/return_pre']:.1f} "
            f"post {metrics['adapt/return_post']:.1f} | {metrics['time/env_steps_per_s'] / 1e3:.1f}k steps/s"
        )
        if self.tty:
            sys.stderr.write("\r" + line + " " * 4)
            if it == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif now - self.last_print > 10 or it == self.total:
            print(line, file=sys.stderr, flush=True)
            self.last_print = now


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
