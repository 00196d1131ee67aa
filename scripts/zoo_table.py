"""The README's pretrained-zoo table, from the zoo's evaluations (results/zoo/eval_<Family>/results.json).

    python scripts/zoo_table.py [--breakdown]

One row per family: the shipped meta-policy's held-out curve k = 0..K with 95 % intervals, the multi-task
baseline's and a random initialisation's at the same budget, the paired margin over multi-task at k = 1 and
the last k, how many held-out tasks end above where they started, and the budget (env steps and wall-clock
of the meta-training run, from the shipped file's provenance). ``--breakdown`` adds the per-region means
where the family's mean hides them (directions, goal radius, angle, dynamics scale).
"""

from __future__ import annotations

import argparse
import json
import math
import re
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _curve(c: dict, ks: list[int]) -> str:
    return " → ".join(f"{c['mean'][k]:.1f}" for k in ks)


def _ci(d: float, lo: float, hi: float) -> str:
    return f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]"


def _region(family: str, task: dict) -> str:
    """The region of a held-out task that the family's breakdown groups by."""
    if "direction" in task:
        return "forward" if task["direction"] > 0 else "backward"
    if "angle" in task:
        return f"angle {int(task['angle'] // (math.pi / 2)) * 90}–{int(task['angle'] // (math.pi / 2)) * 90 + 90}°"
    if "goal" in task:
        r = float(np.linalg.norm(task["goal"]))
        edges = (0.25, 0.5, 0.75) if family == "Navigation2D" else (1.0, 2.0, 3.0)
        lo = 0.0
        for e in edges:
            if r <= e:
                return f"goal radius {lo:g}–{e:g}"
            lo = e
        return f"goal radius > {edges[-1]:g}"
    if "velocity" in task:
        return f"velocity {int(task['velocity'] // 0.5) * 0.5:.1f}–{int(task['velocity'] // 0.5) * 0.5 + 0.5:.1f}"
    return "all"


def _natural(text: str) -> list:
    """Sort key that orders "radius 0–1" before "radius 1–2" before "radius 10–11"."""
    return [(0, float(x), "") if x[0].isdigit() else (1, 0.0, x) for x in re.findall(r"\d+(?:\.\d+)?|\D+", text)]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--breakdown", action="store_true", help="also the per-region means")
    p.add_argument("--results", type=Path, default=ROOT / "results" / "zoo")
    args = p.parse_args()
    import metarl.pretrained
    from metarl.checkpoint import load_checkpoint
    from metarl.envs import FAMILIES  # the built-in families, in their registration order

    prov = {path.stem: load_checkpoint(path)["provenance"] for path in metarl.pretrained.files()}
    print(
        "| family | budget (env steps, wall-clock here) | meta-policy k = 0 → 1 → 2 → 3 [95 % CI at k = 3] | "
        "multi-task k = 0 → 3 | random init k = 0 → 3 | meta − multi-task, k = 1 / k = 3 (paired) | "
        "tasks improved by k = 3 |"
    )
    print("|---|---|---|---|---|---|---|")
    breakdowns = []
    for family in FAMILIES:
        path = args.results / f"eval_{family}" / "results.json"
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        curves = {c["name"].split(" (")[0]: c for c in doc["curves"]}
        meta, multi, rand = curves.get("meta-policy"), curves.get("multi-task baseline"), curves.get("random init")
        last = doc["steps"]
        margin = next(c for c in doc["meta_policy_minus_baseline"] if c["baseline"] == "multi-task baseline")
        m = [_ci(margin["difference"][k], margin["ci95_low"][k], margin["ci95_high"][k]) for k in (1, last)]
        per_task = np.array(meta["per_task"]).mean(0)
        improved = int((per_task[-1] > per_task[0]).sum())
        info = prov.get(family, {})
        budget = f"{info.get('env_steps', 0) / 1e6:.1f} M, {info.get('training_wall_clock_minutes', '?')} min"
        ks = list(range(last + 1))
        band = f"[{meta['ci95_low'][last]:.1f}, {meta['ci95_high'][last]:.1f}]"
        print(
            f"| {family} | {budget} | {_curve(meta, ks)} {band} | "
            f"{_curve(multi, [0, last])} | {_curve(rand, [0, last])} | {m[0]} / {m[1]} | "
            f"{improved} of {len(doc['tasks'])} |"
        )
        if args.breakdown:
            regions = [_region(family, t) for t in doc["tasks"]]
            if len(set(regions)) > 1:
                multi_task = np.array(multi["per_task"]).mean(0)
                for r in sorted(set(regions), key=_natural):
                    idx = [j for j, x in enumerate(regions) if x == r]
                    breakdowns.append(
                        f"| {family} | {r} ({len(idx)}) | "
                        + " → ".join(f"{per_task[k, idx].mean():.1f}" for k in ks)
                        + " | "
                        + " → ".join(f"{multi_task[k, idx].mean():.1f}" for k in (0, last))
                        + f" | {int((per_task[-1, idx] > per_task[0, idx]).sum())} of {len(idx)} |"
                    )
    if breakdowns:
        head = "| family | region (tasks) | meta-policy k = 0 → 1 → 2 → 3 | multi-task k = 0 → 3 | improved by k = 3 |"
        print("\n" + head)
        print("|---|---|---|---|---|")
        print("\n".join(breakdowns))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
