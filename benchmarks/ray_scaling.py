"""Cost of a Ray actor call and 1 → 2 worker scaling of the meta-batch's adaptation, processes vs Ray.

    python benchmarks/ray_scaling.py [--env HalfCheetahVel] [--meta-batch 4] [--repeats 3] [--json]

Measures on this machine (needs ``pip install "metarl[ray]"``; Ray runs on loopback, usage statistics
and token authentication off, its temp folder in a temporary directory removed at the end):
  (a) the round trip of a Ray actor call: empty, and carrying θ of the family's default policy;
  (b) the wall-clock of one task's adaptation in one process (the unit of work a worker receives);
  (c) the wall-clock of adapting a meta-batch with 1 and 2 workers, as processes and as Ray actors
      (medians of interleaved repeats after a warm-up call), and the speed-up 1 → 2.
docs/ray.md turns (a) and (b) into the scaling to expect on a cluster.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import sys
import tempfile
import time

# Before Ray is imported: a single-node Ray keeps 127.0.0.1 (and binds there) only with this set.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # loopback only; no token file written to ~/.ray

import numpy as np  # noqa: E402
import torch  # noqa: E402


class _Echo:
    def call(self, payload: object = None) -> int:
        return 0


def ray_call_overhead(ray, theta: dict[str, np.ndarray], calls: int) -> dict[str, float]:  # noqa: ANN001
    actor = ray.remote(num_cpus=0)(_Echo).remote()
    ray.get(actor.call.remote())
    out = {}
    for name, args in {"empty": (), "theta": (theta,)}.items():
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            ray.get(actor.call.remote(*args))
            times.append(time.perf_counter() - t0)
        out[f"ray_call_ms_{name}"] = round(statistics.median(times) * 1e3, 3)
    ray.kill(actor)
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--meta-batch", type=int, default=4)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--calls", type=int, default=200)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    torch.set_num_threads(1)
    import ray

    from metarl.agents import RunningNorm
    from metarl.agents.pool import to_numpy
    from metarl.config import TrainConfig, preset
    from metarl.envs import get_family
    from metarl.trainer import build_agent

    family = get_family(args.env)
    base = TrainConfig.from_flags({**preset(args.env), "env": family.family_name, "meta_batch": args.meta_batch})
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    result: dict[str, object] = {"env": family.family_name, "cores": len(os.sched_getaffinity(0))}

    with tempfile.TemporaryDirectory(prefix="metarl-ray-") as tmp:
        ray.init(
            num_cpus=3,  # logical: the 1- and 2-actor agents are alive together, used in turn
            include_dashboard=False,
            _node_ip_address="127.0.0.1",
            _temp_dir=tmp,
            logging_level="WARNING",
        )
        try:
            local = build_agent(dataclasses.replace(base, workers=1, threads=1))
            theta = local.init_params(0)
            result.update(ray_call_overhead(ray, to_numpy(theta), args.calls))
            log(f"  Ray actor call: {result['ray_call_ms_empty']} ms empty, {result['ray_call_ms_theta']} ms with θ")
            tasks = family.sample_tasks(args.meta_batch, np.random.default_rng(0))
            c = base
            adapters = {}
            for backend in ("processes", "ray"):
                for workers in (1, 2):
                    cfg = dataclasses.replace(c, workers=workers, threads=1, backend=backend)
                    if backend == "processes" and workers == 1:
                        adapters[(backend, workers)] = local
                    else:
                        adapters[(backend, workers)] = build_agent(cfg)
            samples: dict[tuple[str, int], list[float]] = {k: [] for k in adapters}
            call = 0

            def adapt(agent, n: int) -> float:  # noqa: ANN001
                nonlocal call
                call += 1
                seeds = [(call, t) for t in range(n)]
                t0 = time.perf_counter()
                norm = RunningNorm(local.obs_dim)
                agent.adapt(theta, tasks[:n], c.inner, c.inner_steps, c.episodes_per_step, norm, seeds)
                return time.perf_counter() - t0

            for agent in adapters.values():  # warm-up: worker start, first-call costs
                adapt(agent, min(2, args.meta_batch))
            one_task = [adapt(local, 1) for _ in range(args.repeats)]
            result["one_task_adaptation_s"] = round(statistics.median(one_task), 3)
            log(f"  one task's adaptation in one process: {result['one_task_adaptation_s']} s")
            for r in range(args.repeats):
                for key, agent in adapters.items():
                    samples[key].append(adapt(agent, args.meta_batch))
                    log(f"  repeat {r + 1}/{args.repeats} {key[0]:>9} x{key[1]}: {samples[key][-1]:.2f} s")
            for agent in adapters.values():
                agent.close()
        finally:
            ray.shutdown()
    med = {f"{b}_{w}": round(statistics.median(v), 3) for (b, w), v in samples.items()}
    result["meta_batch_adaptation_s"] = med
    result["speedup_1_to_2"] = {b: round(med[f"{b}_1"] / med[f"{b}_2"], 2) for b in ("processes", "ray")}
    result["config"] = {k: base.to_dict()[k] for k in ("meta_batch", "inner_steps", "episodes_per_step", "agent")}
    result["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"\n{family.family_name}, {result['cores']} cores, meta-batch {args.meta_batch}, medians of {args.repeats}")
    print(f"Ray actor call round trip: {result['ray_call_ms_empty']} ms (empty), {result['ray_call_ms_theta']} ms (θ)")
    print(f"one task's adaptation: {result['one_task_adaptation_s']} s")
    print("\n| backend | 1 worker (s) | 2 workers (s) | speed-up |\n|---|---:|---:|---:|")
    for b in ("processes", "ray"):
        print(f"| {b} | {med[f'{b}_1']} | {med[f'{b}_2']} | {result['speedup_1_to_2'][b]} |")
    print(f"\nload average during the run: {result['load_average']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
