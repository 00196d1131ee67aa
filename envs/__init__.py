"""Task families (installed as ``metarl.envs``), registered as ``metarl/<Name>-v0``.

``import metarl`` (or ``import metarl.envs``) registers them, so ``gym.make("metarl/HalfCheetahVel-v0")``
works; ``gym.make("metarl.envs:metarl/HalfCheetahVel-v0")`` imports and registers in one go.
"""

from __future__ import annotations

import difflib

import gymnasium as gym

from .core import BatchEnv, MujocoBatchEnv, Task, TaskError, TaskFamily, load_mujoco_model
from .half_cheetah import DirectionTask, HalfCheetahDirEnv, HalfCheetahVelEnv, VelocityTask
from .navigation import GoalTask, Navigation2DEnv

FAMILIES: dict[str, type[TaskFamily]] = {
    "HalfCheetahVel": HalfCheetahVelEnv,
    "HalfCheetahDir": HalfCheetahDirEnv,
    "Navigation2D": Navigation2DEnv,
}


def env_id(name: str) -> str:
    """The Gymnasium id of family ``name``."""
    return f"metarl/{name}-v0"


def get_family(name: str) -> type[TaskFamily]:
    """The family class for a family name or its registered id (``metarl/<Name>-v0``).

    Raises:
        KeyError: with a message listing the known families and the closest match.
    """
    key = name
    if key.startswith("metarl/"):
        key = key[len("metarl/") :]
    if key.endswith("-v0"):
        key = key[: -len("-v0")]
    if key in FAMILIES:
        return FAMILIES[key]
    close = difflib.get_close_matches(key, list(FAMILIES), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise KeyError(f"unknown task family {name!r}{hint} Known families: {', '.join(FAMILIES)}")


def _register() -> None:
    for name, cls in FAMILIES.items():
        if env_id(name) not in gym.registry:
            gym.register(
                id=env_id(name),
                entry_point=f"{cls.__module__}:{cls.__name__}",
                max_episode_steps=cls.horizon,
            )


_register()

__all__ = [
    "FAMILIES",
    "BatchEnv",
    "DirectionTask",
    "GoalTask",
    "HalfCheetahDirEnv",
    "HalfCheetahVelEnv",
    "MujocoBatchEnv",
    "Navigation2DEnv",
    "Task",
    "TaskError",
    "TaskFamily",
    "VelocityTask",
    "env_id",
    "get_family",
    "load_mujoco_model",
]
