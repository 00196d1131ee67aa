"""The README's GIF: the shipped HalfCheetahVel meta-policy before and after adapting to a slow and a fast target.

One row per target velocity, one column before adapting and one after the meta-policy's own adaptation (3 TRPO steps
of mean KL 2.0, 1.0, 0.5 over a linear baseline, Fisher damping 10, 20 episodes each), one deterministic episode per
cell, every second env step rendered (10 frames/s, real time); the labels give the step, the task and the episode's
return.
Written with metarl.video, the code behind ``python -m metarl.adapt --video``.

    python scripts/adaptation_gif.py docs/img/adapt_HalfCheetahVel.gif
"""

from __future__ import annotations

import argparse

import metarl
from metarl.video import adaptation_frames, check_rendering, write_video


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("out", help="the .gif (or .mp4) to write")
    p.add_argument("--velocities", default="0.3,1.8", help="target velocities, one row each (default: 0.3,1.8)")
    p.add_argument("--size", type=int, default=160, help="pixels of a cell (default: 160)")
    p.add_argument("--stride", type=int, default=2, help="render every N-th env step (default: 2)")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")
    check_rendering(meta.family)
    rows = []
    for v in (float(x) for x in args.velocities.split(",")):
        adapted = meta.adapt({"velocity": v}, seed=0)
        k = len(adapted.returns) - 1
        print(f"velocity {v}: mean return {' -> '.join(f'{r:.1f}' for r in adapted.returns)} over k = 0..{k}")
        rows.append([(meta, adapted.task, "before adapting"), (adapted, adapted.task, f"after {k} steps")])
    frames, fps = adaptation_frames(rows, size=args.size, seed=0, stride=args.stride)
    path = write_video(args.out, frames, fps)
    print(
        f"wrote {path}: {frames.shape[0]} frames of {frames.shape[2]} x {frames.shape[1]}, {path.stat().st_size} bytes"
    )


if __name__ == "__main__":
    main()
