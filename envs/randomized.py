"""Dynamics-randomised families: any Gymnasium MuJoCo env whose model parameters vary per task.

A task is a set of element-wise multiplicative scales of model arrays (``body_mass``, ``geom_friction``,
...). The family stores the model's nominal arrays once and writes ``nominal * scale`` on every
``set_task`` (then ``mj_setConst`` recomputes the derived constants), so setting a task twice, or going
back to an earlier one, gives identical physics. Scales are drawn log-uniformly in ``[low, high]`` per
element: ``1.5^U(-3, 3)`` is the range ``(1.5**-3, 1.5**3)``.

``randomized("Hopper-v5", body_mass=(0.5, 2.0))`` builds such a family from a Gymnasium id; the CLI's
``--env Hopper-v5 --randomize body_mass=0.5:2.0`` goes through :func:`parse_randomize`. Hopper-v5 and
Walker2d-v5 step through the fast :func:`~metarl.envs.mujoco_native.make_mujoco_batch`; other envs through
:class:`~metarl.envs.gym_batch.GymBatchEnv` (their own ``step``, one copy at a time: correct, slower).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import math
import zlib
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import utils

from .family import Task, TaskError, TaskFamily
from .mujoco_model import quiet_simulation

#: Model arrays a task may scale, with what they mean.
DYNAMICS_FIELDS: dict[str, str] = {
    "body_mass": "mass of each body",
    "body_inertia": "diagonal inertia of each body",
    "geom_friction": "sliding, torsional and rolling friction of each geom",
    "dof_damping": "damping of each degree of freedom",
    "dof_armature": "armature inertia of each degree of freedom",
    "dof_frictionloss": "dry friction of each degree of freedom",
    "jnt_stiffness": "spring stiffness of each joint",
    "actuator_gear": "gear (force scale) of each actuator",
}


class RandomizeError(ValueError):
    """A randomisation the model cannot take (unknown field, bad range, not a MuJoCo env); one line."""


@dataclasses.dataclass(frozen=True)
class DynamicsTask(Task):
    """Element-wise scales of model arrays: ``scales = ((field, (s_0, s_1, ...)), ...)``, sorted by field.

    Accepts a dict ``{field: [scales...]}`` (the JSON form) for ``scales``.
    """

    scales: tuple[tuple[str, tuple[float, ...]], ...]

    def __post_init__(self) -> None:
        raw = self.scales
        items = raw.items() if isinstance(raw, dict) else raw
        try:
            pairs = sorted((str(name), tuple(float(x) for x in np.ravel(values))) for name, values in items)
        except (TypeError, ValueError):
            raise TaskError(f"task field 'scales' must map model fields to lists of numbers, got {raw!r}") from None
        for name, values in pairs:
            if not all(math.isfinite(v) and v > 0 for v in values):
                raise TaskError(f"scales of {name!r} must be positive and finite")
        object.__setattr__(self, "scales", tuple(pairs))

    def to_dict(self) -> dict[str, Any]:
        return {"scales": {name: list(values) for name, values in self.scales}}

    def vector(self) -> np.ndarray:
        return np.concatenate([np.asarray(v, dtype=np.float64) for _, v in self.scales] or [np.zeros(0)])

    def scale(self, field: str) -> np.ndarray:
        """The flat scales of ``field``."""
        return np.asarray(dict(self.scales)[field])


class DynamicsFamily(TaskFamily):
    """Mixin for MuJoCo families whose tasks scale model arrays (``scale_ranges``); reward unchanged.

    Subclasses set ``scale_ranges`` and mix this class in *before* the Gymnasium MuJoCo env class.
    """

    task_type: ClassVar[type[Task]] = DynamicsTask
    #: the Gymnasium env class the family extends (its ``__init__`` and ``step`` are reused)
    _gym_base: ClassVar[type]
    scale_ranges: ClassVar[dict[str, tuple[float, float]]]
    _field_shapes: ClassVar[dict[str, tuple[int, ...]]]
    _batch_per_copy_models: ClassVar[bool] = True

    def _initialize_simulation(self) -> tuple[Any, Any]:
        model, data = quiet_simulation(self)
        self._nominal = {f: getattr(model, f).copy() for f in self.scale_ranges}
        self._scratch = mujoco.MjData(model)
        if "_field_shapes" not in type(self).__dict__:
            type(self)._field_shapes = {f: v.shape for f, v in self._nominal.items()}
        return model, data

    @classmethod
    def field_shapes(cls) -> dict[str, tuple[int, ...]]:
        """Shapes of the scaled model arrays (builds one env the first time)."""
        if "_field_shapes" not in cls.__dict__:
            cls()  # _initialize_simulation records them
        return cls._field_shapes

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        shapes = cls.field_shapes()
        draws = {
            f: np.exp(rng.uniform(math.log(lo), math.log(hi), size=(n, int(np.prod(shapes[f])))))
            for f, (lo, hi) in sorted(cls.scale_ranges.items())
        }
        return [DynamicsTask(tuple((f, tuple(map(float, d[i]))) for f, d in draws.items())) for i in range(n)]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        scales = dict(task.scales)  # type: ignore[attr-defined]
        return set(scales) == set(cls.scale_ranges) and all(
            lo <= min(scales[f]) and max(scales[f]) <= hi for f, (lo, hi) in cls.scale_ranges.items()
        )

    def _check_task(self, task: Task) -> None:
        shapes = self.field_shapes()
        fields = dict(task.scales)  # type: ignore[attr-defined]
        if set(fields) != set(self.scale_ranges):
            raise TaskError(f"{self.family_name} tasks scale {sorted(self.scale_ranges)}, got {sorted(fields)}")
        for f, values in fields.items():
            if len(values) != int(np.prod(shapes[f])):
                raise TaskError(f"{f} needs {int(np.prod(shapes[f]))} scales, got {len(values)}")

    def _apply_task_to_model(self, model: mujoco.MjModel, task: Task) -> None:
        """Write ``nominal * scale`` into ``model`` (never scale the current values) and recompute constants."""
        for f, values in task.scales:  # type: ignore[attr-defined]
            getattr(model, f)[:] = self._nominal[f] * np.asarray(values).reshape(self._nominal[f].shape)
        mujoco.mj_setConst(model, self._scratch)

    def set_task(self, task: Task | dict) -> None:
        if isinstance(task, dict):
            task = DynamicsTask.from_dict(task)
        if isinstance(task, DynamicsTask):
            self._check_task(task)
        super().set_task(task)
        self._apply_task_to_model(self.model, self._task)


# ---- any Gymnasium MuJoCo env as a family ------------------------------------------------------
def _fast_bases() -> dict[str, type]:
    from .rand_params import HopperDynamics, Walker2dDynamics

    return {"Hopper-v5": HopperDynamics, "Walker2d-v5": Walker2dDynamics}


def _gym_env_class(env_id: str) -> type:
    if env_id not in gym.registry:
        raise RandomizeError(f"unknown Gymnasium id {env_id!r} (e.g. Hopper-v5, Walker2d-v5, Ant-v5)")
    entry = gym.registry[env_id].entry_point
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    if not (isinstance(entry, type) and issubclass(entry, MujocoEnv)):
        raise RandomizeError(f"{env_id} is not a Gymnasium MuJoCo env; only MuJoCo models can be randomised")
    return entry


def format_randomize(ranges: dict[str, tuple[float, float]]) -> str:
    """The canonical ``field=low:high,...`` text of ``ranges`` (sorted; what :func:`parse_randomize` reads)."""
    return ",".join(f"{f}={lo:g}:{hi:g}" for f, (lo, hi) in sorted(ranges.items()))


def parse_randomize(text: str) -> dict[str, tuple[float, float]]:
    """Parse ``body_mass=0.5:2.0,geom_friction=0.5:1.5`` (a single number ``x`` means ``x:x``).

    Raises:
        RandomizeError: one line naming the bad item and the valid fields.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for item in filter(None, (s.strip() for s in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep:
            raise RandomizeError(f"--randomize item {item!r} is not FIELD=LOW:HIGH (e.g. body_mass=0.5:2.0)")
        lo, _, hi = value.partition(":")
        try:
            ranges[name.strip()] = (float(lo), float(hi or lo))
        except ValueError:
            raise RandomizeError(f"--randomize {name.strip()}: range {value!r} is not LOW:HIGH numbers") from None
    if not ranges:
        raise RandomizeError("--randomize needs at least one FIELD=LOW:HIGH (e.g. body_mass=0.5:2.0)")
    return ranges


def _check_ranges(ranges: dict[str, Any]) -> dict[str, tuple[float, float]]:
    if not ranges:
        raise RandomizeError(f"give at least one field to randomise; valid fields: {', '.join(DYNAMICS_FIELDS)}")
    out = {}
    for f, r in ranges.items():
        if f not in DYNAMICS_FIELDS:
            raise RandomizeError(f"unknown model field {f!r}; valid fields: {', '.join(DYNAMICS_FIELDS)}")
        try:
            lo, hi = (float(x) for x in r)
        except (TypeError, ValueError):
            raise RandomizeError(f"range of {f} must be (low, high) numbers, got {r!r}") from None
        if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
            raise RandomizeError(f"range of {f} must satisfy 0 < low <= high (multiplicative scales), got {lo}:{hi}")
        out[f] = (lo, hi)
    return out


def randomized(env_id: str, horizon: int = 200, **ranges: tuple[float, float]) -> type[TaskFamily]:
    """A dynamics-randomised family over the Gymnasium MuJoCo env ``env_id``.

    Each keyword is a model array and its ``(low, high)`` multiplicative scale range, drawn
    log-uniformly per element, e.g. ``randomized("Hopper-v5", body_mass=(0.5, 2.0), geom_friction=(0.5, 1.5))``.
    The reward is the env's own. The same arguments return the same class.

    Args:
        env_id: a registered Gymnasium MuJoCo id (``Hopper-v5``, ``Walker2d-v5``, ``Ant-v5``, ...).
        horizon: episode length (default 200, the meta-RL convention).
        ranges: field -> (low, high); fields from :data:`DYNAMICS_FIELDS`.

    Raises:
        RandomizeError: unknown id or field, or a bad range (one line).
    """
    checked = _check_ranges(ranges)
    return _build(env_id, int(horizon), tuple(sorted(checked.items())))


@functools.cache
def _build(env_id: str, horizon: int, ranges: tuple[tuple[str, tuple[float, float]], ...]) -> type[TaskFamily]:
    spec = format_randomize(dict(ranges))
    name = f"{env_id}[{spec}]" if horizon == 200 else f"{env_id}[{spec};horizon={horizon}]"
    attrs: dict[str, Any] = dict(
        family_name=name,
        base_id=env_id,
        horizon=horizon,
        scale_ranges=dict(ranges),
        meta_test_seed=3_000_000 + zlib.crc32(name.encode()) % 1_000_000,
        __reduce__=_reduce_randomized,
        __module__=__name__,
    )
    fast = _fast_bases().get(env_id)
    if fast is not None:
        return type(f"Randomized{fast.__name__}", (fast,), attrs)
    base = _gym_env_class(env_id)
    attrs.update(_gym_base=base, __init__=_generic_init, step=_generic_step)  # TaskFamily's make_batch: GymBatchEnv
    return type(f"Randomized{base.__name__}", (DynamicsFamily, base), attrs)


def _reduce_randomized(self: Any) -> tuple[Any, tuple[Any, ...]]:  # pickle by recipe, not by class path
    cls = type(self)
    return _rebuild, (cls.base_id, cls.horizon, cls.scale_ranges, dict(self._ezpickle_kwargs))


def _rebuild(env_id: str, horizon: int, ranges: dict[str, tuple[float, float]], kwargs: dict[str, Any]) -> Any:
    return randomized(env_id, horizon, **ranges)(**kwargs)


def _generic_init(self: Any, task: Task | dict | None = None, **kwargs: Any) -> None:
    self._gym_base.__init__(self, **kwargs)
    utils.EzPickle.__init__(self, task=task, **kwargs)
    self._init_task(task)


def _generic_step(self: Any, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
    action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
    obs, reward, terminated, truncated, info = self._gym_base.step(self, action)
    info["task"] = self._task
    return obs, reward, terminated, truncated, info


def family_from_spec(name: str, randomize: str = "") -> type[TaskFamily] | None:
    """The randomised family named by ``name`` + ``randomize``, or by a family name ``Id[spec]``; else None."""
    if randomize:
        return randomized(name, **parse_randomize(randomize))
    if name.endswith("]") and "[" in name:
        env_id, _, spec = name[:-1].partition("[")
        spec, _, extra = spec.partition(";horizon=")
        return randomized(env_id, int(extra) if extra else 200, **parse_randomize(spec))
    return None
