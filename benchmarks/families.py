"""Per task family: raw batched stepping speed, and a short meta-training run (return before and after adaptation).

    python benchmarks/families.py [--families AntDir HopperRandParams ...] [--iters 10] [--note TEXT]
    python benchmarks/families.py --bound [--families ...]      # each family against its own raw bound

For each family, in one run on one machine:
  (1) raw stepping: env steps/s of ``family.make_batch(n, threads=1)`` with uniform random actions, one
      horizon per repeat (median of interleaved repeats, after a warm-up), and its ratio to HalfCheetahVel
      measured in the same run (HalfCheetahVel is always measured, as the reference). Terminated copies
      stop counting, as in the sampler;
  (2) a short meta-training run through the public API (``MetaTrainer`` on the config that
      ``python -m metarl.train --env FAMILY`` plus the flags printed in the header resolves to: the family's
      preset, then those flags, the same for every family): the env steps/s of the meta-iterations (env
      steps over their wall time), the training ``adapt/return_pre`` → ``adapt/return_post`` averaged over the
      last iterations, and the held-out evaluation after the run (mean return after k = 0 and k = K steps).
Every figure is read back from the trainer's return values. A family that fails shows its error in its row.

With ``--bound``, instead: each MuJoCo family against its own raw all-core bound, ``mujoco.rollout`` open loop on
all cores with the family's (nominal) model and uniform random controls, and in the same run, repeats interleaved:
``make_batch(n, threads=all cores)`` with random actions on MuJoCo's batched stepper and on the per-copy path,
and the sampler with the policy in the loop (the family's preset meta-batch, one process, all cores).

A family is a name from ``metarl.envs.FAMILIES`` or a randomised Gymnasium MuJoCo env written as its family
name, ``Hopper-v5[body_mass=0.5:2.0,geom_friction=0.5:1.5]`` (quote it in the shell); the latter trains as
``--env Hopper-v5 --randomize body_mass=0.5:2.0,geom_friction=0.5:1.5``.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
import torch

CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
REFERENCE = "HalfCheetahVel"
DEFAULT_FAMILIES = (
    "AntDir",
    "AntDirAngle",
    "AntGoal",
    "HopperRandParams",
    "Walker2dRandParams",
    "PendulumRandParams",
    "Navigation2D",
    REFERENCE,
    "Hopper-v5[body_mass=0.5:2.0,geom_friction=0.5:1.5]",
)
#: The meta-training flags every family gets (``--meta-iters`` comes from ``--iters``).
TRAIN_FLAGS = (
    "--meta-batch 4 --episodes-per-step 10 --inner-steps 2 --eval-every 0 --eval-tasks 8 --eval-steps 2 "
    "--workers 1 --threads 1 --seed 0"
).split()


@dataclasses.dataclass
class Row:
    """One family's figures (None where not measured; ``error`` where it failed)."""

    family: str
    raw: float | None = None
    train_sps: float | None = None
    pre: float | None = None
    post: float | None = None
    eval_curve: list[float] | None = None
    train_seconds: float | None = None
    errors: list[str] = dataclasses.field(default_factory=list)


def cpu_model() -> str:
    """The CPU model name from ``/proc/cpuinfo`` (else ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def split_spec(name: str) -> tuple[str, str]:
    """``Hopper-v5[body_mass=0.5:2]`` → ``("Hopper-v5", "body_mass=0.5:2")``; a plain family name → ``(name, "")``."""
    if name.endswith("]") and "[" in name:
        env, _, spec = name[:-1].partition("[")
        return env, spec
    return name, ""


def flag_value(flag: str) -> str:
    """The value :data:`TRAIN_FLAGS` gives ``flag``."""
    return TRAIN_FLAGS[TRAIN_FLAGS.index(flag) + 1]


def train_argv(name: str, iters: int) -> list[str]:
    """The ``python -m metarl.train`` flags of family ``name``'s short run."""
    env, randomize = split_spec(name)
    argv = ["--env", env] + (["--randomize", randomize] if randomize else [])
    return argv + ["--meta-iters", str(iters), *TRAIN_FLAGS]


def make_config(name: str, iters: int):  # noqa: ANN201
    """The :class:`TrainConfig` that ``python -m metarl.train`` resolves for :func:`train_argv` (preset ← flags)."""
    from metarl.config import add_config_arguments, resolve

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    cfg, _ = resolve(parser.parse_args(train_argv(name, iters)))
    return cfg


class RawStepper:
    """``n`` copies of a family stepped with ``threads`` threads and uniform random actions, one horizon per call."""

    def __init__(self, family: Any, n: int, seed: int = 0, threads: int = 1) -> None:
        self.env = family.make_batch(n, threads=threads)
        rng = np.random.default_rng(seed)
        self.env.set_tasks(family.sample_tasks(n, rng))
        low, high = self.env.action_low, self.env.action_high
        self.actions = rng.uniform(low, high, size=(self.env.horizon, n, self.env.act_dim))
        self.n, self.calls = n, 0

    def __call__(self) -> int:
        """One horizon from a reset; returns the env steps made (copies alive before each step)."""
        self.calls += 1
        self.env.reset([np.random.default_rng([self.calls, i]) for i in range(self.n)])
        alive = np.ones(self.n, dtype=bool)
        steps = 0
        for h in range(self.env.horizon):
            steps += int(alive.sum())
            _, _, terminated = self.env.step(self.actions[h])
            alive &= ~np.asarray(terminated, dtype=bool)
        return steps

    def close(self) -> None:
        self.env.close()


def measure_raw(names: list[str], rows: dict[str, Row], n: int, repeats: int, log: Any) -> None:
    """Fill ``rows[name].raw`` with the median steps/s over ``repeats`` interleaved horizons."""
    from metarl.envs import get_family

    steppers: dict[str, RawStepper] = {}
    for name in names:
        try:
            steppers[name] = RawStepper(get_family(name), n)
            steppers[name]()  # warm-up: first-call costs
        except Exception as e:  # noqa: BLE001 - reported in the table
            rows[name].errors.append(f"raw stepping: {type(e).__name__}: {e}")
            steppers.pop(name, None)
    samples: dict[str, list[float]] = {name: [] for name in steppers}
    for r in range(repeats):
        for name, run in list(steppers.items()):
            try:
                t0 = time.perf_counter()
                steps = run()
                samples[name].append(steps / (time.perf_counter() - t0))
                log(f"  raw repeat {r + 1}/{repeats} {name:>50}: {samples[name][-1]:10,.0f} steps/s")
            except Exception as e:  # noqa: BLE001
                rows[name].errors.append(f"raw stepping: {type(e).__name__}: {e}")
                steppers.pop(name).close()
    for name, run in steppers.items():
        run.close()
        rows[name].raw = statistics.median(samples[name])


def rollout_bound(family: Any, seconds: float = 1.0) -> Any:
    """Open-loop ``mujoco.rollout`` of 64 copies on all cores (the family's nominal model); sized to ~``seconds``."""
    import mujoco
    from mujoco import rollout

    env = family()
    model, fs = env.model, env.frame_skip
    datas = [mujoco.MjData(model) for _ in range(CORES)]
    spec = mujoco.mjtState.mjSTATE_FULLPHYSICS
    state0 = np.zeros(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, datas[0], state0, spec)
    nbatch = 64
    init = np.tile(state0, (nbatch, 1))

    def make(nstep: int) -> Any:
        ctrl = np.random.default_rng(0).uniform(-1, 1, size=(nbatch, nstep, model.nu))
        return lambda: (rollout.rollout(model, datas, init, ctrl, persistent_pool=True), nbatch * nstep // fs)[1]

    probe = make(fs * 20)
    probe()
    t0 = time.perf_counter()
    steps = probe()
    per_step = (time.perf_counter() - t0) / steps
    return make(fs * max(20, int(seconds / per_step / nbatch)))


def measure_bound(names: list[str], n: int, repeats: int, log: Any) -> dict[str, dict[str, float]]:
    """Per family: medians of the bound, the batched env on each path and the sampler, repeats interleaved."""
    import contextlib

    from throughput import metarl_sampler, stepper

    from metarl.config import TrainConfig, preset
    from metarl.envs import get_family

    benches: dict[tuple[str, str], Any] = {}
    closers = []
    for name in names:
        family = get_family(name)
        if not hasattr(family(), "frame_skip"):
            continue  # not a MuJoCo family: no raw bound to compare with
        benches[name, "bound"] = rollout_bound(family)
        for path in ("batch", "per-copy"):
            with stepper(path):
                raw = RawStepper(family, n, threads=CORES)
            closers.append(raw.close)
            benches[name, path] = raw
        env, randomize = split_spec(name)
        cfg = TrainConfig(**{**preset(env, randomize), "env": env, "randomize": randomize})
        run, close = metarl_sampler(cfg, cfg.meta_batch, cfg.episodes_per_step, 1, CORES, "batch")
        benches[name, "sampler"] = run
        closers.append(close)
    samples: dict[tuple[str, str], list[float]] = {k: [] for k in benches}
    for fn in benches.values():  # warm-up
        fn()
    for r in range(repeats):
        for key, fn in benches.items():
            t0 = time.perf_counter()
            steps = fn()
            samples[key].append(steps / (time.perf_counter() - t0))
            log(f"  bound repeat {r + 1}/{repeats} {key[0]:>45} {key[1]:>9}: {samples[key][-1]:10,.0f} steps/s")
    for close in closers:
        with contextlib.suppress(Exception):
            close()
    out: dict[str, dict[str, float]] = {}
    for (name, what), v in samples.items():
        out.setdefault(name, {})[what] = statistics.median(v)
    return out


def print_bound(table: dict[str, dict[str, float]], n: int, repeats: int) -> None:
    """The ``--bound`` table: steps/s and ratios to each family's own raw bound."""
    print(
        f"Each family against its own raw bound (`mujoco.rollout`, open loop, 64 copies, {CORES} threads); "
        f"batched env: make_batch({n}, threads={CORES}), random actions; sampler: the family's preset meta-batch, "
        f"policy in the loop, 1 process, {CORES} threads; medians of {repeats} interleaved repeats.\n"
    )
    print("| family | raw bound steps/s | mujoco.batch env | per-copy env | sampler (mujoco.batch) |")
    print("|---|---:|---:|---:|---:|")
    for name, row in table.items():
        b = row["bound"]
        cells = [f"{row[k]:,.0f} ({row[k] / b:.2f})" for k in ("batch", "per-copy", "sampler")]
        print(f"| {name} | {b:,.0f} | " + " | ".join(cells) + " |")


def measure_training(name: str, row: Row, iters: int, last: int, log: Any) -> None:
    """Run the short meta-training of ``name`` in-process and fill the training fields of ``row``."""
    from metarl.trainer import MetaTrainer

    cfg = make_config(name, iters)
    trainer = MetaTrainer(cfg)
    try:
        history: list[dict[str, float]] = []
        t0 = time.perf_counter()
        for _ in range(cfg.meta_iters):
            history.append(trainer.train_iteration())
            m = history[-1]
            log(
                f"  {name} iteration {len(history)}/{cfg.meta_iters}: return pre {m['adapt/return_pre']:.1f} "
                f"post {m['adapt/return_post']:.1f}, {m['time/env_steps_per_s']:,.0f} steps/s"
            )
        row.train_seconds = time.perf_counter() - t0
        seconds = sum(m["time/iteration_s"] for m in history)
        row.train_sps = history[-1]["time/env_steps_total"] / seconds
        tail = history[-last:]
        row.pre = float(np.mean([m["adapt/return_pre"] for m in tail]))
        row.post = float(np.mean([m["adapt/return_post"] for m in tail]))
        ev = trainer.evaluate()  # cfg.eval_tasks held-out tasks, k = 0..cfg.eval_steps
        row.eval_curve = [float(x) for x in ev.mean]
        log(f"  {name} held-out evaluation: " + " → ".join(f"{x:.1f}" for x in row.eval_curve))
    finally:
        trainer.close()


def fmt(x: float | None, digits: int = 1) -> str:
    return "–" if x is None else f"{x:,.{digits}f}"


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    p.add_argument(
        "--families",
        nargs="+",
        default=list(DEFAULT_FAMILIES),
        metavar="FAMILY",
        help=f"families to measure, space separated (default: {' '.join(DEFAULT_FAMILIES)}); "
        f"{REFERENCE} is always measured for raw stepping, as the reference",
    )
    p.add_argument("--iters", type=int, default=10, help="meta-iterations of each short run (default: 10)")
    p.add_argument(
        "--last", type=int, default=3, help="training returns averaged over the last N iterations (default: 3)"
    )
    p.add_argument("--raw-envs", type=int, default=20, help="copies stepped together for raw speed (default: 20)")
    p.add_argument("--raw-repeats", type=int, default=3, help="horizons timed per family for raw speed (default: 3)")
    p.add_argument("--no-train", action="store_true", help="raw stepping speed only")
    p.add_argument("--bound", action="store_true", help="each MuJoCo family against its own raw all-core bound only")
    p.add_argument("--note", default="", help="a line about the machine's state, printed in the header")
    args = p.parse_args()
    if args.iters <= 0 or args.last <= 0 or args.raw_envs <= 0 or args.raw_repeats <= 0:
        p.error("--iters, --last, --raw-envs and --raw-repeats must be positive")
    torch.set_num_threads(1)  # as metarl.train: the small MLPs gain nothing from more threads
    log = lambda *a: print(*a, file=sys.stderr, flush=True)  # noqa: E731

    names = list(dict.fromkeys(args.families))
    if args.bound:
        print_bound(measure_bound(names, args.raw_envs, args.raw_repeats, log), args.raw_envs, args.raw_repeats)
        return 0
    raw_names = names if REFERENCE in names else [REFERENCE, *names]
    rows = {name: Row(name) for name in raw_names}
    t_start, load_start = time.perf_counter(), os.getloadavg()

    log(f"raw stepping: {args.raw_envs} copies, one thread, {args.raw_repeats} repeats")
    measure_raw(raw_names, rows, args.raw_envs, args.raw_repeats, log)
    if not args.no_train:
        for name in names:
            log(f"short meta-training run: {name}")
            try:
                measure_training(name, rows[name], args.iters, args.last, log)
            except Exception as e:  # noqa: BLE001 - reported in the table
                rows[name].errors.append(f"training: {type(e).__name__}: {e}")
                log(f"  {name} failed: {type(e).__name__}: {e}")
    wall, load_end = time.perf_counter() - t_start, os.getloadavg()

    ref = rows[REFERENCE].raw
    flags = " ".join(train_argv("FAMILY", args.iters)[2:])
    steps, tasks = flag_value("--eval-steps"), flag_value("--eval-tasks")
    print(
        f"Machine: {CORES} cores (nproc), {cpu_model()}, torch {torch.__version__}; "
        f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end"
        + (f"; {args.note}" if args.note else "")
        + "."
    )
    print(
        f"Short runs: a smoke-level figure, single seed (0), {args.iters} meta-iterations per family, "
        "not a measure of final performance."
    )
    print(f"Training config: `python -m metarl.train --env FAMILY {flags}` (the family's preset for the rest).")
    print(
        f"Raw stepping: make_batch({args.raw_envs}, threads=1), uniform random actions, median of "
        f"{args.raw_repeats} horizons. Meta-training steps/s: env steps of the {args.iters} meta-iterations over "
        f"their wall time (one thread, sampling + PPO + Reptile). Train pre → post: adapt/return_pre → "
        f"adapt/return_post, mean of the last {min(args.last, args.iters)} iterations (meta-batch tasks). "
        f"Held-out: mean return on the first {tasks} meta-test tasks after k=0 → k={steps} adaptation steps, "
        "after the run.\n"
    )
    print(
        f"| family | raw steps/s | ratio to {REFERENCE} | meta-training steps/s | train pre → post "
        f"(last iterations) | held-out k=0 → k={steps} after the run |"
    )
    print("|---|---:|---:|---:|---|---|")
    for name in names if not args.no_train else raw_names:
        r = rows[name]
        ratio = fmt(r.raw / ref, 2) if r.raw is not None and ref else "–"
        prepost = f"{fmt(r.pre)} → {fmt(r.post)}" if r.pre is not None else "–"
        held = f"{fmt(r.eval_curve[0])} → {fmt(r.eval_curve[-1])}" if r.eval_curve else "–"
        if r.errors:
            held += " **error:** " + "; ".join(e.replace("|", "\\|").replace("\n", " ") for e in r.errors)
        print(f"| {name} | {fmt(r.raw, 0)} | {ratio} | {fmt(r.train_sps, 0)} | {prepost} | {held} |")
    print(f"\nWall time of this script: {wall:.0f} s.")
    return 1 if any(r.errors for r in rows.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
