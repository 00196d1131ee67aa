"""OpenGL for MuJoCo's renderer: choose the backend before MuJoCo is imported, and survive one that cannot load.

MuJoCo reads ``MUJOCO_GL`` when it is imported and Gymnasium's renderer when it makes its first context, so the
choice is made here, by ``import metarl``, before either: ``egl`` where no display is set (``DISPLAY``,
``WAYLAND_DISPLAY``) and the user chose nothing; Mesa's EGL renders without a GPU or display. A backend that
cannot load (``MUJOCO_GL=osmesa`` without libOSMesa) makes ``import mujoco`` itself raise, which would stop
training that never renders: MuJoCo is then imported with GL disabled and the variable restored, so simulation
works and rendering fails with one line (:func:`metarl.video.check_rendering`).
"""

from __future__ import annotations

import os


def select_gl_backend() -> str:
    """``MUJOCO_GL`` as the renderer will read it: ``egl`` where no display is set and the user chose nothing."""
    if not os.environ.get("MUJOCO_GL") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        os.environ["MUJOCO_GL"] = "egl"
    return os.environ.get("MUJOCO_GL", "")


def import_mujoco() -> None:
    """Import ``mujoco`` with the backend of :func:`select_gl_backend`; with GL disabled where that one breaks it."""
    chosen = select_gl_backend()
    try:
        import mujoco  # noqa: F401
    except Exception:
        if chosen in ("", "disable"):
            raise
        os.environ["MUJOCO_GL"] = "disable"
        try:
            import mujoco  # noqa: F401
        finally:
            os.environ["MUJOCO_GL"] = chosen
