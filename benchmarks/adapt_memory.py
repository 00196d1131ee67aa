"""Peak memory of one adaptation call in a fresh process: the per-env-step figures of metarl/resources.py.

    python benchmarks/adapt_memory.py --env HalfCheetahVel --agent trpo --tasks 20 --episodes 20 --steps 1

Builds the native agent (one simulator thread, 64x64 MLPs), prints the resident memory before adapting and the
peak during ``adapt(tasks x episodes copies, steps)``. Run it for two sizes and take the difference per env
step (``tasks x episodes x horizon``) to remove the fixed part.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

from metarl.agents import InnerLoop, RunningNorm, make_agent
from metarl.envs import get_family


def _rss_mib() -> int:
    return int(Path("/proc/self/status").read_text().split("VmRSS:")[1].split()[0]) // 1024


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--agent", default="ppo", choices=("vpg", "ppo", "trpo"))
    p.add_argument("--tasks", type=int, default=20)
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--steps", type=int, default=1)
    args = p.parse_args()
    torch.set_num_threads(1)
    family = get_family(args.env)
    inner = InnerLoop(agent=args.agent, **({"target_kl": 1.0} if args.agent == "trpo" else {}))
    agent = make_agent(family, inner, (64, 64), -0.5, threads=1)
    before = _rss_mib()
    tasks = family.sample_tasks(args.tasks, np.random.default_rng(0))
    seeds = [(0, i) for i in range(args.tasks)]
    t0 = time.perf_counter()
    agent.adapt(agent.init_params(0), tasks, inner, args.steps, args.episodes, RunningNorm(agent.obs_dim), seeds)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    env_steps = args.tasks * args.episodes * family.horizon
    row = {**vars(args), "env_steps_per_rollout": env_steps, "rss_before_mib": before, "peak_rss_mib": peak}
    print(json.dumps({**row, "seconds": round(time.perf_counter() - t0, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
