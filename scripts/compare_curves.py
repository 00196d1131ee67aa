"""Paired margins between the meta-policies of several ``metarl.evaluate`` results on the same tasks and seeds.

    python scripts/compare_curves.py [--against-first] A/results.json B/results.json [C/results.json ...]

Prints each file's first curve (mean and 95 % bootstrap interval at every k, the number of tasks whose return
after the last step is above the one before adapting, and the worst task's change from k = 0 to the last k,
means over seeds) and, for every pair (with --against-first: each file against the first only), the paired
bootstrap interval of the difference (metarl.stats.paired_difference_ci: the same tasks and evaluation seeds on
both sides).
"""

from __future__ import annotations

import itertools
import json
import sys
from pathlib import Path

import numpy as np

from metarl.stats import paired_difference_ci


def main(paths: list[str]) -> int:
    against_first = bool(paths) and paths[0] == "--against-first"
    paths = paths[1:] if against_first else paths
    docs = [json.loads(Path(p).read_text()) for p in paths]
    tasks = {json.dumps(d["tasks"]) for d in docs}
    seeds = {d["evaluation_seed"] for d in docs}
    if len(tasks) != 1 or len(seeds) != 1:
        raise SystemExit("compare_curves: the results hold different tasks or evaluation seeds; they do not pair")
    curves = [np.array(d["curves"][0]["per_task"]) for d in docs]  # (seeds, K + 1, tasks)
    names = [f"{d['curves'][0]['name']} [{Path(p).parent.name}]" for d, p in zip(docs, paths)]
    k = curves[0].shape[1]
    print("| policy | " + " | ".join(f"k={i}" for i in range(k)) + " | tasks improved (k=last > k=0) | worst task |")
    print("|---|" + "---|" * (k + 2))
    for name, d, c in zip(names, docs, curves):
        cur = d["curves"][0]
        cells = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(cur["mean"], cur["ci95_low"], cur["ci95_high"])]
        change = c.mean(0)[-1] - c.mean(0)[0]
        improved, worst = int((change > 0).sum()), float(change.min())
        row = " | ".join(cells) + f" | {improved} of {c.shape[2]} | {worst:+.1f} |"
        print(f"| {name} ({c.shape[0]} seeds) | {row}")
    named = list(zip(names, curves))
    pairs = [(named[0], x) for x in named[1:]] if against_first else itertools.combinations(named, 2)
    for (na, a), (nb, b) in pairs:
        diff, lo, hi = paired_difference_ci(a, b, 2000, seed=next(iter(seeds)))
        cells = [f"{x:+.1f} [{y:+.1f}, {z:+.1f}]" for x, y, z in zip(diff, lo, hi)]
        print(f"| {na} minus {nb}, paired | " + " | ".join(cells) + " | | |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
