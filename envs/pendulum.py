"""PendulumRandParams: Gymnasium's Pendulum-v1 swing-up with a per-task mass and length (pure numpy, cheap).

Dynamics and reward are Pendulum-v1's, written once as vectorised functions:
``θ̈ = 3g/(2l)·sin θ + 3/(m l²)·u``, semi-implicit Euler with dt 0.05, speed clipped to ±8, torque to ±2;
reward ``-(angle_normalize(θ)² + 0.1·θ̇² + 0.001·u²)`` on the state before the step; start
``θ ~ U[-π, π]``, ``θ̇ ~ U[-1, 1]``; observation ``(cos θ, sin θ, θ̇)``; horizon 200; no termination.
Tasks: ``m ~ U[0.5, 2]``, ``l ~ U[0.5, 2]`` (Pendulum-v1 has m = l = 1). No contact, no MuJoCo: the cheap
dynamics family for fast tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np
from gymnasium import utils
from gymnasium.envs.classic_control.pendulum import PendulumEnv

from .batch import BatchEnv
from .family import Task, TaskError, TaskFamily, finite_float


@dataclasses.dataclass(frozen=True)
class PendulumTask(Task):
    """A pendulum of ``mass`` kg and ``length`` m."""

    mass: float
    length: float

    def __post_init__(self) -> None:
        for name in ("mass", "length"):
            value = finite_float(name, getattr(self, name))
            if value <= 0:
                raise TaskError(f"task field {name!r} must be positive, got {value}")
            object.__setattr__(self, name, value)


def pendulum_step(
    th: np.ndarray, thdot: np.ndarray, u: np.ndarray, task_params: np.ndarray, g: float = 10.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One Pendulum-v1 step for a batch: ``(new_th, new_thdot, reward)``; ``u`` already clipped."""
    m, length = task_params[:, 0], task_params[:, 1]
    dt, max_speed = 0.05, 8.0
    cost = (((th + np.pi) % (2 * np.pi)) - np.pi) ** 2 + 0.1 * thdot**2 + 0.001 * u**2
    new_thdot = np.clip(
        thdot + (3 * g / (2 * length) * np.sin(th) + 3.0 / (m * length**2) * u) * dt, -max_speed, max_speed
    )
    return th + new_thdot * dt, new_thdot, -cost


class PendulumRandParamsEnv(TaskFamily, PendulumEnv):
    """Pendulum-v1 with per-task mass and length; reward ``-(θ² + 0.1·θ̇² + 0.001·u²)``; horizon 200."""

    family_name: ClassVar[str] = "PendulumRandParams"
    task_type: ClassVar[type[Task]] = PendulumTask
    horizon: ClassVar[int] = 200
    meta_test_seed: ClassVar[int] = 2_000_009
    mass_range: ClassVar[tuple[float, float]] = (0.5, 2.0)
    length_range: ClassVar[tuple[float, float]] = (0.5, 2.0)

    def __init__(self, task: Task | dict | None = None, render_mode: str | None = None) -> None:
        PendulumEnv.__init__(self, render_mode=render_mode)
        utils.EzPickle.__init__(self, task=task, render_mode=render_mode)
        self._init_task(task)

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        m = rng.uniform(*cls.mass_range, size=n)
        length = rng.uniform(*cls.length_range, size=n)
        return [PendulumTask(float(a), float(b)) for a, b in zip(m, length)]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        return (
            cls.mass_range[0] <= task.mass <= cls.mass_range[1]  # type: ignore[attr-defined]
            and cls.length_range[0] <= task.length <= cls.length_range[1]  # type: ignore[attr-defined]
        )

    def set_task(self, task: Task | dict) -> None:
        super().set_task(task)
        self.m, self.l = self._task.mass, self._task.length  # type: ignore[attr-defined]  # what render reads

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        u = np.clip(np.asarray(action, dtype=np.float64), -self.max_torque, self.max_torque).reshape(1)
        th, thdot, reward = pendulum_step(self.state[:1], self.state[1:], u, self._task_vector[None], self.g)
        self.state = np.array([th[0], thdot[0]])
        self.last_u = u[0]
        if self.render_mode == "human":
            self.render()
        return self._get_obs(), float(reward[0]), False, False, {"task": self._task}

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        obs, info = super().reset(seed=seed, options=options)
        info["task"] = self._task
        return obs, info

    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        return PendulumBatchEnv(num_envs)


class PendulumBatchEnv(BatchEnv):
    """``num_envs`` pendulums stepped as numpy arrays (same functions as the single env)."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = int(num_envs)
        self.obs_dim, self.act_dim = 3, 1
        self.horizon = PendulumRandParamsEnv.horizon
        self.action_low, self.action_high = np.array([-2.0]), np.array([2.0])
        self.th = np.zeros(self.num_envs)
        self.thdot = np.zeros(self.num_envs)
        self.params = np.ones((self.num_envs, 2))

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks got {len(tasks)} tasks for {self.num_envs} envs")
        self.params = np.stack([t.vector() for t in tasks])

    def _obs(self) -> np.ndarray:
        return np.stack([np.cos(self.th), np.sin(self.th), self.thdot], axis=1)

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids = self._copies(indices, rngs)
        for i, r in zip(ids, rngs):
            self.th[i], self.thdot[i] = r.uniform(low=[-np.pi, -1.0], high=[np.pi, 1.0])
        return self._obs()[ids]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = np.clip(actions[:, 0], self.action_low[0], self.action_high[0])
        self.th, self.thdot, reward = pendulum_step(self.th, self.thdot, u, self.params)
        return self._obs(), reward, np.zeros(self.num_envs, dtype=bool)
