"""How much slower a MAML / FO-MAML meta-iteration is than Reptile's, per env step, and where the time goes.

Each meta-learner runs its family preset's meta-iteration (``python -m metarl.train --env ENV
--meta-learner M`` resolves it; one process, ``--workers 1``) for ``--repeats`` iterations, interleaved;
the table gives env steps per second of the whole iteration and, for MAML, the time of the outer TRPO step
(meta-gradient, conjugate gradient on Hessian-vector products, line search; ``time/outer_step_s``) against the
rest (the agent's sampling and adaptation), medians over the repeats.

    python benchmarks/maml.py --env HalfCheetahVel --repeats 3 [--reptile-agent ppo]

(``--reptile-agent ppo``: Reptile over PPO steps, the HalfCheetah presets' before issue 15's third round, as in
results/maml/speed_HalfCheetahVel.txt.)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import numpy as np
import torch

from metarl.config import TrainConfig, resolve_flags
from metarl.trainer import MetaTrainer


def _config(env: str, learner: str, threads: int, reptile_agent: str | None) -> TrainConfig:
    given = {"env": env, "meta_learner": learner, "workers": 1, "threads": threads, "eval_every": 0}
    if reptile_agent and learner == "reptile":
        given["agent"] = reptile_agent
    return resolve_flags(given)[0]  # defaults <- the preset <- these, as python -m metarl.train resolves them


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=0, help="simulator threads (0: all cores)")
    p.add_argument("--reptile-agent", default=None, help="Reptile's inner-loop agent (default: the preset's)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    trainers = {
        m: MetaTrainer(_config(args.env, m, args.threads, args.reptile_agent)) for m in ("reptile", "maml", "fomaml")
    }
    runs: dict[str, list[dict[str, float]]] = {m: [] for m in trainers}
    try:
        for trainer in trainers.values():  # warm-up: env construction, first-call costs
            trainer.train_iteration()
        for _ in range(args.repeats):
            for name, trainer in trainers.items():
                runs[name].append(trainer.train_iteration())
    finally:
        for trainer in trainers.values():
            trainer.close()
    rows = {}
    for name in trainers:
        c = trainers[name].config
        outer_s = statistics.median(m.get("time/outer_step_s", 0.0) for m in runs[name])
        iter_s = statistics.median(m["time/iteration_s"] for m in runs[name])
        rows[name] = {
            "env_steps_per_s": round(statistics.median(m["time/env_steps_per_s"] for m in runs[name])),
            "iteration_s": round(iter_s, 2),
            "outer_step_s": round(outer_s, 2),
            "outer_share": round(outer_s / iter_s, 3),
            "meta_batch": c.meta_batch,
            "episodes": c.episodes_per_step,
            "inner_steps": c.inner_steps,
            "agent": c.inner.agent,
        }
    ref = rows["reptile"]["env_steps_per_s"]
    for r in rows.values():
        r["speed_vs_reptile"] = round(r["env_steps_per_s"] / ref, 3)
    if args.json:
        print(json.dumps({"env": args.env, "repeats": args.repeats, "rows": rows}))
        return 0
    print(f"{args.env}, one process, medians of {args.repeats} interleaved iterations")
    print("| meta-learner | inner loop | env steps/s | × Reptile | iteration s | outer step s (share) |")
    print("|---|---|---:|---:|---:|---:|")
    for name, r in rows.items():
        loop = f"{r['agent']}, {r['meta_batch']} tasks × {r['episodes']} episodes × K={r['inner_steps']}"
        print(
            f"| {name} | {loop} | {r['env_steps_per_s']:,} | {r['speed_vs_reptile']:.2f} | {r['iteration_s']} | "
            f"{r['outer_step_s']} ({r['outer_share']:.0%}) |"
        )
    return 0


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    sys.exit(main())
