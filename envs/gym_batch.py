"""Batched stepping for any family env, one copy at a time through its own ``step`` (correct, slower).

The default ``make_batch`` of a :class:`~metarl.envs.family.TaskFamily`: a family written in a few
lines (a task dataclass, ``_draw_tasks`` and the reward) trains without writing batched hooks.
Families that need throughput implement the hooks of :class:`~metarl.envs.mujoco_batch.MujocoFamilyBatch`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .batch import BatchEnv
from .family import Task


class GymBatchEnv(BatchEnv):
    """Copies of a family env stepped one at a time through their own ``step`` (any env; slower).

    A copy that terminated is frozen until its next reset (reward 0, ``terminated`` stays True); the
    sampler masks those steps anyway. For a family that ``defines_success``, each copy records whether
    ``info["success"]`` was truthy at any step of its episode (:meth:`episode_success`).
    """

    def __init__(self, family: type, num_envs: int, **env_kwargs: Any) -> None:
        self.envs = [family(**env_kwargs) for _ in range(int(num_envs))]
        env = self.envs[0]
        self.num_envs = len(self.envs)
        self.horizon = int(family.horizon)
        self.obs_dim = int(env.observation_space.shape[0])
        self.act_dim = int(env.action_space.shape[0])
        self.action_low = env.action_space.low.astype(np.float64)
        self.action_high = env.action_space.high.astype(np.float64)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._obs = np.zeros((self.num_envs, self.obs_dim))
        self._success = np.zeros(self.num_envs, dtype=bool) if getattr(family, "defines_success", False) else None

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks got {len(tasks)} tasks for {self.num_envs} envs")
        for env, t in zip(self.envs, tasks):
            if env.get_task() != t:
                env.set_task(t)

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids = self._copies(indices, rngs)
        for i, r in zip(ids, rngs):
            self._done[i] = False
            if self._success is not None:
                self._success[i] = False
            self._obs[i] = self.envs[i].reset(seed=int(r.integers(2**31)))[0]
        return self._obs[ids]

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        reward = np.zeros(self.num_envs)
        # As every BatchEnv: the env (and its control cost) sees actions clipped to the bounds
        actions = np.clip(actions, self.action_low, self.action_high)
        for i, env in enumerate(self.envs):
            if not self._done[i]:
                obs, reward[i], terminated, _, info = env.step(actions[i])
                self._obs[i] = obs
                self._done[i] = terminated
                if self._success is not None and info.get("success"):
                    self._success[i] = True
        return self._obs.copy(), reward, self._done.copy()

    def episode_success(self) -> np.ndarray | None:
        return None if self._success is None else self._success.copy()

    def close(self) -> None:
        for env in self.envs:
            env.close()
