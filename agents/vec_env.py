"""A stable-baselines3 ``VecEnv`` over a family's :class:`~metarl.envs.BatchEnv`.

SB3 agents step the same batched simulator as the native agent: one ``step_wait`` is one
``BatchEnv.step`` over all copies (one array in, one array out), not ``num_envs`` Gymnasium ``step``
calls. The adapter keeps SB3's ``VecEnv`` contract as :class:`~stable_baselines3.common.vec_env.DummyVecEnv`
over ``gym.make("metarl/<Name>-v0")`` (a ``TimeLimit`` of the family's horizon) keeps it, so an SB3
algorithm sees the same thing from both:

- each copy's episode ends when it terminates (an unhealthy walker) or at the horizon, whichever comes
  first; that step the copy is ``done`` with ``info["terminal_observation"]`` and
  ``info["TimeLimit.truncated"]`` (True only for a cut-off episode, whose value SB3 then bootstraps),
  and only that copy is restarted (:meth:`BatchEnv.reset_copies`): the observation returned for it is
  its next episode's first one, as SB3's auto-reset gives;
- ``info["episode"] = {"r", "l", "t"}`` at the end of an episode, as SB3's ``Monitor`` writes it, so
  ``rollout/ep_rew_mean`` is logged; the other copies' infos are empty;
- observations and actions use the single env's spaces (dtype included), rewards are float32.

Copy ``i`` draws the initial state of each of its episodes, in turn, from its own generator, spawned
from the seed given to :meth:`BatchVecEnv.seed` (SB3's ``set_random_seed`` calls it): one seed fixes
every episode, whichever copies end when.
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
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # per copy, steps into its episode
        self._ep_return = np.zeros(self.num_envs)
        self._t_start = time.perf_counter()  # Monitor's "t": seconds since the env was made

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

    def reset(self) -> VecEnvObs:
        self.reset_infos = [{} for _ in range(self.num_envs)]
        self._t[:] = 0
        self._ep_return[:] = 0.0
        return self.batch.reset(self._rngs).astype(self._obs_dtype, copy=False)

    def step_async(self, actions: np.ndarray) -> None:
        self._actions = actions

    def step_wait(self) -> VecEnvStepReturn:
        assert self._actions is not None, "step_wait without step_async"
        actions = np.asarray(self._actions, dtype=np.float64).reshape(self.num_envs, -1)
        obs, reward, terminated = self.batch.step(actions)
        self._t += 1
        self._ep_return += reward
        obs = obs.astype(self._obs_dtype, copy=False)
        rewards = reward.astype(np.float32)
        truncated = (self._t >= self.horizon) & ~terminated
        dones = terminated | truncated
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        if not dones.any():
            return obs, rewards, dones, infos
        ended = np.flatnonzero(dones)
        seconds = round(time.perf_counter() - self._t_start, 6)
        for i in ended:
            infos[i] = {
                "terminal_observation": obs[i].copy(),
                "TimeLimit.truncated": bool(truncated[i]),
                "episode": {"r": float(self._ep_return[i]), "l": int(self._t[i]), "t": seconds},
            }
        if len(ended) == self.num_envs:  # every copy at once (fixed-length episodes): one batch reset
            new_obs = self.reset()
        else:
            self._t[ended] = 0
            self._ep_return[ended] = 0.0
            new_obs = obs.copy()
            new_obs[ended] = self.batch.reset_copies(ended, [self._rngs[i] for i in ended])
        return new_obs, rewards, dones, infos

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
