"""The task-family contract: tasks and families.

A *task* is a frozen dataclass that round-trips through JSON. A *family* is a Gymnasium env class
that mixes in :class:`TaskFamily`: it samples tasks from an explicit ``np.random.Generator``,
switches task with ``set_task``, and knows a fixed, seeded meta-test task set. A family also builds a
:class:`~metarl.envs.batch.BatchEnv` (``make_batch``): many copies of the env stepped together.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

if TYPE_CHECKING:
    from .batch import BatchEnv


class TaskError(ValueError):
    """A task the family cannot represent (unknown field, wrong type, value out of its domain)."""


class RenderError(RuntimeError):
    """Frames cannot be rendered (no OpenGL backend, or a family without a renderer); the message is one line."""


@dataclasses.dataclass(frozen=True)
class Task:
    """Base class of task dataclasses. Subclasses validate their fields in ``__post_init__``."""

    def to_dict(self) -> dict[str, Any]:
        """The task as JSON-able values (tuples become lists)."""
        return json.loads(json.dumps(dataclasses.asdict(self)))

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> Task:
        """Build a task from ``to_dict`` output (or user input), with a clear error on bad fields.

        Args:
            values: field name -> value; lists are accepted for tuple fields.
        """
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(values) - set(names))
        if unknown:
            raise TaskError(f"unknown task field {unknown[0]!r} for {cls.__name__}; fields are {names}")
        missing = [n for n in names if n not in values]
        if missing:
            raise TaskError(f"missing task field {missing[0]!r} for {cls.__name__}; fields are {names}")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

    def vector(self) -> np.ndarray:
        """The task's numbers as a flat float64 array (what batched reward functions read)."""
        out: list[float] = []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            out.extend(v if isinstance(v, tuple) else [v])
        return np.asarray(out, dtype=np.float64)


def finite_float(name: str, value: Any) -> float:
    """``value`` as a finite float, or a :class:`TaskError` naming the field."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TaskError(f"task field {name!r} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise TaskError(f"task field {name!r} must be finite, got {value}")
    return value


class TaskFamily:
    """Mixin for Gymnasium envs whose goal or dynamics vary per task.

    Subclasses set ``family_name``, ``task_type``, ``horizon``, ``meta_test_seed``, implement
    ``_draw_tasks`` and ``make_batch``, and call ``_init_task(task)`` in their constructor.
    """

    family_name: ClassVar[str]
    task_type: ClassVar[type[Task]]
    horizon: ClassVar[int]
    meta_test_seed: ClassVar[int]
    num_meta_test_tasks: ClassVar[int] = 40
    #: True where the task space is finite (e.g. directions ±1): meta-test tasks then repeat
    #: training tasks by necessity, and only their evaluation seeds differ.
    discrete_tasks: ClassVar[bool] = False
    #: True where ``step``'s ``info["success"]`` says whether the task is solved at that step. Evaluation then
    #: reports a success rate next to the return: an episode succeeds if any of its steps does (Meta-World's rule).
    defines_success: ClassVar[bool] = False

    _task: Task

    # ---- task distribution -------------------------------------------------------------------
    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        raise NotImplementedError

    @classmethod
    def sample_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        """Draw ``n`` training tasks; never one of the meta-test tasks (for continuous families).

        Args:
            n: number of tasks.
            rng: the generator that makes the draw reproducible.
        """
        if not isinstance(rng, np.random.Generator):
            raise TypeError("sample_tasks needs an np.random.Generator, e.g. np.random.default_rng(0)")
        tasks = cls._draw_tasks(n, rng)
        if cls.discrete_tasks:
            return tasks
        held_out = set(cls.meta_test_tasks())
        for i, task in enumerate(tasks):
            while task in held_out:  # probability zero for continuous draws, but guaranteed
                task = cls._draw_tasks(1, rng)[0]
            tasks[i] = task
        return tasks

    @classmethod
    def meta_test_tasks(cls) -> list[Task]:
        """The family's fixed, seeded set of held-out tasks (``num_meta_test_tasks`` of them)."""
        cache = cls.__dict__.get("_meta_test_cache")
        if cache is None:
            cache = tuple(cls._draw_tasks(cls.num_meta_test_tasks, np.random.default_rng(cls.meta_test_seed)))
            cls._meta_test_cache = cache
        return list(cache)

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        """Whether ``task`` lies in the support of the training distribution."""
        return True

    # ---- the current task --------------------------------------------------------------------
    def _init_task(self, task: Task | dict | None) -> None:
        if task is None:
            task = self._draw_tasks(1, np.random.default_rng(0))[0]
        self.set_task(task)

    def set_task(self, task: Task | dict) -> None:
        """Switch to ``task`` (a task dataclass of this family, or its dict form)."""
        if isinstance(task, dict):
            task = self.task_type.from_dict(task)
        if not isinstance(task, self.task_type):
            raise TaskError(f"{self.family_name} takes a {self.task_type.__name__}, got {task!r}")
        self._task = task
        self._task_vector = task.vector()
        kwargs = getattr(self, "_ezpickle_kwargs", None)
        if kwargs is not None:  # pickling re-creates the env with its current task
            kwargs["task"] = task

    def get_task(self) -> Task:
        """The current task."""
        return self._task

    # ---- rendering ---------------------------------------------------------------------------
    @classmethod
    def has_renderer(cls) -> bool:
        """Whether :meth:`make_render_env` can render this family (the MuJoCo families)."""
        from gymnasium.envs.mujoco import MujocoEnv

        return issubclass(cls, MujocoEnv)

    @classmethod
    def make_render_env(cls, task: Task | dict, width: int = 160, height: int = 160) -> Any:
        """One env of ``task`` whose ``render()`` returns ``(height, width, 3)`` uint8 RGB frames.

        The default serves the MuJoCo families: Gymnasium's MuJoCo renderer (``render_mode="rgb_array"``), the
        model's ``track`` camera (else a camera following the first body), and a 512-pixel shadow map without
        multisampling: MuJoCo's defaults (4096 pixels, 4x) cost ~5x more per frame on the software OpenGL of a
        machine without a GPU (``python benchmarks/render_cost.py``). The simulation is the family's
        own; only visual settings differ. Families without a MuJoCo model raise :class:`RenderError`.
        """
        import mujoco

        if not cls.has_renderer():
            raise RenderError(f"{cls.family_name} has no MuJoCo renderer; videos need a MuJoCo family")
        env = cls(task=task, render_mode="rgb_array", width=width, height=height)  # type: ignore[call-arg]
        env.model.vis.quality.shadowsize = 512
        env.model.vis.quality.offsamples = 0
        renderer = env.mujoco_renderer
        track = mujoco.mj_name2id(env.model, mujoco.mjtObj.mjOBJ_CAMERA, "track")
        if track >= 0:  # the model's own tracking camera (Gymnasium's renderer would replace it by a still one)
            renderer.camera_id = track
        else:  # a free camera at the env's default distance, following the first body
            renderer.camera_id = None
            tracking = {"type": mujoco.mjtCamera.mjCAMERA_TRACKING, "trackbodyid": 1}
            renderer.default_cam_config = {**(renderer.default_cam_config or {}), **tracking}
        return env

    # ---- batched stepping --------------------------------------------------------------------
    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        """``num_envs`` copies of this family's env, stepped together.

        Args:
            num_envs: number of copies.
            threads: threads that step the copies (default: the CPU cores).
            env_kwargs: constructor arguments of the env (e.g. ``ctrl_cost_weight``).

        The default steps the copies one at a time through the env's own ``step`` (any family, slower);
        fast families return a MuJoCo batched env (:func:`~metarl.envs.mujoco_native.make_mujoco_batch`) or their own
        numpy batch.
        """
        from .gym_batch import GymBatchEnv

        return GymBatchEnv(cls, num_envs, **env_kwargs)
