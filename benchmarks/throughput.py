"""Env steps per second of metarl against the simulator's own bound, SB3 and plain Gymnasium.

    python benchmarks/throughput.py --env HalfCheetahVel [--json] [--repeats 3] [--quick]

Measures, in one run on one machine (medians over interleaved repeats, after a warm-up):
  (a) raw bound: ``mj_step`` × frame_skip on the family's model, one thread; and all cores with
      ``mujoco.rollout`` (open loop, one MjData per thread, nbatch 64);
  (b) a plain Gymnasium env stepped one step at a time (random actions, no policy);
  (c) stable-baselines3 PPO learning on the family with its default hyper-parameters (1 env);
  (d) metarl's sampler alone, policy in the loop (a meta-batch of tasks, as in training);
  (e) a full metarl meta-iteration (sampling, inner PPO updates, Reptile step), end to end;
plus the scaling of the sampler with envs per task (1, 4, 16, 64) on 1 and 2 cores, the wall-clock of
one meta-iteration, and the peak resident memory of a short ``python -m metarl.train`` run.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def timed(fn: Callable[[], int]) -> float:
    """Steps per second of ``fn`` (which returns the env steps it made)."""
    t0 = time.perf_counter()
    steps = fn()
    return steps / (time.perf_counter() - t0)


def raw_one_thread(family, seconds: float) -> Callable[[], int]:  # noqa: ANN001
    import mujoco

    env = family()
    model, data, fs = env.model, env.data, env.frame_skip
    acts = np.random.default_rng(0).uniform(-1, 1, size=(1000, model.nu))
    n = max(1000, int(seconds * 25_000))

    def run() -> int:
        mujoco.mj_resetData(model, data)
        for i in range(n):
            data.ctrl[:] = acts[i % 1000]
            mujoco.mj_step(model, data, fs)
        return n

    return run


def raw_all_cores(family, seconds: float) -> Callable[[], int]:  # noqa: ANN001
    import mujoco
    from mujoco import rollout

    env = family()
    model, fs = env.model, env.frame_skip
    nbatch, nstep = 64, fs * max(50, int(seconds * 50_000 / 64))
    datas = [mujoco.MjData(model) for _ in range(CORES)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state0 = np.zeros(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, datas[0], state0, spec)
    init = np.tile(state0, (nbatch, 1))
    ctrl = np.random.default_rng(0).uniform(-1, 1, size=(nbatch, nstep, model.nu))

    def run() -> int:
        rollout.rollout(model, datas, init, ctrl, persistent_pool=True)
        return nbatch * nstep // fs

    return run


def gym_single(env_id: str, seconds: float) -> Callable[[], int]:
    import gymnasium as gym

    env = gym.make(env_id)
    env.reset(seed=0)
    acts = np.random.default_rng(0).uniform(-1, 1, size=(1000, env.action_space.shape[0]))
    n = max(500, int(seconds * 12_000))

    def run() -> int:
        env.reset(seed=0)
        for i in range(n):
            _, _, term, trunc, _ = env.step(acts[i % 1000])
            if term or trunc:
                env.reset()
        return n

    return run


def sb3_ppo(env_id: str, seconds: float) -> Callable[[], int]:
    import gymnasium as gym
    from stable_baselines3 import PPO

    steps = 2048 * max(1, int(seconds * 1200 / 2048))

    def run() -> int:
        model = PPO("MlpPolicy", gym.make(env_id), seed=0, device="cpu", verbose=0)
        model.learn(total_timesteps=steps)
        return steps

    model = PPO("MlpPolicy", gym.make(env_id), seed=0, device="cpu", verbose=0)  # pay the first-PPO import cost
    del model
    return run


def metarl_sampler(cfg, tasks: int, episodes: int, workers: int, threads: int):  # noqa: ANN001, ANN201
    """Sampling only: ``adapt`` with 0 inner steps is one batch of episodes and no update."""

    from metarl.agents import RunningNorm
    from metarl.trainer import build_agent

    cfg = dataclasses.replace(cfg, workers=workers, threads=threads)
    agent = build_agent(cfg)
    theta = agent.init_params(0)
    norm = RunningNorm(agent.obs_dim)
    task_list = cfg.family.sample_tasks(tasks, np.random.default_rng(0))
    counter = [0]

    def run() -> int:
        counter[0] += 1
        res = agent.adapt(theta, task_list, cfg.inner, 0, episodes, norm, [(counter[0], t) for t in range(tasks)])
        return res.env_steps

    def close() -> None:
        agent.close()

    return run, close


def meta_iteration(cfg):  # noqa: ANN001, ANN201
    from metarl.trainer import MetaTrainer

    trainer = MetaTrainer(cfg)
    times: list[float] = []

    def run() -> int:
        before, t0 = trainer.env_steps, time.perf_counter()
        trainer.train_iteration()
        times.append(time.perf_counter() - t0)
        return trainer.env_steps - before

    return run, trainer.close, times


def peak_rss_of_training(env: str, iters: int) -> float:
    """Peak summed resident memory (MiB) of a ``metarl.train`` process and its workers."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            sys.executable,
            "-m",
            "metarl.train",
            "--env",
            env,
            "--meta-iters",
            str(iters),
            "--eval-every",
            "0",
            "--quiet",
            "--run-dir",
            str(Path(tmp) / "run"),
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        peak = 0
        while proc.poll() is None:
            peak = max(peak, _tree_rss_kib(proc.pid))
            time.sleep(0.2)
        return peak / 1024


def _tree_rss_kib(pid: int) -> int:
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            with open(f"/proc/{p}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            with open(f"/proc/{p}/task/{p}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except (FileNotFoundError, ProcessLookupError, StopIteration):
            pass
    return total


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="short measurements (a smoke test, not for quoting)")
    args = p.parse_args()
    torch.set_num_threads(1)

    from metarl.config import TrainConfig, preset
    from metarl.envs import env_id, get_family

    family = get_family(args.env)
    cfg = TrainConfig.from_flags({**preset(args.env), "env": family.family_name})
    if args.quick:
        cfg = dataclasses.replace(cfg, meta_batch=2, episodes_per_step=4)
    secs = 0.5 if args.quick else 2.0
    reps = 1 if args.quick else args.repeats
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))

    time.sleep(0 if args.quick else 1.5)  # let the machine settle
    sampler_run, sampler_close = metarl_sampler(cfg, cfg.meta_batch, cfg.episodes_per_step, workers=0, threads=0)
    iter_run, iter_close, iter_times = meta_iteration(cfg)
    benches: dict[str, Callable[[], int]] = {
        "raw_one_thread": raw_one_thread(family, secs),
        "raw_all_cores": raw_all_cores(family, secs),
        "gym_single": gym_single(env_id(family.family_name), secs),
        "sb3_ppo": sb3_ppo(env_id(family.family_name), secs * 2),
        "sampler": sampler_run,
        "meta_iteration": iter_run,
    }
    for fn in (benches["sampler"], benches["meta_iteration"]):  # warm-up (worker start, first-call costs)
        fn()
    iter_times.clear()
    samples: dict[str, list[float]] = {k: [] for k in benches}
    for r in range(reps):
        for name, fn in benches.items():
            samples[name].append(timed(fn))
            log(f"  repeat {r + 1}/{reps} {name:>15}: {samples[name][-1]:10.0f} steps/s")
    sampler_close()
    iter_close()
    med = {k: statistics.median(v) for k, v in samples.items()}

    scaling: dict[str, dict[str, float]] = {}
    for envs in (1, 4, 16, 64):
        row = {}
        for cores, (workers, threads) in {1: (1, 1), 2: (2, 1)}.items():
            if cores > CORES:
                continue
            run, close = metarl_sampler(cfg, 2, envs, workers=workers, threads=threads)
            run()
            row[f"{cores}_core"] = statistics.median(timed(run) for _ in range(max(1, reps)))
            close()
        scaling[str(envs)] = row
        log(f"  scaling envs/task={envs}: " + ", ".join(f"{k} {v:.0f}" for k, v in row.items()))

    rss = peak_rss_of_training(family.family_name, 2 if args.quick else 3)
    ratios = {
        "sampler/raw_all_cores": med["sampler"] / med["raw_all_cores"],
        "meta_iteration/raw_all_cores": med["meta_iteration"] / med["raw_all_cores"],
        "meta_iteration/sb3_ppo": med["meta_iteration"] / med["sb3_ppo"],
        "sampler/raw_one_thread": med["sampler"] / med["raw_one_thread"],
    }
    result = {
        "env": family.family_name,
        "cores": CORES,
        "repeats": reps,
        **{k: round(v, 1) for k, v in med.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "scaling_envs_per_task": {k: {c: round(v, 1) for c, v in row.items()} for k, row in scaling.items()},
        "meta_iteration_seconds": round(statistics.median(iter_times), 2) if iter_times else None,
        "meta_iteration_config": {
            **{k: cfg.to_dict()[k] for k in ("meta_batch", "inner_steps", "episodes_per_step", "workers")},
            **{k: cfg.inner.to_dict()[k] for k in ("agent", "ppo_epochs", "minibatches")},
        },
        "peak_rss_mib_training": round(rss, 1),
        "torch": torch.__version__,
    }
    if args.json:
        print(json.dumps(result))
        return 0
    rows = [
        ("(a) raw mj_step, one thread", "raw_one_thread"),
        (f"(a) raw mujoco.rollout, {CORES} threads, open loop", "raw_all_cores"),
        ("(b) Gymnasium env, one step at a time", "gym_single"),
        ("(c) stable-baselines3 PPO learning (defaults)", "sb3_ppo"),
        ("(d) metarl sampler, policy in the loop", "sampler"),
        ("(e) metarl meta-iteration, end to end", "meta_iteration"),
    ]
    print(f"\n{family.family_name}, {CORES} cores, medians of {reps} repeats\n")
    print("| configuration | env steps/s | × raw all cores |\n|---|---:|---:|")
    for label, key in rows:
        print(f"| {label} | {med[key]:,.0f} | {med[key] / med['raw_all_cores']:.2f} |")
    print("\n| ratio | value |\n|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f} |")
    print("\n| envs per task (2 tasks) | 1 core | 2 cores |\n|---:|---:|---:|")
    for envs, row in scaling.items():
        print(f"| {envs} | {row.get('1_core', float('nan')):,.0f} | {row.get('2_core', float('nan')):,.0f} |")
    print(
        f"\nwall-clock of one meta-iteration ({result['meta_iteration_config']}): {result['meta_iteration_seconds']} s"
    )
    print(f"peak resident memory of a metarl.train run (main process + workers): {rss:.0f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
