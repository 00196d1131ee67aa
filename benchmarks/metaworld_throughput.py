"""Env steps per second of a Meta-World family (needs ``pip install "metarl[metaworld]"``).

    python benchmarks/metaworld_throughput.py [--env ML1-reach-v3] [--repeats 3]

Medians over interleaved repeats, after a warm-up, one process:
  (a) Meta-World's own env, stepped directly with random actions (the bound for per-copy stepping);
  (b) the family's batched env (``GymBatchEnv``, 10 copies), random actions;
  (c) metarl's sampler, policy in the loop: one episode in each of 10 copies (2 tasks x 5 episodes).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="ML1-reach-v3", help="Meta-World family (default: ML1-reach-v3)")
    p.add_argument("--repeats", type=int, default=3, help="interleaved repeats (default: 3)")
    args = p.parse_args()
    torch.set_num_threads(1)

    from metarl.agents.policy import RunningNorm, init_params, stack
    from metarl.agents.sampler import collect
    from metarl.envs import get_family

    family = get_family(args.env)
    tasks = family.sample_tasks(2, np.random.default_rng(0))
    rng = np.random.default_rng(0)
    H = family.horizon

    env = family(task=tasks[0])

    def raw() -> int:
        inner = env._env  # Meta-World's env, without metarl's wrapper
        inner.reset()
        for a in rng.uniform(-1, 1, size=(H, 4)):
            inner.step(a)
        return H

    batch = family.make_batch(10)
    batch.set_tasks([t for t in tasks for _ in range(5)])

    def batched() -> int:
        batch.reset([np.random.default_rng(i) for i in range(10)])
        for _ in range(H):
            batch.step(rng.uniform(-1, 1, size=(10, 4)))
        return 10 * H

    params = stack(init_params(batch.obs_dim, batch.act_dim, (64, 64), -0.5, 0), 2)
    norm = RunningNorm(batch.obs_dim)

    def sampler() -> int:
        gens = [torch.Generator().manual_seed(i) for i in range(2)]
        ro = collect(params, norm, batch, 5, [np.random.default_rng(i) for i in range(10)], gens)
        return ro.env_steps

    cases = {"(a) Meta-World env, direct": raw, "(b) batched env, 10 copies": batched, "(c) sampler, policy": sampler}
    for fn in cases.values():  # warm-up
        fn()
    rates: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.repeats):
        for name, fn in cases.items():
            t0 = time.perf_counter()
            steps = fn()
            rates[name].append(steps / (time.perf_counter() - t0))
    result = {name: round(statistics.median(r)) for name, r in rates.items()}
    print(json.dumps({"env": family.family_name, "env_steps_per_s": result, "repeats": args.repeats}, indent=1))


if __name__ == "__main__":
    main()
