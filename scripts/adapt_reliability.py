"""How often each adaptation step improves on the one before, one task at a time, as ``metarl.adapt`` runs it.

    python scripts/adapt_reliability.py [--env HalfCheetahVel] [--checkpoint PATH] [--seeds 10]
        [--tasks velocity=0.2 velocity=0.6 ...] [--agent A --target-kl X --step-decay X --holdout X ...]

For each task (default: 5 target velocities spread over [0, 2]) and each evaluation seed 0..seeds-1, the
meta-policy adapts with its meta-test inner loop (or the overrides) for its own number of steps and episodes;
``metarl.adapt --task T --seed S`` prints the same returns (an adaptation depends on its task and seed only,
not on the others adapted with it). Prints, per task and overall, how many runs improved at each step
(return after step k above the return after step k - 1) and how many ended above where they started.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

from metarl.cli import add_inner_loop_arguments, inner_loop_overrides
from metarl.policy import MetaPolicy
from metarl.tasks import parse_task


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--checkpoint", default=None, help="default: the shipped meta-policy of --env")
    p.add_argument("--seeds", type=int, default=10)
    p.add_argument("--tasks", nargs="+", default=[f"velocity={v:.1f}" for v in np.linspace(0.2, 1.8, 5)])
    add_inner_loop_arguments(p, "the meta-policy's")
    args = p.parse_args(argv)
    meta = MetaPolicy.load(args.checkpoint, args.env) if args.checkpoint else MetaPolicy.pretrained(args.env)
    changes = inner_loop_overrides(args)
    if changes:
        meta = meta.with_inner_loop(**changes)
    tasks = [parse_task(meta.family, t) for t in args.tasks]
    runs = [(t, s) for t in range(len(tasks)) for s in range(args.seeds)]
    adapted = meta.adapt_many([tasks[t] for t, _ in runs], seeds=[s for _, s in runs])
    returns = np.array([a.returns for a in adapted]).reshape(len(tasks), args.seeds, -1)  # (tasks, seeds, K + 1)
    steps = returns.shape[2] - 1
    print(
        f"{args.env}: {meta.source}; inner loop {meta.config.adapt.agent} {changes or '(its own)'}; "
        f"{args.seeds} seeds per task, K = {steps}"
    )
    header = " | ".join(f"step {k} improved" for k in range(1, steps + 1))
    print(f"| task | mean return k=0..{steps} | {header} | k={steps} above k=0 |")
    print("|---|---|" + "---|" * (steps + 1))
    rows = [(name, r) for name, r in zip(args.tasks, returns)] + [("all", returns.reshape(-1, steps + 1)[None])]
    for name, r in rows:
        r = r.reshape(-1, steps + 1)
        better = [f"{int((r[:, k] > r[:, k - 1]).sum())} of {len(r)}" for k in range(1, steps + 1)]
        means = " → ".join(f"{m:.1f}" for m in r.mean(0))
        print(f"| {name} | {means} | " + " | ".join(better) + f" | {int((r[:, -1] > r[:, 0]).sum())} of {len(r)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
