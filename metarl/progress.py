"""Progress that tells the truth: training's bar with an ETA that counts training and evaluation apart, and the
progress of every evaluation (tqdm on a terminal; on a pipe or a file only the lines that report evaluations).

The ETA is the remaining iterations times the mean time of an iteration (its wall-clock, checkpoint included,
evaluation excluded) plus the evaluations still due times the last one's duration. The bar this replaces divided
the elapsed time by the iterations done, so the evaluation at iteration 0 counted as training time (issue 16).
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any


def progress_bar(enabled: bool, **kwargs: Any) -> Any:
    """A tqdm bar on stderr, shown only where ``enabled`` and stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(file=sys.stderr, disable=not (enabled and sys.stderr.isatty()), dynamic_ncols=True, **kwargs)


def say(bar: Any, line: str) -> None:
    """Print ``line`` on stderr without breaking ``bar``."""
    if bar is not None and not bar.disable:
        bar.write(line, file=sys.stderr)
    else:
        print(line, file=sys.stderr, flush=True)


def evaluations_due(iteration: int, total: int, eval_every: int) -> int:
    """Evaluations after iterations ``iteration + 1 .. total``: every ``eval_every``-th and the last."""
    if total <= iteration:
        return 0
    periodic = total // eval_every - iteration // eval_every if eval_every else 0
    return periodic + (0 if eval_every and total % eval_every == 0 else 1)


class Progress:
    """Meta-training's bar: iterations, the honest ETA, the latest pre/post-adaptation returns and speed.

    Args:
        total: the run's meta-iterations.
        start: the iteration it starts from (a resumed run).
        eval_every: iterations between periodic evaluations (0: only at the end).
        enabled: False (``--quiet``, ``progress_bar=False``) shows nothing at all.
    """

    def __init__(self, total: int, start: int, eval_every: int, enabled: bool) -> None:
        self.total, self.eval_every, self.enabled = total, eval_every, enabled
        fmt = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}{postfix}]"
        self.bar = progress_bar(enabled, total=total, initial=start, unit="it", bar_format=fmt, desc="meta-train")
        self.mark = time.monotonic()
        self.train_s, self.iters = 0.0, 0
        self.eval_s: float | None = None

    def eta(self, iteration: int) -> float | None:
        """Seconds left after ``iteration``: training at its mean pace, evaluations at the last one's."""
        if not self.iters:
            return None
        left = (self.total - iteration) * self.train_s / self.iters
        return left + evaluations_due(iteration, self.total, self.eval_every) * (self.eval_s or 0.0)

    def trained(self, iteration: int, metrics: dict[str, float]) -> None:
        """After meta-iteration ``iteration`` (and its checkpoint)."""
        now = time.monotonic()
        self.train_s += now - self.mark
        self.iters += 1
        self.mark = now
        if self.bar.disable:
            return
        eta = self.eta(iteration)
        self.bar.set_postfix_str(
            f"ETA {_hms(eta) if eta is not None else '?'}, return pre {metrics['adapt/return_pre']:.1f} "
            f"post {metrics['adapt/return_post']:.1f}, {metrics['time/env_steps_per_s'] / 1e3:.1f}k steps/s",
            refresh=False,
        )
        self.bar.update(iteration - self.bar.n)

    @contextlib.contextmanager
    def evaluating(self, what: str) -> Iterator[None]:
        """Around an evaluation: its own bar (seconds against the last evaluation's), its time kept apart."""
        t0 = time.monotonic()
        with timer_bar(self.enabled, what, self.eval_s):
            yield
        self.eval_s = time.monotonic() - t0
        self.mark = time.monotonic()

    def write(self, line: str) -> None:
        """An evaluation's line: printed on a terminal above the bar, and also where there is no terminal."""
        if self.enabled:
            say(self.bar, line)

    def close(self) -> None:
        self.bar.close()


@contextlib.contextmanager
def timer_bar(enabled: bool, what: str, expected: float | None) -> Iterator[None]:
    """A bar of the seconds spent in a call that reports no progress of its own, against ``expected`` seconds (the
    last such call's; unknown: a plain counter), refreshed twice a second from a thread; on a terminal only."""
    fmt = "{desc}: {percentage:3.0f}%|{bar}| {elapsed} of ~{total} s" if expected else "{desc}: {elapsed}"
    bar = progress_bar(enabled, total=round(expected) if expected else None, desc=what, leave=False, bar_format=fmt)
    if bar.disable:
        yield
        return
    done = threading.Event()

    def tick() -> None:
        t0 = time.monotonic()
        while not done.wait(0.5):
            bar.update(int(min(time.monotonic() - t0, bar.total or float("inf"))) - bar.n)

    thread = threading.Thread(target=tick, daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        bar.close()


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"
