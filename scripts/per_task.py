"""Per-task adaptation curves from a ``metarl.evaluate`` results.json (mean over training seeds), sorted by task.

    python scripts/per_task.py results/eval_abl/ppo48M__s012__test_trpo_kl1/results.json [--curve 0] [--every 4]

Prints one row per task (every ``--every``-th, sorted by the task's values) and how many tasks end below
where they started (k = last vs k = 0).
"""

from __future__ import annotations

import argparse
import json

import numpy as np


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("results", help="results.json written by python -m metarl.evaluate")
    p.add_argument("--curve", type=int, default=0, help="index into the file's curves (0: the meta-policy)")
    p.add_argument("--every", type=int, default=4, help="print every N-th task of the sorted list")
    args = p.parse_args()
    doc = json.loads(open(args.results).read())
    curve = doc["curves"][args.curve]
    returns = np.array(curve["per_task"]).mean(0)  # (K + 1, tasks)
    order = sorted(range(len(doc["tasks"])), key=lambda j: list(doc["tasks"][j].values()))
    print(f"{curve['name']}: {len(curve['sources'])} seed(s), {len(order)} tasks")
    for j in order[:: args.every]:
        print(json.dumps(doc["tasks"][j]), " ".join(f"{r:7.1f}" for r in returns[:, j]))
    print(f"tasks ending below k=0: {int((returns[-1] < returns[0]).sum())} of {len(order)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
