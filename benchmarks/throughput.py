"""Env steps per second of metarl against the simulator's own bound, SB3 and plain Gymnasium.

    python benchmarks/throughput.py --env HalfCheetahVel [--json] [--repeats 3] [--quick] [--agent ppo]

Measures, in one run on one machine (medians over interleaved repeats, after a warm-up):
  (a) raw bound: ``mj_step`` × frame_skip on the family's model, one thread; and all cores with
      ``mujoco.rollout`` (open loop, one MjData per thread, nbatch 64);
  (b) a plain Gymnasium env stepped one step at a time (random actions, no policy);
  (c) stable-baselines3 PPO learning on the family with its default hyper-parameters (1 env);
  (d) metarl's sampler alone, policy in the loop (a meta-batch of tasks, as in training);
  (e) a full metarl meta-iteration (sampling, inner updates of the preset's agent or --agent's, Reptile step);
(d) and (e) in several configurations, repeats interleaved with everything else: today's default (one worker
process per core, per-copy ``mj_step``), and MuJoCo 4's batched stepper (``mujoco.batch``) in one process with
1 and all threads, or in worker processes; for (e) also with torch's own threads for the inner updates
(``torch.set_num_threads`` around each update). Plus where the sampler's time goes (timed sections: physics,
env glue, policy forward, the rest of the sampler), the scaling of the sampler with envs per task (1, 4, 16, 64)
on 1 and 2 cores, the wall-clock of one meta-iteration, and the peak resident memory of a short
``python -m metarl.train`` run (summed over its processes) in one process and with one worker per core.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
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


@contextlib.contextmanager
def stepper(name: str):  # noqa: ANN201
    """Build and run MuJoCo batched envs on ``name`` (``batch``, ``per-copy``, ``auto``) inside the block.

    Worker processes inherit the variable when they start (inside the block); in-process envs are built
    lazily at their first use, so every call of a configuration runs inside it.
    """
    old = os.environ.get("METARL_MUJOCO_STEPPER")
    os.environ["METARL_MUJOCO_STEPPER"] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("METARL_MUJOCO_STEPPER", None)
        else:
            os.environ["METARL_MUJOCO_STEPPER"] = old


@contextlib.contextmanager
def update_threads(n: int):  # noqa: ANN201
    """Inside the block, the inner-loop updates of in-process agents run with ``n`` torch threads.

    ``NativeAgent.adapt`` pins torch to one thread (the simulator threads own the cores); this wraps the
    algorithms' ``update`` to measure what torch's own threads buy for the PPO/VPG/TRPO updates. Benchmark only.
    """
    from metarl.agents.ppo import PPO
    from metarl.agents.trpo import TRPO
    from metarl.agents.vpg import VPG

    if n <= 1:
        yield
        return
    originals = {cls: cls.update for cls in (PPO, VPG, TRPO)}

    def wrap(original):  # noqa: ANN001, ANN202
        def update(self, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
            before = torch.get_num_threads()
            torch.set_num_threads(n)
            try:
                return original(self, *args, **kwargs)
            finally:
                torch.set_num_threads(before)

        return update

    for cls, original in originals.items():
        cls.update = wrap(original)
    try:
        yield
    finally:
        for cls, original in originals.items():
            cls.update = original


def configured(run: Callable[[], int], name: str, torch_threads: int = 1) -> Callable[[], int]:
    """``run`` inside :func:`stepper` ``name`` and :func:`update_threads` ``torch_threads``."""

    def wrapped() -> int:
        with stepper(name), update_threads(torch_threads):
            return run()

    return wrapped


def metarl_sampler(cfg, tasks: int, episodes: int, workers: int, threads: int, path: str = "auto"):  # noqa: ANN001, ANN201
    """Sampling only: ``adapt`` with 0 inner steps is one batch of episodes and no update."""

    from metarl.agents import RunningNorm
    from metarl.trainer import build_agent

    cfg = dataclasses.replace(cfg, workers=workers, threads=threads)
    with stepper(path):
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

    return configured(run, path), close


def meta_iteration(
    cfg, workers: int | None = None, threads: int | None = None, path: str = "auto", torch_threads: int = 1
):  # noqa: ANN001, ANN201
    import dataclasses

    from metarl.trainer import MetaTrainer

    if workers is not None:
        cfg = dataclasses.replace(cfg, workers=workers, threads=threads if threads is not None else cfg.threads)
    with stepper(path):
        trainer = MetaTrainer(cfg)
    times: list[float] = []

    def run() -> int:
        before, t0 = trainer.env_steps, time.perf_counter()
        trainer.train_iteration()
        times.append(time.perf_counter() - t0)
        return trainer.env_steps - before

    return configured(run, path, torch_threads), trainer.close, times


def sampler_sections(cfg, threads: int, repeats: int) -> dict[str, float]:  # noqa: ANN001
    """Where one process's sampler spends its time, as fractions of the wall-clock (medians of ``repeats``).

    Timed sections of ``agent.adapt(..., steps=0, ...)`` on the batched stepper with ``threads`` C threads:
    ``physics`` (``Batch.step`` / ``forward`` / ``reset``), ``env glue`` (the rest of the env's ``reset`` and
    ``step``: clipping, copies, observations, rewards, instability checks), ``policy forward`` (the MLP calls
    of the sampler) and ``rest of the sampler`` (noise, log-probabilities, buffers, per-copy initial states).
    """
    import mujoco.batch

    from metarl.agents import sampler as sampler_module

    spent = {"physics": 0.0, "env": 0.0, "policy": 0.0}

    def timing(key: str, fn: Callable) -> Callable:
        def wrapped(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] += time.perf_counter() - t0

        return wrapped

    run, close = metarl_sampler(cfg, cfg.meta_batch, cfg.episodes_per_step, workers=1, threads=threads, path="batch")
    run()  # builds the env
    from metarl.envs.mujoco_native import NativeMujocoBatchEnv

    sections = {"physics": (mujoco.batch.Batch, ("step", "forward", "reset"))}
    sections.update(env=(NativeMujocoBatchEnv, ("step", "reset")), policy=(sampler_module, ("mlp",)))
    patched = [(owner, n, getattr(owner, n)) for owner, names in sections.values() for n in names]
    for key, (owner, names) in sections.items():
        for n in names:
            setattr(owner, n, timing(key, getattr(owner, n)))
    fractions: dict[str, list[float]] = {
        k: [] for k in ("physics", "env glue", "policy forward", "rest of the sampler")
    }
    try:
        for _ in range(repeats):
            for k in spent:
                spent[k] = 0.0
            t0 = time.perf_counter()
            run()
            wall = time.perf_counter() - t0
            fractions["physics"].append(spent["physics"] / wall)
            fractions["env glue"].append((spent["env"] - spent["physics"]) / wall)
            fractions["policy forward"].append(spent["policy"] / wall)
            fractions["rest of the sampler"].append((wall - spent["env"] - spent["policy"]) / wall)
    finally:
        for owner, name, fn in patched:
            setattr(owner, name, fn)
        close()
    return {k: statistics.median(v) for k, v in fractions.items()}


def peak_rss_of_training(env: str, iters: int, extra: Sequence[str] = ()) -> float:
    """Peak summed resident memory (MiB) of a ``metarl.train`` process and its workers (``extra``: more flags)."""
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
            *extra,
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


#: The configurations of (d) and (e): key -> (label, workers, threads, MuJoCo stepper, torch threads of the updates).
#: ``W`` stands for one worker process per core, ``C`` for all cores. The first of each is today's default.
_TODAY = ("W worker processes × 1 thread, per-copy mj_step (the default before mujoco.batch)", "W", 1, "per-copy", 1)
SAMPLERS = {
    "sampler": _TODAY,
    "sampler_batch_1t": ("1 process, mujoco.batch, 1 thread", 1, 1, "batch", 1),
    "sampler_batch_ct": ("1 process, mujoco.batch, C threads", 1, "C", "batch", 1),
    "sampler_per_copy_ct": ("1 process, per-copy mj_step, C Python threads", 1, "C", "per-copy", 1),
    "sampler_batch_w": ("W worker processes × 1 thread, mujoco.batch", "W", 1, "batch", 1),
}
_TORCH = "1 process, mujoco.batch, C threads, torch C threads in the updates"
ITERATIONS = {
    "meta_iteration": _TODAY,
    "iteration_batch_1t": ("1 process, mujoco.batch, 1 thread, torch 1 thread", 1, 1, "batch", 1),
    "iteration_batch_ct": ("1 process, mujoco.batch, C threads, torch 1 thread", 1, "C", "batch", 1),
    "iteration_batch_ct_torch": (_TORCH, 1, "C", "batch", "C"),
    "iteration_batch_w": (
        "W worker processes × 1 thread, mujoco.batch (`--workers W --threads 1`)",
        "W",
        1,
        "batch",
        1,
    ),
}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--quick", action="store_true", help="short measurements (a smoke test, not for quoting)")
    p.add_argument(
        "--agent",
        default=None,
        help="meta-training agent of the metarl rows (default: the family preset's; the HalfCheetah presets' was "
        "ppo before issue 15's third round)",
    )
    args = p.parse_args()
    torch.set_num_threads(1)

    from metarl.config import resolve_flags
    from metarl.envs import HAS_NATIVE_BATCH, env_id, get_family

    family = get_family(args.env)
    cfg, _ = resolve_flags({"env": family.family_name, **({"agent": args.agent} if args.agent else {})})
    agent_flags = ["--agent", args.agent] if args.agent else []
    if args.quick:
        cfg = dataclasses.replace(cfg, meta_batch=2, episodes_per_step=4)
    secs = 0.5 if args.quick else 2.0
    reps = 1 if args.quick else args.repeats
    log = (lambda *a: None) if args.json else (lambda *a: print(*a, file=sys.stderr, flush=True))
    n = lambda v: CORES if v in ("W", "C") else v  # noqa: E731
    label = lambda text: text.replace("W worker", f"{CORES} worker").replace("C threads", f"{CORES} threads")  # noqa: E731
    samplers = {k: v for k, v in SAMPLERS.items() if HAS_NATIVE_BATCH or v[3] != "batch"}
    iterations = {k: v for k, v in ITERATIONS.items() if HAS_NATIVE_BATCH or v[3] != "batch"}

    time.sleep(0 if args.quick else 1.5)  # let the machine settle
    benches: dict[str, Callable[[], int]] = {
        "raw_one_thread": raw_one_thread(family, secs),
        "raw_all_cores": raw_all_cores(family, secs),
        "gym_single": gym_single(env_id(family.family_name), secs),
        "sb3_ppo": sb3_ppo(env_id(family.family_name), secs * 2),
    }
    closers, iter_times = [], {}
    for key, (_, workers, threads, path, _t) in samplers.items():
        run, close = metarl_sampler(cfg, cfg.meta_batch, cfg.episodes_per_step, n(workers), n(threads), path)
        benches[key] = run
        closers.append(close)
    for key, (_, workers, threads, path, torch_threads) in iterations.items():
        run, close, iter_times[key] = meta_iteration(cfg, n(workers), n(threads), path, n(torch_threads))
        benches[key] = run
        closers.append(close)
    for key in [*samplers, *iterations]:  # warm-up (worker start, first-call costs)
        benches[key]()
    for times in iter_times.values():
        times.clear()
    samples: dict[str, list[float]] = {k: [] for k in benches}
    for r in range(reps):
        for name, fn in benches.items():
            samples[name].append(timed(fn))
            log(f"  repeat {r + 1}/{reps} {name:>24}: {samples[name][-1]:10.0f} steps/s")
    for close in closers:
        close()
    med = {k: statistics.median(v) for k, v in samples.items()}
    sections = sampler_sections(cfg, CORES, reps) if HAS_NATIVE_BATCH else {}
    log("  sampler sections: " + ", ".join(f"{k} {v:.2f}" for k, v in sections.items()))

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

    iters = 2 if args.quick else 3
    rss = {
        "one_process": peak_rss_of_training(
            family.family_name, iters, [*agent_flags, "--workers", "1", "--threads", "0"]
        ),
        "workers": peak_rss_of_training(
            family.family_name, iters, [*agent_flags, "--workers", str(CORES), "--threads", "1"]
        ),
    }
    ratios = {
        "sampler/raw_all_cores": med["sampler"] / med["raw_all_cores"],
        "meta_iteration/raw_all_cores": med["meta_iteration"] / med["raw_all_cores"],
        "meta_iteration/sb3_ppo": med["meta_iteration"] / med["sb3_ppo"],
        "sampler/raw_one_thread": med["sampler"] / med["raw_one_thread"],
    }
    for key in [*samplers, *iterations]:
        if key not in ("sampler", "meta_iteration"):
            ratios[f"{key}/raw_all_cores"] = med[key] / med["raw_all_cores"]
    for key in iterations:
        if key != "meta_iteration":
            ratios[f"{key}/sb3_ppo"] = med[key] / med["sb3_ppo"]
    result = {
        "env": family.family_name,
        "cores": CORES,
        "repeats": reps,
        **{k: round(v, 1) for k, v in med.items()},
        "ratios": {k: round(v, 3) for k, v in ratios.items()},
        "sampler_sections": {k: round(v, 3) for k, v in sections.items()},
        "scaling_envs_per_task": {k: {c: round(v, 1) for c, v in row.items()} for k, row in scaling.items()},
        "meta_iteration_seconds": {k: round(statistics.median(v), 2) for k, v in iter_times.items() if v},
        "meta_iteration_config": {
            **{k: cfg.to_dict()[k] for k in ("meta_batch", "inner_steps", "episodes_per_step", "workers")},
            **{k: cfg.inner.to_dict()[k] for k in ("agent", "ppo_epochs", "minibatches")},
        },
        "peak_rss_mib_training": {k: round(v, 1) for k, v in rss.items()},
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
    ]
    rows += [(f"(d) metarl sampler, policy in the loop: {label(v[0])}", k) for k, v in samplers.items()]
    rows += [(f"(e) metarl meta-iteration, end to end: {label(v[0])}", k) for k, v in iterations.items()]
    print(
        f"\n{family.family_name}, {CORES} cores, medians of {reps} interleaved repeats, "
        f"inner steps {cfg.inner.describe()}\n"
    )
    print("| configuration | env steps/s | × raw all cores | × SB3 PPO |\n|---|---:|---:|---:|")
    for text, key in rows:
        print(f"| {text} | {med[key]:,.0f} | {med[key] / med['raw_all_cores']:.2f} | {med[key] / med['sb3_ppo']:.1f} |")
    print("\n| ratio | value |\n|---|---:|")
    for k, v in ratios.items():
        print(f"| {k} | {v:.2f} |")
    if sections:
        print(f"\nsampler, 1 process, mujoco.batch, {CORES} threads: fraction of its wall-clock")
        print("\n| section | fraction |\n|---|---:|")
        for k, v in sections.items():
            print(f"| {k} | {v:.2f} |")
    print("\n| envs per task (2 tasks) | 1 core | 2 cores |\n|---:|---:|---:|")
    for envs, row in scaling.items():
        print(f"| {envs} | {row.get('1_core', float('nan')):,.0f} | {row.get('2_core', float('nan')):,.0f} |")
    print(f"\nwall-clock of one meta-iteration ({result['meta_iteration_config']}), s:")
    for k, v in result["meta_iteration_seconds"].items():
        print(f"  {label(iterations[k][0])}: {v}")
    print(
        f"peak resident memory of a {iters}-iteration metarl.train run, summed over its processes: "
        f"{rss['one_process']:.0f} MiB with --workers 1 --threads 0, "
        f"{rss['workers']:.0f} MiB with --workers {CORES} --threads 1"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
