"""``python -m metarl.evaluate``: meta-test adaptation curves against baselines on held-out tasks.

For each policy (meta-policies from ``--checkpoint``, one per meta-training seed; multi-task
baselines from ``--multitask``; random initialisations), adapt to each of the family's held-out
meta-test tasks with ``--steps`` updates of ``--episodes-per-step`` episodes (the MAML/ProMP
protocol: k = 0..3, 20 episodes) and record the mean return after each step. An oracle reference
trains PPO from scratch on ``--oracle-tasks`` held-out tasks (spread over the set) for ``--oracle-steps``
updates. Writes ``results.json``, ``curves.png`` (means with 95 % bootstrap confidence bands,
resampling seeds then tasks) and TensorBoard scalars to ``--out``, and the meta-policy's margin over
each baseline with a paired bootstrap band (the same tasks and evaluation seeds on both sides). For
families that define success (Meta-World), each curve also has ``success_mean[k]``: the fraction of
episodes after ``k`` steps that succeeded at some step.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from .config import AGENTS
from .envs import FAMILIES, get_family


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m metarl.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--env", required=True, help=f"task family: {', '.join(FAMILIES)}")
    p.add_argument(
        "--checkpoint",
        type=Path,
        action="append",
        default=[],
        metavar="PATH|RUN_DIR",
        help="meta-policy to evaluate; repeat once per meta-training seed (default: the shipped one)",
    )
    p.add_argument(
        "--multitask",
        type=Path,
        action="append",
        default=[],
        metavar="PATH|RUN_DIR",
        help="multi-task baseline checkpoint (trained without adaptation); repeat per seed",
    )
    p.add_argument(
        "--agent",
        choices=AGENTS,
        default=None,
        help="inner-loop agent that adapts every policy and baseline (default: each one's meta-test inner loop)",
    )
    p.add_argument(
        "--inner-lr", type=float, default=None, help="inner-loop learning rate of every policy (default: its own)"
    )
    p.add_argument(
        "--target-kl", type=float, default=None, help="trpo trust region for every policy (default: each one's own)"
    )
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
        help="oracle PPO updates of --episodes-per-step episodes each (default: 100)",
    )
    p.add_argument("--tasks", type=int, default=40, help="tasks (held-out: at most the family's 40; default: 40)")
    p.add_argument("--steps", type=int, default=3, help="adaptation steps (default: 3)")
    p.add_argument("--episodes-per-step", type=int, default=20, help="episodes per step (default: 20)")
    p.add_argument("--seed", type=int, default=1000, help="evaluation seed, separate from training seeds")
    p.add_argument("--out", type=Path, default=None, help="output folder (default: runs/eval__<env>__<time>)")
    p.add_argument("--bootstrap", type=int, default=2000, help="bootstrap resamples for the CIs (default: 2000)")
    return p


def bootstrap_ci(
    returns: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and bootstrap confidence band of ``returns[seed, k, task]`` over seeds and tasks.

    Resamples seeds with replacement, then tasks within each drawn seed (hierarchical), so the band
    covers the variation between meta-training seeds as well as between tasks.

    Returns:
        ``(mean, low, high)``, each of shape ``(K + 1,)``.
    """
    rng = np.random.default_rng(seed)
    n_seeds, _, n_tasks = returns.shape
    s_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    t_idx = rng.integers(0, n_tasks, size=(resamples, n_seeds, n_tasks))
    # draws[b, s, k, t] = returns[s_idx[b, s], k, t_idx[b, s, t]]
    draws = returns[s_idx[:, :, None, None], np.arange(returns.shape[1])[None, None, :, None], t_idx[:, :, None, :]]
    means = draws.mean(axis=(1, 3))
    alpha = (1.0 - level) / 2.0
    return returns.mean(axis=(0, 2)), np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and bootstrap band of ``mean(a) - mean(b)`` for curves on the same tasks, ``x[seed, k, task]``.

    The tasks are shared, so each resample draws one set of task indices for both (paired), and the
    seeds of each side independently: the band covers seed-to-seed variation on both sides and task
    sampling, without counting the spread between easy and hard tasks twice.

    Returns:
        ``(difference, low, high)``, each of shape ``(K + 1,)``.
    """
    rng = np.random.default_rng(seed)
    n_tasks = a.shape[2]
    t_idx = rng.integers(0, n_tasks, size=(resamples, n_tasks))
    sa = rng.integers(0, a.shape[0], size=(resamples, a.shape[0]))
    sb = rng.integers(0, b.shape[0], size=(resamples, b.shape[0]))
    ks = np.arange(a.shape[1])[None, None, :, None]

    def means(x: np.ndarray, s_idx: np.ndarray) -> np.ndarray:  # (resamples, K + 1)
        return x[s_idx[:, :, None, None], ks, t_idx[:, None, None, :]].mean(axis=(1, 3))

    diffs = means(a, sa) - means(b, sb)
    alpha = (1.0 - level) / 2.0
    return (
        a.mean(axis=(0, 2)) - b.mean(axis=(0, 2)),
        np.quantile(diffs, alpha, axis=0),
        np.quantile(diffs, 1 - alpha, axis=0),
    )


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


def _plot(path: Path, curves: list[dict[str, Any]], oracle: dict[str, Any] | None, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for c in curves:
        k = np.arange(len(c["mean"]))
        n = len(c["sources"])
        ax.plot(k, c["mean"], marker="o", label=f"{c['name']} ({n} seed{'s' if n != 1 else ''})")
        ax.fill_between(k, c["ci95_low"], c["ci95_high"], alpha=0.2)
    if oracle is not None:
        ax.axhline(oracle["mean"], color="k", linestyle="--", label=f"oracle: PPO from scratch ({oracle['label']})")
    ax.set_xlabel("adaptation steps k")
    ax.set_ylabel("mean episode return")
    ax.set_xticks(range(len(curves[0]["mean"])))
    ax.set_title(title)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _fail(msg: str, code: int = 2) -> int:
    print(f"metarl.evaluate: error: {msg}", file=sys.stderr)
    return code


def main(argv: list[str] | None = None) -> int:
    import torch
    from torch.utils.tensorboard import SummaryWriter

    from .agents import RunningNorm
    from .checkpoint import CheckpointError
    from .policy import MetaPolicy
    from .trainer import make_agent

    args = build_parser().parse_args(argv)
    for flag in ("tasks", "episodes_per_step", "bootstrap"):
        if getattr(args, flag) <= 0:
            return _fail(f"--{flag.replace('_', '-')} must be positive, got {getattr(args, flag)}")
    for flag in ("steps", "random_seeds", "oracle_tasks", "oracle_steps"):
        if getattr(args, flag) < 0:
            return _fail(f"--{flag.replace('_', '-')} must be >= 0, got {getattr(args, flag)}")
    try:
        family = get_family(args.env)
    except KeyError as e:
        return _fail(str(e.args[0]))
    torch.set_num_threads(1)
    try:
        metas = [MetaPolicy.load(p, family.family_name) for p in args.checkpoint] or [
            MetaPolicy.pretrained(family.family_name)
        ]
        multis = [MetaPolicy.load(p, family.family_name) for p in args.multitask]
    except CheckpointError as e:
        return _fail(str(e), code=1)
    changes = {k: getattr(args, k) for k in ("agent", "inner_lr", "target_kl") if getattr(args, k) is not None}
    if changes:
        try:
            metas = [m.with_inner_loop(**changes) for m in metas]
            multis = [m.with_inner_loop(**changes) for m in multis]
        except ValueError as e:  # ConfigError too
            return _fail(str(e))
    if args.task_set == "train":
        tasks = family.sample_tasks(args.tasks, np.random.default_rng([args.seed, 7]))
    else:
        tasks = family.meta_test_tasks()[: args.tasks]
    seeds = [(args.seed, j) for j in range(len(tasks))]
    out = args.out or Path("runs") / f"eval__{family.family_name}__{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    print(
        f"metarl.evaluate: {family.family_name}, {len(tasks)} {args.task_set} tasks, k = 0..{args.steps}, "
        f"{args.episodes_per_step} episodes per step, evaluation seed {args.seed}; writing {out}"
    )

    success: dict[str, np.ndarray] = {}  # policy source -> (K + 1, tasks), for families that define success

    def curves_of(policies: list[MetaPolicy]) -> np.ndarray:
        rows = []
        for pol in policies:
            t0 = time.perf_counter()
            adapted = pol.adapt_many(tasks, args.steps, args.episodes_per_step, seeds)
            rows.append(np.array([a.returns for a in adapted]).T)  # (K + 1, tasks)
            if adapted[0].success is not None:
                success[pol.source] = np.array([a.success for a in adapted]).T
            print(
                f"  {pol.source}: {' -> '.join(f'{r:.1f}' for r in rows[-1].mean(1))} "
                f"({time.perf_counter() - t0:.0f} s)",
                flush=True,
            )
        return np.stack(rows)

    reference = metas[0]
    randoms = []
    for s in range(args.random_seeds):
        agent = make_agent(reference.config)
        theta = agent.init_params(10_000 + s)
        agent.close()
        randoms.append(
            MetaPolicy(
                family,
                reference.config,
                theta,
                RunningNorm(agent.obs_dim),
                source=f"random init (seed {10_000 + s})",
            )
        )
    results: list[dict[str, Any]] = []
    groups = [("meta-policy (Reptile)", metas), ("multi-task baseline", multis), ("random init", randoms)]
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
        if "meta-policy (Reptile)" in curves and name in curves:
            d, lo, hi = paired_difference_ci(curves["meta-policy (Reptile)"], curves[name], args.bootstrap, args.seed)
            comparisons.append(
                {"baseline": name, "difference": d.tolist(), "ci95_low": lo.tolist(), "ci95_high": hi.tolist()}
            )

    oracle = None
    if args.oracle_tasks and args.oracle_steps:
        # spread over the held-out set (for HalfCheetahDir, whose set is 20 x +1 then 20 x -1: both directions)
        picks = sorted({int(round(i)) for i in np.linspace(0, len(tasks) - 1, min(args.oracle_tasks, len(tasks)))})
        o_tasks = [tasks[i] for i in picks]
        t0 = time.perf_counter()
        agent = make_agent(reference.config)
        theta = agent.init_params(20_000)
        res = agent.adapt(
            theta,
            o_tasks,
            args.oracle_steps,
            args.episodes_per_step,
            RunningNorm(agent.obs_dim),
            [(args.seed, 1, j) for j in range(len(o_tasks))],
        )
        agent.close()
        final = res.returns[-1].numpy().astype(float)
        per_task_steps = res.env_steps // len(o_tasks)
        oracle = {
            "tasks": [t.to_dict() for t in o_tasks],
            "updates": args.oracle_steps,
            "env_steps_per_task": per_task_steps,
            "per_task": final.tolist(),
            "mean": float(final.mean()),
            "label": f"{len(o_tasks)} tasks, {per_task_steps / 1e6:.2f}M steps each",
        }
        print(
            f"  oracle (PPO from scratch, {oracle['label']}): {oracle['mean']:.1f} ({time.perf_counter() - t0:.0f} s)"
        )

    doc = {
        "env": family.family_name,
        "task_set": args.task_set,
        "tasks": [t.to_dict() for t in tasks],
        "steps": args.steps,
        "episodes_per_step": args.episodes_per_step,
        "evaluation_seed": args.seed,
        "training_seeds": [p.config.seed for p in metas],
        "agent": metas[0].config.for_adaptation().agent,  # the inner loop that adapted
        "target_kl": metas[0].config.for_adaptation().target_kl,
        "inner_loop_overrides": changes,
        "curves": results,
        "meta_policy_minus_baseline": comparisons,
        "oracle": oracle,
        "command": ["python", "-m", "metarl.evaluate", *(argv if argv is not None else sys.argv[1:])],
    }
    (out / "results.json").write_text(json.dumps(doc, indent=1) + "\n")
    _plot(out / "curves.png", results, oracle, f"{family.family_name}: {len(tasks)} {args.task_set} tasks")
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

    header = "| policy | " + " | ".join(f"k={k}" for k in range(args.steps + 1)) + " |"
    print("\n" + header + "\n|" + "---|" * (args.steps + 2))
    for c in results:
        cells = [f"{m:.1f} [{lo:.1f}, {hi:.1f}]" for m, lo, hi in zip(c["mean"], c["ci95_low"], c["ci95_high"])]
        print(f"| {c['name']} ({len(c['sources'])}) | " + " | ".join(cells) + " |")
        if "success_mean" in c:
            print(f"| {c['name']}: success rate | " + " | ".join(f"{r:.2f}" for r in c["success_mean"]) + " |")
    if oracle is not None:
        print(f"| oracle, PPO from scratch ({oracle['label']}) | {oracle['mean']:.1f} |")
    for c in comparisons:
        cells = [
            f"{d:+.1f} [{lo:+.1f}, {hi:+.1f}]" for d, lo, hi in zip(c["difference"], c["ci95_low"], c["ci95_high"])
        ]
        print(f"| meta-policy minus {c['baseline']} (paired over tasks) | " + " | ".join(cells) + " |")
    print(f"\nmetarl.evaluate: wrote {out / 'results.json'} and {out / 'curves.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
