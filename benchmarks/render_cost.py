"""What a rendered frame and an encoded GIF cost here: the numbers behind metarl/video.py's settings.

Per-frame render time of a HalfCheetah env at 160 x 160 with MuJoCo's default visual quality (4096-pixel shadow
map, 4x multisampling) and with the render env's (``TaskFamily.make_render_env``: 512 pixels, none); then a clip of
the shipped meta-policy (3 cells x 201 frames) encoded as GIF with a palette per frame (Pillow's default) and with
one palette per clip (``metarl.video.encode``): seconds and bytes.

    python benchmarks/render_cost.py
"""

from __future__ import annotations

import io
import statistics
import time

import numpy as np

import metarl
from metarl.envs import get_family
from metarl.video import adaptation_frames, encode


def frame_seconds(shadow: int | None, frames: int = 40) -> float:
    env = get_family("HalfCheetahVel").make_render_env({"velocity": 1.0}, 160, 160)
    if shadow is not None:  # MuJoCo's defaults instead of the render env's
        env.model.vis.quality.shadowsize, env.model.vis.quality.offsamples = shadow, 4
    env.reset(seed=0)
    env.render()  # the context and its buffers
    t0 = time.perf_counter()
    for _ in range(frames):
        env.step(np.zeros(env.action_space.shape))
        env.render()
    env.close()
    return (time.perf_counter() - t0) / frames


def main() -> None:
    default = statistics.median(frame_seconds(4096) for _ in range(3))
    cheap = statistics.median(frame_seconds(None) for _ in range(3))
    print(f"frame 160x160, MuJoCo default (shadow 4096, 4x MSAA): {default:.4f} s")
    print(f"frame 160x160, make_render_env (shadow 512, no MSAA):  {cheap:.4f} s")
    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")
    task = meta.family.task_type.from_dict({"velocity": 0.3})
    frames, fps = adaptation_frames([[(meta, task, "a"), (meta, task, "b"), (meta, task, "c")]])
    from PIL import Image

    t0 = time.perf_counter()
    images = [Image.fromarray(f) for f in frames]
    buf = io.BytesIO()
    images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=50, loop=0)
    per_frame_s, per_frame_b = time.perf_counter() - t0, len(buf.getvalue())
    t0 = time.perf_counter()
    clip_b = len(encode(frames, ".gif", fps))
    clip_s = time.perf_counter() - t0
    shape = f"{frames.shape[0]} frames of {frames.shape[2]}x{frames.shape[1]}"
    print(f"GIF, {shape}, a palette per frame: {per_frame_s:.2f} s, {per_frame_b / 1e6:.2f} MB")
    print(f"GIF, {shape}, one palette per clip: {clip_s:.2f} s, {clip_b / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
