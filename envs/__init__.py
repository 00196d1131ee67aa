"""Task families (installed as ``metarl.envs``), registered as ``metarl/<Name>-v0``.

``import metarl`` (or ``import metarl.envs``) registers them, so ``gym.make("metarl/HalfCheetahVel-v0")``
works; ``gym.make("metarl.envs:metarl/HalfCheetahVel-v0")`` imports and registers in one go.
"""

from __future__ import annotations

import difflib

import gymnasium as gym

from .ant import AngleTask, AntDirAngleEnv, AntDirEnv, AntGoalEnv
from .batch import BatchEnv, SimulationError
from .family import Task, TaskError, TaskFamily
from .half_cheetah import DirectionTask, HalfCheetahDirEnv, HalfCheetahVelEnv, VelocityTask
from .metaworld import MetaWorldTask, MetaWorldUnavailable, metaworld_family
from .metaworld import family_from_name as metaworld_family_from_name
from .mujoco_batch import MujocoBatchEnv
from .mujoco_model import load_mujoco_model
from .mujoco_native import HAS_NATIVE_BATCH, NativeMujocoBatchEnv, make_mujoco_batch
from .navigation import GoalTask, Navigation2DEnv
from .pendulum import PendulumRandParamsEnv, PendulumTask
from .rand_params import HopperRandParamsEnv, Walker2dRandParamsEnv
from .randomized import (
    DYNAMICS_FIELDS,
    DynamicsFamily,
    DynamicsTask,
    RandomizeError,
    family_from_spec,
    parse_randomize,
    randomized,
)

FAMILIES: dict[str, type[TaskFamily]] = {
    "HalfCheetahVel": HalfCheetahVelEnv,
    "HalfCheetahDir": HalfCheetahDirEnv,
    "Navigation2D": Navigation2DEnv,
    "AntDir": AntDirEnv,
    "AntDirAngle": AntDirAngleEnv,
    "AntGoal": AntGoalEnv,
    "HopperRandParams": HopperRandParamsEnv,
    "Walker2dRandParams": Walker2dRandParamsEnv,
    "PendulumRandParams": PendulumRandParamsEnv,
}


def env_id(name: str) -> str:
    """The Gymnasium id of family ``name``."""
    return f"metarl/{name}-v0"


def get_family(name: str, randomize: str = "") -> type[TaskFamily]:
    """The family class for a family name or its registered id (``metarl/<Name>-v0``).

    With ``randomize`` (``field=low:high,...``), ``name`` is a Gymnasium MuJoCo id and the family is
    ``randomized(name, ...)``; the family name of such a family (``Hopper-v5[body_mass=0.5:2]``) is
    accepted too.

    Meta-World families (``ML1-<class>``, ``ML10``; :mod:`metarl.envs.metaworld`) are built on demand and
    need ``pip install "metarl[metaworld]"``.

    Raises:
        KeyError: with a message listing the known families and the closest match
            (:class:`MetaWorldUnavailable` for a Meta-World name without Meta-World installed).
        RandomizeError: a randomisation the model cannot take (one line).
    """
    if randomize and (name in FAMILIES or name.startswith("metarl/")):
        raise RandomizeError(f"--randomize applies to Gymnasium MuJoCo ids such as Hopper-v5, not to {name}")
    randomized_family = family_from_spec(name, randomize)
    if randomized_family is not None:
        return randomized_family
    if name in gym.registry and not name.startswith("metarl/"):
        raise KeyError(
            f"{name} is a Gymnasium env, not a task family; make it one with --randomize "
            f"FIELD=LOW:HIGH (fields: {', '.join(DYNAMICS_FIELDS)})"
        )
    key = name
    if key.startswith("metarl/"):
        key = key[len("metarl/") :]
    if key.endswith("-v0"):
        key = key[: -len("-v0")]
    if key in FAMILIES:
        return FAMILIES[key]
    metaworld = metaworld_family_from_name(key)  # ML1-<class>, ML10: imports Meta-World only here
    if metaworld is not None:
        return metaworld
    close = difflib.get_close_matches(key, list(FAMILIES), n=1, cutoff=0.4)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise KeyError(
        f"unknown task family {name!r}{hint} Known families: {', '.join(FAMILIES)}; "
        "with the metaworld extra also ML1-<class> (e.g. ML1-reach-v3) and ML10"
    )


def register_family(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Add a family class to :data:`FAMILIES` and register it as ``metarl/<family_name>-v0``.

    Use as a decorator on your own family; ``--env <family_name>`` then works in-process.
    """
    FAMILIES[cls.family_name] = cls
    if env_id(cls.family_name) not in gym.registry:
        gym.register(id=env_id(cls.family_name), entry_point=cls, max_episode_steps=cls.horizon)
    return cls


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
    "DYNAMICS_FIELDS",
    "FAMILIES",
    "AngleTask",
    "AntDirAngleEnv",
    "AntDirEnv",
    "AntGoalEnv",
    "BatchEnv",
    "DirectionTask",
    "DynamicsFamily",
    "DynamicsTask",
    "GoalTask",
    "HopperRandParamsEnv",
    "PendulumRandParamsEnv",
    "PendulumTask",
    "RandomizeError",
    "Walker2dRandParamsEnv",
    "family_from_spec",
    "parse_randomize",
    "randomized",
    "register_family",
    "HalfCheetahDirEnv",
    "HalfCheetahVelEnv",
    "MetaWorldTask",
    "MetaWorldUnavailable",
    "MujocoBatchEnv",
    "HAS_NATIVE_BATCH",
    "NativeMujocoBatchEnv",
    "make_mujoco_batch",
    "Navigation2DEnv",
    "SimulationError",
    "Task",
    "TaskError",
    "TaskFamily",
    "VelocityTask",
    "env_id",
    "get_family",
    "load_mujoco_model",
    "metaworld_family",
]
