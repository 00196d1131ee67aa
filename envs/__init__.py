"""Task families (installed as ``metarl.envs``), registered as ``metarl/<Name>-v0``.

``import metarl`` (or ``import metarl.envs``) registers them, so ``gym.make("metarl/HalfCheetahVel-v0")``
works; ``gym.make("metarl.envs:metarl/HalfCheetahVel-v0")`` imports and registers in one go.
"""

from __future__ import annotations

import difflib
import importlib
import re
import sys

import gymnasium as gym

from .ant import AngleTask, AntDirAngleEnv, AntDirEnv, AntGoalEnv
from .batch import BatchEnv, SimulationError
from .family import RenderError, Task, TaskError, TaskFamily
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

    ``package.module:Name`` (Gymnasium's convention) imports ``package.module`` first, then looks ``Name`` up as
    a family name (as :func:`register_family` registered it) or a :class:`TaskFamily` class the module defines:
    the way to name your own family on the command line and in worker processes.

    Raises:
        KeyError: with a message listing the known families and the closest match
            (:class:`MetaWorldUnavailable` for a Meta-World name without Meta-World installed;
            :class:`FamilyImportError` for a ``module:Name`` whose module does not import or lacks ``Name``).
        RandomizeError: a randomisation the model cannot take (one line).
    """
    if _IMPORT_PATH.match(name):
        if randomize:
            raise RandomizeError(f"--randomize applies to Gymnasium MuJoCo ids such as Hopper-v5, not to {name}")
        return _import_family(name)
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


class FamilyImportError(KeyError):
    """A ``module:Name`` family whose module does not import, raises on import, or defines no family ``Name``."""


#: ``package.module:Name``: a dotted module path, a colon, a name (randomised family names hold ``[...]``, never this).
_IMPORT_PATH = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[^\[\]]+$")


def _import_family(path: str) -> type[TaskFamily]:
    """The family ``module:Name`` names (see :func:`get_family`)."""
    module_name, _, name = path.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name is not None and (module_name == e.name or module_name.startswith(e.name + ".")):
            raise FamilyImportError(
                f"cannot import module {module_name!r} of --env {path} (no module named {e.name!r}); "
                "put its folder on PYTHONPATH or install its package"
            ) from None
        raise FamilyImportError(f"importing module {module_name!r} of --env {path} raised {_one_line(e)}") from None
    except Exception as e:  # the module itself is broken: say so, in one line
        raise FamilyImportError(f"importing module {module_name!r} of --env {path} raised {_one_line(e)}") from None
    key = name[len("metarl/") :] if name.startswith("metarl/") else name
    key = key[: -len("-v0")] if key.endswith("-v0") else key
    if key in FAMILIES:
        return FAMILIES[key]
    found = getattr(module, name, None)
    if isinstance(found, type) and issubclass(found, TaskFamily):
        return found
    defined = sorted(
        {n for n, c in FAMILIES.items() if c.__module__ == module.__name__}
        | {
            n
            for n, c in vars(module).items()
            if isinstance(c, type) and issubclass(c, TaskFamily) and "family_name" in vars(c)
        }
    )
    what = "is not a task family (a TaskFamily class)" if found is not None else "is not defined there"
    raise FamilyImportError(
        f"{name!r} of --env {path} {what}; module {module_name!r} has the families {', '.join(defined) or 'none'} "
        "(a name registered with register_family, or the class name)"
    )


def _one_line(e: BaseException) -> str:
    first = (str(e).strip().splitlines() or [""])[0][:200]
    return f"{type(e).__name__}: {first}" if first else type(e).__name__


def import_path(cls: type[TaskFamily]) -> str | None:
    """``module:ClassName`` under which a worker process finds ``cls``; None for ``__main__`` or a local class."""
    module = sys.modules.get(cls.__module__)
    if module is None or cls.__module__ in ("__main__", "__mp_main__") or "<locals>" in cls.__qualname__:
        return None
    return f"{cls.__module__}:{cls.__qualname__}" if getattr(module, cls.__qualname__, None) is cls else None


def register_family(cls: type[TaskFamily]) -> type[TaskFamily]:
    """Add a family class to :data:`FAMILIES` and register it as ``metarl/<family_name>-v0``.

    Use as a decorator on your own family; ``--env <family_name>`` then works in-process, and
    ``--env your_module:<family_name>`` from the command line (it imports ``your_module`` first).
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
    "FamilyImportError",
    "GoalTask",
    "HopperRandParamsEnv",
    "PendulumRandParamsEnv",
    "PendulumTask",
    "RandomizeError",
    "RenderError",
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
    "import_path",
    "load_mujoco_model",
    "metaworld_family",
]
