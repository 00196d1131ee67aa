"""Env steps per second of the SB3 inner-loop agents against the native agent and plain SB3.

    python benchmarks/sb3_throughput.py --env HalfCheetahVel [--repeats 3] [--tasks 4] [--json]

One process, one simulator thread, torch on one thread; medians over interleaved repeats after a
warm-up. Every configuration runs the same work per task: ``K = 1`` update of ``E = 20`` episodes plus
the measuring rollout (``2 · E · horizon`` env steps), inner updates included:
  native      metarl's NativeAgent (PPO): all tasks' episodes stepped as one batch
  sb3-ppo/a2c/trpo
              SB3Agent: SB3's ``learn()`` on metarl's BatchVecEnv, one task at a time (E copies)
  plain-sb3-ppo
              what an SB3 user has without metarl: PPO on ``DummyVecEnv`` over ``gym.make`` (E envs),
              the same hyper-parameters, ``learn(2 · E · horizon)`` per task
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import DummyVecEnv

from metarl.agents import InnerLoop, RunningNorm, make_agent
from metarl.agents.sb3 import algorithm_kwargs
from metarl.envs import env_id, get_family

EPISODES, STEPS = 20, 1
HIDDEN, LOG_STD = (64, 64), -0.5


def _native(family, tasks) -> Callable[[], int]:  # noqa: ANN001
    inner = InnerLoop()
    agent = make_agent(family, inner, HIDDEN, LOG_STD, threads=1)
    theta, norm = agent.init_params(0), RunningNorm(agent.obs_dim)
    seeds = [(0, t) for t in range(len(tasks))]
    return lambda: agent.adapt(theta, tasks, inner, STEPS, EPISODES, norm, seeds).env_steps


def _sb3(family, tasks, algo: str) -> Callable[[], int]:  # noqa: ANN001
    inner = InnerLoop(agent=f"sb3-{algo}")
    agent = make_agent(family, inner, HIDDEN, LOG_STD, threads=1)
    theta, norm = agent.init_params(0), RunningNorm(agent.obs_dim)
    seeds = [(0, t) for t in range(len(tasks))]
    return lambda: agent.adapt(theta, tasks, inner, STEPS, EPISODES, norm, seeds).env_steps


def _plain(family, tasks) -> Callable[[], int]:  # noqa: ANN001
    steps = (STEPS + 1) * EPISODES * family.horizon
    kwargs = algorithm_kwargs(InnerLoop(agent="sb3-ppo"), HIDDEN, LOG_STD, EPISODES, family.horizon)

    def run() -> int:
        for task in tasks:
            env = DummyVecEnv([lambda t=task: gym.make(env_id(family.family_name), task=t)] * EPISODES)
            model = PPO("MlpPolicy", env, seed=0, **kwargs)
            model.learn(steps)
        return steps * len(tasks)

    return run


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--tasks", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    family = get_family(args.env)
    tasks = family.sample_tasks(args.tasks, np.random.default_rng(0))
    runs = {
        "native-ppo": _native(family, tasks),
        "sb3-ppo": _sb3(family, tasks, "ppo"),
        "sb3-a2c": _sb3(family, tasks, "a2c"),
        "sb3-trpo": _sb3(family, tasks, "trpo"),
        "plain-sb3-ppo": _plain(family, tasks[:1]),
    }
    for fn in runs.values():  # warm-up (imports, first PPO(), allocator)
        fn()
    rates: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.repeats):
        for name, fn in runs.items():
            t0 = time.perf_counter()
            n = fn()
            rates[name].append(n / (time.perf_counter() - t0))
    med = {k: statistics.median(v) for k, v in rates.items()}
    if args.json:
        print(json.dumps({"env": args.env, "steps_per_s": med, "all": rates}, indent=2))
    else:
        print(f"{args.env}: env steps/s incl. updates, median of {args.repeats} (one process, one thread)")
        for k, v in med.items():
            print(f"  {k:14s} {v:9.0f}   {v / med['native-ppo']:.2f} x native")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
