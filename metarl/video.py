"""Videos of a policy before and after adapting: render episodes, label them, tile them, encode them.

Every video shows one deterministic episode (the Gaussian's mean) per policy, rendered by Gymnasium's MuJoCo
renderer on an env of its own (:meth:`~metarl.envs.TaskFamily.make_render_env`, reset with its own seed), so
rendering consumes no random numbers of training or evaluation and changes no result. Each segment carries its
label in the frames: the step (``before adapting``, ``after step k``), the task and the episode's return.
Segments play side by side (one row per task, one column per step).

Encoding: ``.gif`` with Pillow (matplotlib's dependency), ``.mp4`` (H.264) with imageio's ffmpeg plugin, whose
``imageio-ffmpeg`` wheel carries the ffmpeg binary; both are core dependencies. TensorBoard gets the GIF bytes
as an image summary (``eval/video``), which is what ``SummaryWriter.add_video`` writes too, without its moviepy
dependency.

Headless machines: ``import metarl`` sets ``MUJOCO_GL=egl`` where no display is set and the user chose nothing
(metarl/gl.py), and :func:`check_rendering` turns a backend that does not work into one
:class:`~metarl.envs.RenderError` line that says what to install and which variable to set.
"""

from __future__ import annotations

import io
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .checkpoint import write_atomic
from .envs import RenderError, Task, TaskFamily
from .gl import select_gl_backend
from .tasks import task_text

#: The containers a video may be written as.
VIDEO_SUFFIXES = (".mp4", ".gif")
#: Pixels of one segment (square): small, so that rendering stays cheap on a software renderer.
SIZE = 160

_rendering_ok: set[str] = set()


def check_rendering(family: type[TaskFamily]) -> None:
    """Render one small frame of ``family``, or raise :class:`RenderError` (one line: what to install, what to set)."""
    if family.family_name in _rendering_ok:
        return
    backend = select_gl_backend()
    try:
        with warnings.catch_warnings():  # glfw warns on stderr for each failed call: the one line below says it
            warnings.simplefilter("ignore")
            _probe_context(backend)  # first, so that a failure leaves no half-built Gymnasium viewer behind
            env = family.make_render_env(family.meta_test_tasks()[0], 16, 16)
            try:
                env.reset(seed=0)
                frame = env.render()
            finally:
                _close(env)
    except RenderError:
        raise
    except Exception as e:  # ImportError (no libEGL / libOSMesa), RuntimeError, mujoco.FatalError, ...
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
        raise RenderError(
            f"no OpenGL backend renders MuJoCo here (MUJOCO_GL={backend or '(unset)'}: {first}); install Mesa's EGL "
            "(Debian/Ubuntu: apt-get install libegl1 libgl1-mesa-dri) and set MUJOCO_GL=egl, or set MUJOCO_GL=glfw "
            "with a display"
        ) from None
    if frame is None or frame.ndim != 3:
        raise RenderError(f"{family.family_name}: render() returned no RGB frame")
    _rendering_ok.add(family.family_name)


def _probe_context(backend: str) -> None:
    """Make and free a 16 x 16 context of ``backend`` (unset: the first of glfw, egl, osmesa, as Gymnasium tries)."""
    import importlib

    errors = []
    for name in [backend] if backend else ["glfw", "egl", "osmesa"]:
        try:
            context = importlib.import_module(f"mujoco.{name}").GLContext(16, 16)
        except Exception as e:
            errors.append(e)
            continue
        context.free()
        return
    raise errors[0] if len(errors) == 1 else RuntimeError("; ".join(f"{type(e).__name__}: {e}" for e in errors))


def _close(env: Any) -> None:
    try:
        env.close()
    except Exception:  # a context that never came up has nothing to free
        pass


def video_path_error(path: Path, flag: str = "--video") -> str | None:
    """The one-line problem with writing a video to ``path`` (checked before any work), or None."""
    suffix = path.suffix.lower()
    if path.is_dir():
        return f"{flag} {path} is a folder; give a file such as {path / 'adapt.mp4'}"
    if suffix not in VIDEO_SUFFIXES:
        return f"{flag} {path}: unknown video extension {suffix or '(none)'!r}; use .mp4 or .gif"
    folder = path.parent
    if not folder.is_dir():
        return f"{flag} {path}: the folder {folder} does not exist; create it or choose another path"
    try:  # what the atomic write will do (os.access says yes to root even on a read-only folder)
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        return f"{flag} {path}: cannot write in {folder} ({e.strerror or e}); choose another path"
    return None


def record_episode(
    policy: Any, task: Task, size: int = SIZE, seed: int = 0, stride: int = 1
) -> tuple[np.ndarray, float, float]:
    """One deterministic episode of ``policy`` on ``task``: its frames, its return, and their frames per second.

    Args:
        policy: acts through ``act(obs)`` (a :class:`~metarl.MetaPolicy`, an :class:`~metarl.AdaptedPolicy`) and
            names its family in ``policy.family``.
        task: the task.
        size: pixels of a frame (square).
        seed: seed of the episode's initial state.
        stride: render the initial state and every ``stride``-th step (``horizon // stride + 1`` frames; rendering
            is what costs); an episode that terminates early holds its last frame.
    """
    import torch

    family = policy.family
    torch_state, numpy_state = torch.random.get_rng_state(), np.random.get_state()
    env = family.make_render_env(task, size, size)
    try:
        obs, _ = env.reset(seed=seed)
        fps = 1.0 / (env.dt * stride)
        frames, total = [env.render()], 0.0
        for t in range(1, family.horizon + 1):
            obs, reward, terminated, _, _ = env.step(policy.act(obs))
            total += float(reward)
            if t % stride == 0 or terminated:
                frames.append(env.render())
            if terminated:
                break
    finally:
        _close(env)
        torch.random.set_rng_state(torch_state)  # an SB3 policy built to act draws its initial weights
        np.random.set_state(numpy_state)
    frames += [frames[-1]] * (family.horizon // stride + 1 - len(frames))
    return np.stack(frames), total, fps


def label(frames: np.ndarray, lines: Sequence[str]) -> np.ndarray:
    """``frames`` with ``lines`` written in white on a dark band across their top."""
    from PIL import Image, ImageDraw, ImageFont

    _, h, w, _ = frames.shape
    font = ImageFont.load_default(size=max(9, w // 14))
    step = font.size + 2
    band_h = min(h, 4 + step * len(lines))
    band = Image.new("RGBA", (w, band_h), (0, 0, 0, 150))
    draw = ImageDraw.Draw(band)
    for i, line in enumerate(lines):
        while len(line) > 1 and font.getlength(line) > w - 8:  # what does not fit ends in an ellipsis
            line = line[:-2] + "…"
        draw.text((4, 2 + i * step), line, fill=(255, 255, 255, 255), font=font)
    rgba = np.asarray(band, dtype=np.float32) / 255.0
    alpha = rgba[..., 3:]
    out = frames.copy()
    top = out[:, :band_h].astype(np.float32)
    out[:, :band_h] = np.round(top * (1 - alpha) + rgba[..., :3] * 255.0 * alpha).astype(np.uint8)
    return out


def task_label(task: Task) -> str:
    """A task in a few words: its ``--task`` spelling, or for dynamics tasks each field's range of scales."""
    scales = getattr(task, "scales", None)
    if isinstance(scales, tuple):  # DynamicsTask: ((field, (s_0, s_1, ...)), ...)
        return ", ".join(f"{name} x{min(v):.2g}-{max(v):.2g}" for name, v in scales)
    return task_text(task)


def adaptation_frames(
    rows: Sequence[Sequence[tuple[Any, Task, str]]], size: int = SIZE, seed: int = 0, stride: int = 1
) -> tuple[np.ndarray, float]:
    """The frames of a grid of labelled episodes: ``rows[i][j] = (policy, task, title)``, one episode per cell.

    Args:
        rows: per row (a task, usually), per column (a step, usually) the policy, its task and the title line
            (``before adapting``, ``after step 3``).
        size: pixels of one cell (square).
        seed: seed of every episode's initial state (the same start for every cell).
        stride: render every ``stride``-th step (cheaper, smaller files; the video still plays in real time).

    Returns:
        the frames ``(n, height, width, 3)`` uint8 and their frames per second of real time.
    """
    grid, fps = [], 20.0
    for row in rows:
        cells = []
        for policy, task, title in row:
            frames, ret, fps = record_episode(policy, task, size, seed, stride)
            cells.append(label(frames, [title, task_label(task), f"return {ret:.1f}"]))
        grid.append(np.concatenate(cells, axis=2))
    return np.concatenate(grid, axis=1), fps


def encode(frames: np.ndarray, suffix: str, fps: float) -> bytes:
    """``frames`` ``(n, h, w, 3)`` uint8 as the bytes of a ``.gif`` (Pillow) or ``.mp4`` (H.264, imageio-ffmpeg)."""
    if suffix == ".gif":
        from PIL import Image

        # one palette for the whole clip, from a sample of its frames, without dithering: ~6x faster to encode than a
        # palette per frame and ~30 % smaller (python benchmarks/render_cost.py: results/render_cost.txt)
        sample = Image.fromarray(np.concatenate(list(frames[:: max(1, len(frames) // 10)]), axis=0))
        palette = sample.quantize(colors=128, method=Image.Quantize.MEDIANCUT)
        images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
        buf = io.BytesIO()
        images[0].save(buf, format="GIF", save_all=True, append_images=images[1:], duration=round(1000 / fps), loop=0)
        return buf.getvalue()
    if suffix == ".mp4":
        import imageio.v2 as imageio

        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / "video.mp4"
            # sizes are multiples of 16 where the cells are (SIZE): no rescaling; yuv420p plays everywhere
            imageio.mimwrite(file, list(frames), fps=fps, codec="libx264", pixelformat="yuv420p", macro_block_size=16)
            return file.read_bytes()
    raise ValueError(f"unknown video extension {suffix!r}; use one of {', '.join(VIDEO_SUFFIXES)}")


def write_video(path: str | os.PathLike[str], frames: np.ndarray, fps: float) -> Path:
    """Encode ``frames`` by ``path``'s extension and replace ``path`` atomically (no partial file, ever)."""
    path = Path(path)
    data = encode(frames, path.suffix.lower(), fps)
    return write_atomic(path, lambda f: f.write(data))


def tensorboard_video(writer: Any, tag: str, frames: np.ndarray, fps: float, step: int) -> None:
    """Log ``frames`` to a ``SummaryWriter`` as an animated GIF image summary (TensorBoard's Images tab)."""
    from tensorboard.compat.proto.summary_pb2 import Summary

    _, h, w, c = frames.shape
    image = Summary.Image(height=h, width=w, colorspace=c, encoded_image_string=encode(frames, ".gif", fps))
    writer._get_file_writer().add_summary(Summary(value=[Summary.Value(tag=tag, image=image)]), step)
