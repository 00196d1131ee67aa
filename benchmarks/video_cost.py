"""What eval/video costs in a default run: the rendering against the run's training and evaluation time.

Measures, in one process with the family's preset (``python -m metarl.train --env ENV`` with no other flag): the
wall-clock of ``--iterations`` meta-iterations, of one periodic evaluation, and of ``--repeats`` videos as the run
logs them (render both episodes, encode the GIF); then projects the default run: ``meta_iters`` iterations, an
evaluation at iteration 0, every ``eval_every`` and at the end, a video at every ``video_every``-th of them.

    python benchmarks/video_cost.py --env HalfCheetahVel
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import metarl  # noqa: F401  (MUJOCO_GL, registration)
from metarl.config import resolve_flags
from metarl.progress import evaluations_due
from metarl.runner import eval_video, video_due
from metarl.trainer import MetaTrainer
from metarl.video import check_rendering, encode


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--iterations", type=int, default=3, help="meta-iterations timed (default: 3)")
    p.add_argument("--repeats", type=int, default=3, help="videos timed (default: 3)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    cfg, _ = resolve_flags({"env": args.env})
    check_rendering(cfg.family)
    trainer = MetaTrainer(cfg)
    try:
        t0 = time.perf_counter()
        ev = trainer.evaluate()
        eval_s = time.perf_counter() - t0
        iteration_s = []
        for _ in range(args.iterations):
            t0 = time.perf_counter()
            trainer.train_iteration()
            iteration_s.append(time.perf_counter() - t0)
        video_s = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            frames, fps = eval_video(trainer, ev)
            encode(frames, ".gif", fps)
            video_s.append(time.perf_counter() - t0)
    finally:
        trainer.close()
    it_s, vid_s = statistics.median(iteration_s), statistics.median(video_s)
    evals = 1 + evaluations_due(0, cfg.meta_iters, cfg.eval_every)
    eval_iterations = [0, *range(cfg.eval_every, cfg.meta_iters + 1, cfg.eval_every or cfg.meta_iters)]
    if eval_iterations[-1] != cfg.meta_iters:
        eval_iterations.append(cfg.meta_iters)
    videos = sum(video_due(cfg, i) for i in eval_iterations)
    run_s = cfg.meta_iters * it_s + evals * eval_s
    out = {
        "env": cfg.family_name,
        "meta_iters": cfg.meta_iters,
        "eval_every": cfg.eval_every,
        "video_every": cfg.video_every,
        "iteration_s_median": round(it_s, 2),
        "evaluation_s": round(eval_s, 1),
        "video_s_median": round(vid_s, 2),
        "video_frames": int(frames.shape[0]),
        "video_size": list(frames.shape[1:3]),
        "evaluations": evals,
        "videos": videos,
        "projected_run_s": round(run_s),
        "video_share_of_run_percent": round(100 * videos * vid_s / run_s, 2),
        "video_share_if_every_evaluation_percent": round(100 * evals * vid_s / run_s, 2),
    }
    if args.json:
        print(json.dumps(out))
        return
    for k, v in out.items():
        print(f"{k:>42}: {v}")


if __name__ == "__main__":
    main()
