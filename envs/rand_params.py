"""HopperRandParams and Walker2dRandParams: locomotion under randomised dynamics (MAML/ProMP's rand_param_envs).

Reward ``v_x + 1 - 1e-3·Σa²`` (Gymnasium's Hopper-v5 / Walker2d-v5 reward with their defaults); the
episode terminates when the robot is unhealthy (Hopper: height ≤ 0.7, |angle| ≥ 0.2 or |state| ≥ 100;
Walker2d: height outside (0.8, 2.0) or |angle| ≥ 1), as in the reference code. Per task, body masses,
body inertias and geom frictions are scaled by ``1.5^U(-3, 3)`` and DOF damping by ``1.3^U(-3, 3)``,
element-wise, from the nominal model (see :mod:`.randomized`). Horizon 200.

:class:`HopperDynamics` and :class:`Walker2dDynamics` carry the vectorised reward, termination and
observation shared by the single env and the batched envs (:func:`~metarl.envs.mujoco_native.make_mujoco_batch`);
``randomized("Hopper-v5", ...)`` builds on them too.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from .batch import BatchEnv
from .family import Task
from .mujoco_native import make_mujoco_batch
from .randomized import DynamicsFamily

_RAND_PARAMS = {
    "body_mass": (1.5**-3, 1.5**3),
    "body_inertia": (1.5**-3, 1.5**3),
    "geom_friction": (1.5**-3, 1.5**3),
    "dof_damping": (1.3**-3, 1.3**3),
}


class _PlanarWalkerDynamics(DynamicsFamily):
    """Vectorised Hopper/Walker2d-v5 reward, health check and observation (one definition for both paths)."""

    horizon: ClassVar[int] = 200

    def __init__(self, task: Task | dict | None = None, **kwargs: Any) -> None:
        self._gym_base.__init__(self, **kwargs)
        utils.EzPickle.__init__(self, task=task, **kwargs)
        self._init_task(task)

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reward_terms(
        self, x_velocity: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(reward, healthy, forward, ctrl_cost)`` for a batch of transitions."""
        healthy = self._healthy(qpos, qvel)
        forward = self._forward_reward_weight * x_velocity
        ctrl = self._ctrl_cost_weight * np.square(action).sum(-1)
        return forward + healthy * self._healthy_reward - ctrl, healthy, forward, ctrl

    @property
    def is_healthy(self) -> bool:
        return bool(self._healthy(self.data.qpos[None], self.data.qvel[None])[0])

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        reward, healthy, forward, ctrl = self._reward_terms(
            np.array([x_velocity]), self.data.qpos[None], self.data.qvel[None], np.asarray(action)[None]
        )
        info = {"reward_forward": float(forward[0]), "reward_ctrl": -float(ctrl[0])}
        info["reward_survive"] = float(healthy[0] * self._healthy_reward)
        return float(reward[0]), info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        obs, reward, terminated, truncated, info = super().step(action)
        info["task"] = self._task
        return obs, reward, terminated, truncated, info

    # ---- batched hooks used by the MuJoCo batched envs-------------------------------------------
    def _batch_reset(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = self._reset_noise_scale
        qpos = self.init_qpos + rng.uniform(-s, s, size=(n, self.model.nq))
        qvel = self.init_qvel + rng.uniform(-s, s, size=(n, self.model.nv))
        return qpos, qvel

    def _batch_obs(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        if self._exclude_current_positions_from_observation:
            qpos = qpos[:, 1:]
        return np.concatenate([qpos, np.clip(qvel, -10, 10)], axis=1)

    def _batch_reward(
        self, qpos_before: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray, task_params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        x_velocity = (qpos[:, 0] - qpos_before[:, 0]) / self.dt
        reward, healthy, _, _ = self._reward_terms(x_velocity, qpos, qvel, action)
        terminated = ~healthy if self._terminate_when_unhealthy else np.zeros(len(qpos), dtype=bool)
        return reward, terminated

    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        return make_mujoco_batch(cls(**env_kwargs), num_envs, threads)


class HopperDynamics(_PlanarWalkerDynamics, HopperEnv):
    """Hopper-v5 with per-task model scales (set ``scale_ranges`` in a subclass or use ``randomized``)."""

    _gym_base: ClassVar[type] = HopperEnv

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        state = np.concatenate([qpos, qvel], axis=1)[:, 2:]
        lo, hi = self._healthy_state_range
        z_lo, z_hi = self._healthy_z_range
        a_lo, a_hi = self._healthy_angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        ok_state = np.all((lo < state) & (state < hi), axis=1)
        return ok_state & (z_lo < z) & (z < z_hi) & (a_lo < angle) & (angle < a_hi)


class Walker2dDynamics(_PlanarWalkerDynamics, Walker2dEnv):
    """Walker2d-v5 with per-task model scales (set ``scale_ranges`` in a subclass or use ``randomized``)."""

    _gym_base: ClassVar[type] = Walker2dEnv

    def _healthy(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        z_lo, z_hi = self._healthy_z_range
        a_lo, a_hi = self._healthy_angle_range
        z, angle = qpos[:, 1], qpos[:, 2]
        return (z_lo < z) & (z < z_hi) & (a_lo < angle) & (angle < a_hi)


class HopperRandParamsEnv(HopperDynamics):
    """Reward ``v_x + 1 - 1e-3·Σa²``; mass, inertia, friction × 1.5^U(-3,3), damping × 1.3^U(-3,3); horizon 200."""

    family_name: ClassVar[str] = "HopperRandParams"
    meta_test_seed: ClassVar[int] = 2_000_007
    scale_ranges: ClassVar[dict[str, tuple[float, float]]] = _RAND_PARAMS


class Walker2dRandParamsEnv(Walker2dDynamics):
    """Reward ``v_x + 1 - 1e-3·Σa²``; mass, inertia, friction × 1.5^U(-3,3), damping × 1.3^U(-3,3); horizon 200."""

    family_name: ClassVar[str] = "Walker2dRandParams"
    meta_test_seed: ClassVar[int] = 2_000_008
    scale_ranges: ClassVar[dict[str, tuple[float, float]]] = _RAND_PARAMS
