"""The batched-env interface: many copies of a family's env stepped together.

One action array in, one observation array out per step, so the policy is evaluated once per step for
all copies. Implementations: :class:`~metarl.envs.gym_batch.GymBatchEnv` (any family, through its own
``step``), :class:`~metarl.envs.mujoco_native.NativeMujocoBatchEnv` (MuJoCo families on MuJoCo 4's
``mujoco.batch``, vectorised hooks) and :class:`~metarl.envs.mujoco_batch.MujocoBatchEnv` (the same on
per-copy ``mj_step``, for MuJoCo 3.x).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .family import Task


class SimulationError(RuntimeError):
    """The physics went unstable (NaN, inf or huge accelerations); the message names the task and step."""


class BatchEnv:
    """Many copies of one family's env, stepped together; each copy has its own task.

    Episodes have the family's fixed horizon; the native sampler calls ``reset`` then ``step`` ``horizon``
    times. ``terminated`` marks copies whose episode ended early (none do for goal-varying HalfCheetah);
    such a copy is frozen (reward 0, still ``terminated``) until it is reset, and the sampler masks its
    later steps. SB3's ``VecEnv`` adapter instead restarts each copy the step its episode ends, with
    :meth:`reset_copies`; the batch itself knows no time limit (the horizon is its caller's to count).

    Implementations define :meth:`reset_copies`; :meth:`reset` is that over every copy.
    """

    num_envs: int
    obs_dim: int
    act_dim: int
    horizon: int
    action_low: np.ndarray
    action_high: np.ndarray

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        """Give copy ``i`` the task ``tasks[i]``; takes effect at the next ``reset``."""
        raise NotImplementedError

    def reset(self, rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Start new episodes in every copy, copy ``i`` drawing its initial state from ``rngs[i]``.

        One generator per copy makes a copy's episodes independent of which batch it runs in.
        Returns observations ``(num_envs, obs_dim)``.
        """
        if len(rngs) != self.num_envs:
            raise ValueError(f"reset got {len(rngs)} generators for {self.num_envs} envs")
        return self.reset_copies(range(self.num_envs), rngs)

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """Start new episodes in copies ``indices`` only, copy ``indices[j]`` drawing from ``rngs[j]``.

        The other copies carry on exactly as if nothing happened. A copy's initial state depends on its
        generator alone (each reset draws the same amount from it), so a copy's ``k``-th episode starts
        the same whichever copies reset when. Returns the observations of the reset copies,
        ``(len(indices), obs_dim)``, in the order of ``indices``.
        """
        raise NotImplementedError

    def _copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        """``indices`` as an int array, checked for :meth:`reset_copies`: distinct copies, one generator each."""
        ids = np.asarray(indices, dtype=np.int64).reshape(-1)
        if len(rngs) != len(ids):
            raise ValueError(f"reset got {len(rngs)} generators for {len(ids)} envs")
        if len(ids) and (ids.min() < 0 or ids.max() >= self.num_envs or len(np.unique(ids)) != len(ids)):
            raise ValueError(f"reset_copies needs distinct copies in 0..{self.num_envs - 1}, got {ids.tolist()}")
        return ids

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step every copy; returns ``(obs, reward, terminated)``. Actions are clipped to the bounds."""
        raise NotImplementedError

    def episode_success(self) -> np.ndarray | None:
        """Per copy, whether its episode since the last ``reset`` succeeded at any step, ``(num_envs,)`` bool.

        ``None`` where the family defines no success (see :attr:`TaskFamily.defines_success`).
        """
        return None

    def close(self) -> None:
        """Release threads or other resources."""
