"""A stable-baselines3 ``VecEnv`` over a family's :class:`~metarl.envs.BatchEnv`.

SB3 agents step the same batched simulator as the native agent: one ``step_wait`` is one
``BatchEnv.step`` over all copies (one array in, one array out), not ``num_envs`` Gymnasium ``step``
calls. The adapter keeps SB3's ``VecEnv`` contract as :class:`~stable_baselines3.common.vec_env.DummyVecEnv`
over ``gym.make("metarl/<Name>-v0")`` keeps it, so an SB3 algorithm sees the same thing from both:

- episodes last the family's horizon; at the last step every copy is ``done`` with
  ``info["TimeLimit.truncated"] = True`` and ``info["terminal_observation"]`` (SB3 then bootstraps the
  value of the cut-off state), and the batch is reset automatically;
- ``info["episode"] = {"r", "l", "t"}`` at the end of an episode, as SB3's ``Monitor`` writes it, so
  ``rollout/ep_rew_mean`` is logged;
- observations and actions use the single env's spaces (dtype included), rewards are float32.

Copy ``i`` draws its initial states from its own generator, spawned from the seed given to
:meth:`BatchVecEnv.seed` (SB3's ``set_random_seed`` calls it), so one seed fixes every episode.

A ``BatchEnv`` resets all copies together; it has no per-copy reset. Families whose episodes end
early (``terminated``) cannot run under this adapter yet: it raises instead of feeding SB3 steps
of an episode that has ended.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from ..envs.batch import BatchEnv
from ..envs.family import Task


class BatchVecEnv(VecEnv):
    """SB3's ``VecEnv`` API over ``batch``: ``num_envs`` copies stepped by one call.

    Args:
        batch: the family's batched env (owned by the caller; :meth:`close` does not close it).
        observation_space: the single env's observation space.
        action_space: the single env's action space.
    """

    def __init__(self, batch: BatchEnv, observation_space: gym.Space, action_space: gym.Space) -> None:
        self.batch = batch
        self.horizon = int(batch.horizon)
        super().__init__(batch.num_envs, observation_space, action_space)
        self._obs_dtype = observation_space.dtype
        self._rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(0).spawn(self.num_envs)]
        self._actions: np.ndarray | None = None
        self._t = 0
        self._ep_return = np.zeros(self.num_envs)
        self._ep_start = time.perf_counter()

    # ---- metarl side ---------------------------------------------------------------------
    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Give copy ``i`` the task ``tasks[i]``; takes effect at the next reset."""
        self.batch.set_tasks(tasks)

    # ---- the VecEnv API ------------------------------------------------------------------
    def seed(self, seed: int | None = None) -> Sequence[int | None]:
        """Re-derive the per-copy generators of initial states from ``seed`` (used from the next reset)."""
        if seed is not None:
            self._rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(int(seed)).spawn(self.num_envs)]
        return [seed] * self.num_envs

    def _reset_batch(self) -> np.ndarray:
        self._t = 0
        self._ep_return[:] = 0.0
        self._ep_start = time.perf_counter()
        return self.batch.reset(self._rngs).astype(self._obs_dtype, copy=False)

    def reset(self) -> VecEnvObs:
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return self._reset_batch()

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_wait without step_async"
        actions = np.asarray(self._actions, dtype=np.float64).reshape(self.num_envs, -1)
        obs, reward, terminated = self.batch.step(actions)
        self._t += 1
        self._ep_return += reward
        obs = obs.astype(self._obs_dtype, copy=False)
        last = self._t >= self.horizon
        if terminated.any() and not (last or terminated.all()):
            raise NotImplementedError(
                f"copies {np.flatnonzero(terminated).tolist()} terminated at step {self._t} of {self.horizon}: "
                "the SB3 adapter needs fixed-length episodes (a BatchEnv has no per-copy reset)"
            )
        rewards = reward.astype(np.float32)
        if not (last or terminated.any()):
            return obs, rewards, np.zeros(self.num_envs, dtype=bool), [{} for _ in range(self.num_envs)]
        seconds = round(time.perf_counter() - self._ep_start, 6)
        infos: list[dict[str, Any]] = [
            {
                "terminal_observation": obs[i],
                "TimeLimit.truncated": bool(last and not terminated[i]),
                "episode": {"r": float(self._ep_return[i]), "l": self._t, "t": seconds},
            }
            for i in range(self.num_envs)
        ]
        new_obs = self._reset_batch()
        return new_obs, rewards, np.ones(self.num_envs, dtype=bool), infos

    def close(self) -> None:
        """Nothing to release: the ``BatchEnv`` belongs to the caller."""

    def _indices(self, indices: VecEnvIndices) -> list[int]:
        if indices is None:
            return list(range(self.num_envs))
        if isinstance(indices, int):
            return [indices]
        return list(indices)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        value = getattr(self, attr_name, None) if attr_name == "render_mode" else getattr(self.batch, attr_name)
        return [value for _ in self._indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        setattr(self.batch, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **kwargs: Any
    ) -> list[Any]:
        if method_name == "set_task":
            raise NotImplementedError("switch tasks with BatchVecEnv.set_tasks(tasks), all copies at once")
        method = getattr(self.batch, method_name)
        return [method(*method_args, **kwargs) for _ in self._indices(indices)]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        return [False for _ in self._indices(indices)]
