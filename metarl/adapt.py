"""``python -m metarl.adapt``: adapt a meta-policy to one task in a few gradient steps.

Prints the mean episode return before adapting and after each step; ``--json`` prints one JSON object
``{"env", "task", "episodes_per_step", "returns", "env_steps", "seconds", "checkpoint", "agent", "video"}`` where
``returns[k]`` is the mean return of the ``E`` episodes sampled after ``k`` adaptation steps. ``--video PATH``
(``.mp4``, ``.gif``) writes one deterministic episode before adapting and after each step, side by side
(metarl/video.py).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

from .cli import Parser, add_budget_arguments, add_inner_loop_arguments, budget_error, fail, inner_loop_overrides
from .envs import FAMILIES, RenderError, TaskError, get_family
from .video import check_rendering, video_path_error

_fail = functools.partial(fail, "metarl.adapt")


def build_parser() -> Parser:
    p = Parser(
        prog="python -m metarl.adapt",
        description="Adapt a (pretrained) meta-policy to one task and report the return after each step.",
    )
    p.add_argument(
        "--env",
        default=None,
        help=f"task family: {', '.join(FAMILIES)} (or metarl/<Name>-v0, or package.module:Name for your own); "
        "default with --checkpoint: the checkpoint's (required without)",
    )
    p.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        metavar="PATH|RUN_DIR",
        help="checkpoint file or run folder (default: the pretrained meta-policy shipped for --env)",
    )
    p.add_argument(
        "--task",
        default=None,
        help="the task, as key=value[,key=value] or JSON, e.g. velocity=1.3, direction=-1, goal=0.1:-0.2 "
        "(default: a task sampled with --seed, printed)",
    )
    add_inner_loop_arguments(p, "the meta-policy's")  # native agents adapt native meta-policies, sb3-* sb3-* ones
    add_budget_arguments(p, "the meta-policy's")
    p.add_argument("--seed", type=int, default=0, help="seed of the sampled task and of the sampling (default: 0)")
    p.add_argument(
        "--save",
        type=Path,
        default=None,
        metavar="PATH",
        help="write the adapted policy here (a checkpoint that MetaPolicy.load reads)",
    )
    p.add_argument(
        "--video",
        type=Path,
        default=None,
        metavar="PATH",
        help="write a video (.mp4 or .gif) of one deterministic episode before adapting and after each step, side "
        "by side, each labelled with the step, the task and its return (headless: MUJOCO_GL=egl is chosen when no "
        "display is set)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    p.add_argument(
        "--list",
        action="store_true",
        help="list the shipped pretrained meta-policies, each with its measured held-out curve, and exit "
        "(as python -m metarl.pretrained)",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    import numpy as np
    import torch

    from .checkpoint import CheckpointError
    from .policy import MetaPolicy
    from .tasks import parse_task, warn_if_out_of_distribution

    args = build_parser().parse_args(argv)
    if args.list:
        from .pretrained import main as list_shipped

        return list_shipped(["--json"] if args.json else [])
    if budget_error(args):
        return _fail(budget_error(args))
    if args.env is None and args.checkpoint is None:
        return _fail("give --env (the shipped meta-policy of that family) or --checkpoint PATH|RUN_DIR")
    try:
        family = get_family(args.env) if args.env is not None else None
    except KeyError as e:
        return _fail(str(e.args[0]))
    try:
        task = parse_task(family, args.task) if family is not None and args.task is not None else None
    except TaskError as e:
        return _fail(str(e))
    if args.save is not None and args.save.is_dir():
        return _fail(f"--save {args.save} is a folder; give a file path such as {args.save / 'adapted.pt'}")
    if args.video is not None and video_path_error(args.video):
        return _fail(video_path_error(args.video))
    torch.set_num_threads(1)
    try:
        if args.checkpoint is not None:
            meta = MetaPolicy.load(args.checkpoint, family=family.family_name if family is not None else None)
        else:
            meta = MetaPolicy.pretrained(family.family_name)
    except CheckpointError as e:
        return _fail(str(e), code=1 if args.checkpoint is not None and Path(args.checkpoint).exists() else 2)
    if family is None:  # the checkpoint's own family (its run's --env, imported where it is module:Name)
        family = meta.family
        try:
            task = parse_task(family, args.task) if args.task is not None else None
        except TaskError as e:
            return _fail(str(e))
    changes = inner_loop_overrides(args)
    if changes:
        try:
            meta = meta.with_inner_loop(**changes)
        except ValueError as e:
            return _fail(str(e))
    if args.video is not None:
        try:
            check_rendering(family)
        except RenderError as e:
            return _fail(str(e))
    steps, episodes = meta.budget(args.steps, args.episodes_per_step)
    sampled = task is None
    if task is None:
        task = family.sample_tasks(1, np.random.default_rng(args.seed))[0]
    else:
        warn_if_out_of_distribution(family, task)
    t0 = time.perf_counter()
    adapted = meta.adapt(task, steps=steps, episodes_per_step=episodes, seed=args.seed, video=args.video)
    seconds = time.perf_counter() - t0
    if args.save is not None:
        adapted.save(args.save)
    if args.json:
        print(
            json.dumps(
                {
                    "env": family.family_name,
                    "task": task.to_dict(),
                    "episodes_per_step": episodes,
                    "returns": adapted.returns,
                    "env_steps": adapted.env_steps,
                    "seconds": round(seconds, 3),
                    "checkpoint": meta.source,
                    "agent": meta.config.adapt.agent,
                    "video": None if args.video is None else str(args.video),
                }
            )
        )
        return 0
    origin = "sampled" if sampled else "given"
    print(
        f"metarl.adapt: {family.family_name}, task {json.dumps(task.to_dict())} ({origin}), meta-policy {meta.source}"
    )
    for k, r in enumerate(adapted.returns):
        label = "before adapting" if k == 0 else f"after step {k}"
        print(f"  {label:>16}: mean return {r:9.2f} over {episodes} episodes")
    print(
        f"metarl.adapt: {adapted.env_steps} env steps in {seconds:.2f} s"
        + (f"; adapted policy saved to {args.save}" if args.save else "")
        + (f"; video written to {args.video}" if args.video else "")
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
