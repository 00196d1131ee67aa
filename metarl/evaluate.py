"""``python -m metarl.evaluate``: meta-test adaptation curves against baselines on held-out tasks.

For each policy (meta-policies from ``--checkpoint``, one per meta-training seed; multi-task
baselines from ``--multitask``; random initialisations), adapt to each of the family's held-out
meta-test tasks with ``--steps`` updates of ``--episodes-per-step`` episodes (the MAML/ProMP
protocol: k = 0..3, 20 episodes) and record the mean return after each step. An oracle reference
trains the meta-policy's training inner loop (e.g. PPO) from scratch on ``--oracle-tasks`` held-out
tasks (spread over the set) for ``--oracle-steps``
updates. Writes ``results.json``, ``curves.png`` (means with 95 % bootstrap confidence bands,
resampling seeds then tasks), ``video_taskNN.mp4`` for ``--videos`` held-out tasks (the first meta-policy before and
after adapting) and TensorBoard scalars to ``--out``, and the meta-policy's margin over
each baseline with a paired bootstrap band (the same tasks and evaluation seeds on both sides). For
families that define success (Meta-World), each curve also has ``success_mean[k]``: the fraction of
episodes after ``k`` steps that succeeded at some step.
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_text_atomic
from .cli import Parser, add_budget_arguments, add_inner_loop_arguments, fail, inner_loop_overrides
from .envs import FAMILIES, get_family
from .lock import FolderInUse, FolderLock
from .plots import plot_curves
from .progress import progress_bar, timer_bar
from .stats import bootstrap_ci, paired_difference_ci

_fail = functools.partial(fail, "metarl.evaluate")


def build_parser() -> Parser:
    p = Parser(prog="python -m metarl.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--env", required=True, help=f"task family: {', '.join(FAMILIES)}, or package.module:Name for your own"
    )
    for flag, text in (
        ("--checkpoint", "meta-policy to evaluate; repeat once per meta-training seed (default: the shipped one)"),
        ("--multitask", "multi-task baseline checkpoint (trained without adaptation); repeat per seed"),
    ):
        p.add_argument(flag, type=Path, action="append", default=[], metavar="PATH|RUN_DIR", help=text)
    add_inner_loop_arguments(p, "for every policy and baseline: each one's")
    p.add_argument(
        "--task-set",
        choices=("held-out", "train"),
        default="held-out",
        help="'held-out': the family's meta-test tasks (default); 'train': --tasks fresh draws from the training "
        "distribution (seeded by --seed), for tuning without touching the held-out set",
    )
    p.add_argument("--random-seeds", type=int, default=3, help="random-initialisation baselines (default: 3)")
    p.add_argument(
        "--oracle-tasks",
        type=int,
        default=5,
        help="held-out tasks, spread evenly over the set, for the PPO-from-scratch oracle (0: none; default: 5)",
    )
    p.add_argument(
        "--oracle-steps",
        type=int,
        default=100,
        help="oracle updates (the training inner loop's) of --episodes-per-step episodes each (default: 100)",
    )
    p.add_argument("--tasks", type=int, default=40, help="tasks (held-out: at most the family's 40; default: 40)")
    add_budget_arguments(p, "the first meta-policy's")
    p.add_argument("--seed", type=int, default=1000, help="evaluation seed, separate from training seeds")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/eval__<env>__<time>)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs (default: 2000)")
    p.add_argument(
        "--videos",
        type=int,
        default=3,
        help="held-out tasks, spread over the set, with a video of the (first) meta-policy before and after adapting, "
        "video_taskNN.mp4 next to curves.png (0: none; default: 3)",
    )
    return p


def _summary(name: str, returns: np.ndarray, sources: list[str], args: argparse.Namespace) -> dict[str, Any]:
    mean, lo, hi = bootstrap_ci(returns, args.bootstrap, seed=args.seed)
    return {
        "name": name,
        "sources": sources,
        "mean": mean.tolist(),
        "ci95_low": lo.tolist(),
        "ci95_high": hi.tolist(),
        "per_seed_mean": returns.mean(axis=2).tolist(),
        "per_task": returns.tolist(),
    }


_LEARNER_NAMES = {"reptile": "Reptile", "maml": "MAML", "fomaml": "FO-MAML"}


def _load(args: argparse.Namespace, family: Any) -> tuple[list[Any], list[Any]]:
    """The meta-policies and multi-task baselines, with the ``--agent``/``--inner-lr``/``--target-kl`` overrides."""
    from .policy import MetaPolicy

    metas = [MetaPolicy.load(p, family.family_name) for p in args.checkpoint] or [
        MetaPolicy.pretrained(family.family_name)
    ]
    multis = [MetaPolicy.load(p, family.family_name) for p in args.multitask]
    changes = inner_loop_overrides(args)
    if changes:
        metas = [m.with_inner_loop(**changes) for m in metas]
        multis = [m.with_inner_loop(**changes) for m in multis]
    return metas, multis


def _random_inits(reference: Any, count: int) -> list[Any]:
    """``count`` random initialisations in the reference meta-policy's layout, adapted by its inner loop."""
    from .agents import RunningNorm
    from .policy import MetaPolicy, _local_agent

    policies = []
    for s in range(count):
        agent = _local_agent(reference.family, reference.config)
        theta = agent.init_params(10_000 + s)
        agent.close()
        norm = RunningNorm(agent.obs_dim)
        policies.append(
            MetaPolicy(reference.family, reference.config, theta, norm, source=f"random init (seed {10_000 + s})")
        )
    return policies


def _spread(n: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``0 .. n - 1`` (for HalfCheetahDir, whose held-out set is 20 x +1 then
    20 x -1: both directions)."""
    return sorted({int(round(i)) for i in np.linspace(0, n - 1, min(count, n))})


def _videos(out: Path, adapted: list[Any], meta: Any, count: int) -> list[dict[str, Any]]:
    """``video_taskNN.mp4`` for ``count`` tasks spread over the set: ``meta`` before and after adapting to each."""
    from .envs import RenderError
    from .video import adaptation_frames, check_rendering, write_video

    if not (count and meta.family.has_renderer()):
        return []
    try:
        check_rendering(meta.family)
    except RenderError as e:
        print(f"metarl.evaluate: warning: no videos ({e})", file=sys.stderr)
        return []
    written = []
    for j in _spread(len(adapted), count):
        a = adapted[j]
        steps = len(a.returns) - 1
        row = [(meta, a.task, "before adapting"), (a, a.task, f"after {steps} step{'s' if steps != 1 else ''}")]
        frames, fps = adaptation_frames([row], seed=j)
        path = write_video(out / f"video_task{j:02d}.mp4", frames, fps)
        written.append({"file": path.name, "task": a.task.to_dict(), "returns": a.returns})
    return written


def _oracle(
    reference: Any, tasks: list[Any], args: argparse.Namespace, episodes: int, say: Any = print
) -> dict[str, Any] | None:
    """The training inner loop from a random initialisation for ``--oracle-steps`` updates on a few tasks."""
    from .agents import RunningNorm, make_agent

    if not (args.oracle_tasks and args.oracle_steps):
        return None
    o_tasks = [tasks[i] for i in _spread(len(tasks), args.oracle_tasks)]
    t0 = time.perf_counter()
    cfg = reference.config
    agent = make_agent(reference.family, cfg.inner, cfg.hidden, cfg.log_std_init)  # threads: all cores
    theta = agent.init_params(20_000)
    seeds = [(args.seed, 1, j) for j in range(len(o_tasks))]
    res = agent.adapt(theta, o_tasks, cfg.inner, args.oracle_steps, episodes, RunningNorm(agent.obs_dim), seeds)
    agent.close()
    final = res.returns[-1].numpy().astype(float)
    per_task_steps = res.env_steps // len(o_tasks)
    oracle = {
        "tasks": [t.to_dict() for t in o_tasks],
        "agent": cfg.inner.agent,
        "updates": args.oracle_steps,
        "env_steps_per_task": per_task_steps,
        "per_task": final.tolist(),
        "mean": float(final.mean()),
        "label": f"{cfg.inner.agent} from scratch, {len(o_tasks)} tasks, {per_task_steps / 1e6:.2f}M steps each",
    }
    say(f"  oracle ({oracle['label']}): {oracle['mean']:.1f} ({time.perf_counter() - t0:.0f} s)")
    return oracle


def _write_tensorboard(out: Path, results: list[dict[str, Any]], oracle: dict[str, Any] | None) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out))
    for c in results:
        tag = c["name"].split(" (")[0].replace(" ", "_")
        for k, (m, lo, hi) in enumerate(zip(c["mean"], c["ci95_low"], c["ci95_high"])):
            writer.add_scalar(f"evaluate/{tag}/return", m, k)
            writer.add_scalar(f"evaluate/{tag}/ci95_low", lo, k)
            writer.add_scalar(f"evaluate/{tag}/ci95_high", hi, k)
        for k, rate in enumerate(c.get("success_mean", [])):
            writer.add_scalar(f"evaluate/{tag}/success_rate", rate, k)
    if oracle is not None:
        writer.add_scalar("evaluate/oracle/return", oracle["mean"], 0)
    writer.close()


def _print_table(results: list[dict[str, Any]], comparisons: list[dict[str, Any]], oracle: Any, steps: int) -> None:
    header = "| policy | " + " | ".join(f"k={k}" for k in range(steps + 1)) + " |"
    print("\n" + header + "\n|" + "---|" * (steps + 2))
    for c in results:
        cells = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(c["mean"], c["ci95_low"], c["ci95_high"])]
        print(f"| {c['name']} ({len(c['sources'])}) | " + " | ".join(cells) + " |")
        if "success_mean" in c:
            print(f"| {c['name']}: success rate | " + " | ".join(f"{r:.2f}" for r in c["success_mean"]) + " |")
    if oracle is not None:
        print(f"| oracle, {oracle['label']} | {oracle['mean']:.1f} |")
    for c in comparisons:
        cells = [
            f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in zip(c["difference"], c["ci95_low"], c["ci95_high"])
        ]
        print(f"| meta-policy minus {c['baseline']} (paired over tasks) | " + " | ".join(cells) + " |")


def main(argv: list[str] | None = None) -> int:
    import torch

    from .checkpoint import CheckpointError

    args = build_parser().parse_args(argv)
    for flag in ("tasks", "episodes_per_step", "bootstrap"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            return _fail(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    for flag in ("steps", "random_seeds", "oracle_tasks", "oracle_steps", "videos"):
        if getattr(args, flag) is not None and getattr(args, flag) < 0:
            return _fail(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    try:
        family = get_family(args.env)
    except KeyError as e:
        return _fail(str(e.args[0]))
    torch.set_num_threads(1)
    try:
        metas, multis = _load(args, family)
    except CheckpointError as e:
        return _fail(str(e), code=1)
    except ValueError as e:  # an inner-loop override that cannot work
        return _fail(str(e))
    reference = metas[0]
    steps, episodes = reference.budget(args.steps, args.episodes_per_step)
    if args.task_set == "train":
        tasks = family.sample_tasks(args.tasks, np.random.default_rng([args.seed, 7]))
    else:
        tasks = family.meta_test_tasks()[: args.tasks]
    out = args.out or Path("runs") / f"eval__{family.family_name}__{time.strftime('%Y%m%d-%H%M%S')}"
    try:  # one writer per folder: a training run or another evaluation there is refused (metarl/lock.py)
        lock = FolderLock(out, "--out").acquire()
    except FolderInUse as e:
        return _fail(str(e))
    except OSError as e:
        return _fail(f"cannot create --out {out} ({e.strerror or e}); choose another --out")
    with lock:
        return _evaluate(args, argv, family, metas, multis, tasks, steps, episodes, out)


def _evaluate(
    args: argparse.Namespace,
    argv: list[str] | None,
    family: Any,
    metas: list[Any],
    multis: list[Any],
    tasks: list[Any],
    steps: int,
    episodes: int,
    out: Path,
) -> int:
    """Adapt every policy, write results.json, curves.png and TensorBoard scalars to ``out`` (locked)."""
    reference = metas[0]
    seeds = [(args.seed, j) for j in range(len(tasks))]
    print(
        f"metarl.evaluate: {family.family_name}, {len(tasks)} {args.task_set} tasks, k = 0..{steps}, "
        f"{episodes} episodes per step, evaluation seed {args.seed}; writing {out}"
    )

    success: dict[str, np.ndarray] = {}  # policy source -> (K + 1, tasks), for families that define success
    first_adapted: list[Any] = []  # the first meta-policy adapted to every task (for the videos)
    randoms = _random_inits(reference, args.random_seeds)
    has_oracle = bool(args.oracle_tasks and args.oracle_steps)
    units = len(metas) + len(multis) + len(randoms) + has_oracle + bool(args.videos)
    bar = progress_bar(True, total=units, desc="metarl.evaluate", unit="part")
    last = [None]  # seconds of the last part: what the next one's own bar expects (policies take about as long)

    def say(line: str) -> None:
        bar.write(line, file=sys.stdout) if not bar.disable else print(line, flush=True)

    def part(what: str, run: Any) -> Any:
        t0 = time.perf_counter()
        with timer_bar(True, what, last[0]):
            out = run()
        last[0] = time.perf_counter() - t0
        bar.update(1)
        return out

    def curves_of(policies: list[Any]) -> np.ndarray:
        rows = []
        for pol in policies:
            t0 = time.perf_counter()
            adapted = part(pol.source, functools.partial(pol.adapt_many, tasks, steps, episodes, seeds))
            if pol is reference:
                first_adapted.extend(adapted)
            rows.append(np.array([a.returns for a in adapted]).T)  # (K + 1, tasks)
            if adapted[0].success is not None:
                success[pol.source] = np.array([a.success for a in adapted]).T
            curve = " -> ".join(f"{r:.1f}" for r in rows[-1].mean(1))
            say(f"  {pol.source}: {curve} ({time.perf_counter() - t0:.0f} s)")
        return np.stack(rows)

    results: list[dict[str, Any]] = []
    learners = sorted({m.config.meta_learner for m in metas})
    meta_name = f"meta-policy ({', '.join(_LEARNER_NAMES.get(x, x) for x in learners)})"
    groups = [
        (meta_name, metas),
        ("multi-task baseline", multis),
        ("random init", randoms),
    ]
    curves: dict[str, np.ndarray] = {}
    for name, policies in groups:
        if policies:
            curves[name] = curves_of(policies)
            results.append(_summary(name, curves[name], [p.source for p in policies], args))
            if success:  # success rate: fraction of successful episodes, mean over seeds and tasks
                rates = np.stack([success[p.source] for p in policies])  # (seeds, K + 1, tasks)
                results[-1]["success_mean"] = rates.mean(axis=(0, 2)).tolist()
                results[-1]["success_per_task"] = rates.tolist()

    comparisons = []  # the meta-policy minus each baseline, paired over the shared tasks
    for name in ("multi-task baseline", "random init"):
        if meta_name in curves and name in curves:
            d, lo, hi = paired_difference_ci(curves[meta_name], curves[name], args.bootstrap, args.seed)
            comparisons.append(
                {"baseline": name, "difference": d.tolist(), "ci95_low": lo.tolist(), "ci95_high": hi.tolist()}
            )
    oracle = part("oracle", lambda: _oracle(reference, tasks, args, episodes, say)) if has_oracle else None
    videos = part("videos", lambda: _videos(out, first_adapted, reference, args.videos)) if args.videos else []
    bar.close()
    adapt = reference.config.adapt
    doc = {
        "env": family.family_name,
        "task_set": args.task_set,
        "tasks": [t.to_dict() for t in tasks],
        "steps": steps,
        "episodes_per_step": episodes,
        "evaluation_seed": args.seed,
        "training_seeds": [p.config.seed for p in metas],
        "agent": adapt.agent,  # the inner loop that adapted
        "target_kl": adapt.target_kl,
        "inner_loop": adapt.to_dict(),
        "inner_loop_overrides": inner_loop_overrides(args),
        "curves": results,
        "meta_policy_minus_baseline": comparisons,
        "oracle": oracle,
        "videos": videos,
        "command": ["python", "-m", "metarl.evaluate", *(argv if argv is not None else sys.argv[1:])],
    }
    write_text_atomic(out / "results.json", json.dumps(doc, indent=1) + "\n")
    plot_curves(out / "curves.png", results, oracle, f"{family.family_name}: {len(tasks)} {args.task_set} tasks")
    _write_tensorboard(out, results, oracle)
    _print_table(results, comparisons, oracle, steps)
    also = f" and {len(videos)} videos (video_task*.mp4)" if videos else ""
    print(f"\nmetarl.evaluate: wrote {out / 'results.json'}, {out / 'curves.png'}{also}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
