"""How many MAML and FO-MAML iterations take the wall-clock of Reptile's ITERS iterations on this machine.

    python scripts/maml_equal_time.py ENV ITERS SEED [SEED ...]

Reads ``time/iteration_s`` from the TensorBoard events of runs/maml/ENV__{reptile,maml,fomaml}__iITERS__sSEED
(written by scripts/maml_anchor_cheetah.sh) and prints, per meta-learner, the median seconds per iteration
over every iteration of every seed and the equal-wall-clock iteration count ITERS x median(Reptile) /
median(meta-learner), rounded down. Medians, pooled over seeds, because the machine is shared: single
iterations vary by 2-3x with the load, and every meta-learner's runs saw the same mix of loads.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def iteration_seconds(run: Path) -> np.ndarray:
    """Seconds of each iteration; for a resumed run, the last value written for each iteration."""
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    last = {e.step: e.value for e in sorted(acc.Scalars("time/iteration_s"), key=lambda e: e.wall_time)}
    return np.array([last[s] for s in sorted(last)])


def main(env: str, iters: int, seeds: list[int]) -> int:
    root = Path("runs/maml")
    median = {
        ml: float(np.median(np.concatenate([iteration_seconds(root / f"{env}__{ml}__i{iters}__s{s}") for s in seeds])))
        for ml in ("reptile", "maml", "fomaml")
    }
    print("meta_learner median_iteration_s equal_wall_clock_iterations")
    for ml, seconds in median.items():
        print(f"{ml} {seconds:.1f} {int(iters * median['reptile'] / seconds)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], int(sys.argv[2]), [int(s) for s in sys.argv[3:]]))
