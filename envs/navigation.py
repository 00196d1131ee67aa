"""Navigation2D: a point robot that must find an unseen goal in the plane (MAML's 2D navigation).

The observation is the point's position; the action is a displacement, clipped to ±0.1 per axis;
the reward is the negative Euclidean distance to the goal after the move. Goals ~ U[-0.5, 0.5]²,
start at the origin, horizon 100, no early termination. Pure numpy: the cheap family for tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import utils

from .batch import BatchEnv
from .family import Task, TaskError, TaskFamily, finite_float


@dataclasses.dataclass(frozen=True)
class GoalTask(Task):
    """Reach the point ``goal`` (x, y)."""

    goal: tuple[float, float]

    def __post_init__(self) -> None:
        if not isinstance(self.goal, (tuple, list, np.ndarray)) or len(self.goal) != 2:
            raise TaskError(f"task field 'goal' must be two numbers (x, y), got {self.goal!r}")
        object.__setattr__(self, "goal", tuple(finite_float("goal", g) for g in self.goal))


def _distance_reward(pos: np.ndarray, goals: np.ndarray) -> np.ndarray:
    return -np.linalg.norm(pos - goals, axis=-1)


class Navigation2DEnv(TaskFamily, gym.Env, utils.EzPickle):
    """Point robot in the plane; reward ``-‖x - goal‖₂``; horizon 100."""

    family_name: ClassVar[str] = "Navigation2D"
    task_type: ClassVar[type[Task]] = GoalTask
    horizon: ClassVar[int] = 100
    meta_test_seed: ClassVar[int] = 2_000_003
    goal_low: ClassVar[float] = -0.5
    goal_high: ClassVar[float] = 0.5
    max_step: ClassVar[float] = 0.1

    def __init__(self, task: Task | dict | None = None) -> None:
        utils.EzPickle.__init__(self, task=task)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-self.max_step, self.max_step, shape=(2,), dtype=np.float32)
        self._pos = np.zeros(2)
        self._init_task(task)

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return [GoalTask((float(x), float(y))) for x, y in rng.uniform(cls.goal_low, cls.goal_high, size=(n, 2))]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        return all(cls.goal_low <= g <= cls.goal_high for g in task.goal)  # type: ignore[attr-defined]

    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._pos = np.zeros(2)
        return self._pos.astype(np.float32), {"task": self._task}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), -self.max_step, self.max_step)
        self._pos = self._pos + action
        reward = float(_distance_reward(self._pos[None], self._task_vector[None])[0])
        return self._pos.astype(np.float32), reward, False, False, {"task": self._task}

    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        return PointBatchEnv(num_envs)


class PointBatchEnv(BatchEnv):
    """``num_envs`` Navigation2D points stepped as one numpy array."""

    def __init__(self, num_envs: int) -> None:
        self.num_envs = int(num_envs)
        self.obs_dim = 2
        self.act_dim = 2
        self.horizon = Navigation2DEnv.horizon
        self.action_low = np.full(2, -Navigation2DEnv.max_step)
        self.action_high = np.full(2, Navigation2DEnv.max_step)
        self.pos = np.zeros((self.num_envs, 2))
        self.goals = np.zeros((self.num_envs, 2))

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks got {len(tasks)} tasks for {self.num_envs} envs")
        self.goals = np.stack([t.vector() for t in tasks])

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids = self._copies(indices, rngs)
        self.pos[ids] = 0.0  # every episode starts at the origin: nothing drawn
        return self.pos[ids]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        self.pos = self.pos + np.clip(actions, self.action_low, self.action_high)
        return self.pos.copy(), _distance_reward(self.pos, self.goals), np.zeros(self.num_envs, dtype=bool)
