"""HalfCheetah task families: target velocity (HalfCheetahVel) and direction (HalfCheetahDir).

Definitions follow MAML (Finn et al. 2017) and ProMP (Rothfuss et al. 2019): horizon 200, control cost
weight 0.05 (Gymnasium's HalfCheetah-v5 default is 0.1), velocity from the change of the root's x
position over one env step. Actions are clipped to the action space before the physics and the
reward see them (MuJoCo clamps controls anyway; the clip makes the control cost agree).
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from .batch import BatchEnv
from .family import Task, TaskError, TaskFamily, finite_float
from .mujoco_model import quiet_simulation
from .mujoco_native import make_mujoco_batch


@dataclasses.dataclass(frozen=True)
class VelocityTask(Task):
    """Run forward at ``velocity`` m/s."""

    velocity: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "velocity", finite_float("velocity", self.velocity))


@dataclasses.dataclass(frozen=True)
class DirectionTask(Task):
    """Run forward (``direction=+1``) or backward (``-1``)."""

    direction: int

    def __post_init__(self) -> None:
        d = finite_float("direction", self.direction)
        if d not in (-1.0, 1.0):
            raise TaskError(f"task field 'direction' must be +1 or -1, got {self.direction!r}")
        object.__setattr__(self, "direction", int(d))


class _HalfCheetahFamily(TaskFamily, HalfCheetahEnv):
    """HalfCheetah-v5 with a task-dependent forward reward: ``forward(v_x, task) - w·Σa²``."""

    horizon: ClassVar[int] = 200

    def __init__(self, task: Task | dict | None = None, ctrl_cost_weight: float = 0.05, **kwargs: Any) -> None:
        HalfCheetahEnv.__init__(self, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        utils.EzPickle.__init__(self, task=task, ctrl_cost_weight=ctrl_cost_weight, **kwargs)
        self._init_task(task)

    def _initialize_simulation(self) -> tuple[Any, Any]:
        return quiet_simulation(self)

    # The one definition of the reward, vectorised: the single env and the batch both use it.
    @staticmethod
    def _forward_reward(x_velocity: np.ndarray, task_params: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reward(self, x_velocity: np.ndarray, action: np.ndarray, task_params: np.ndarray) -> np.ndarray:
        ctrl_cost = self._ctrl_cost_weight * np.sum(np.square(action), axis=-1)
        return self._forward_reward(x_velocity, task_params) - ctrl_cost

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        obs, reward, terminated, truncated, info = super().step(action)
        info["task"] = self._task
        return obs, reward, terminated, truncated, info

    def _get_rew(self, x_velocity: float, action: np.ndarray) -> tuple[float, dict[str, float]]:
        forward = float(self._forward_reward(np.array([x_velocity]), self._task_vector[None])[0])
        ctrl_cost = float(self._ctrl_cost_weight * np.sum(np.square(action)))
        return forward - ctrl_cost, {"reward_forward": forward, "reward_ctrl": -ctrl_cost, "x_velocity": x_velocity}

    # ---- batched hooks used by the MuJoCo batched envs-------------------------------------------
    def _batch_reset(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = self._reset_noise_scale
        qpos = self.init_qpos + rng.uniform(-s, s, size=(n, self.model.nq))
        qvel = self.init_qvel + s * rng.standard_normal((n, self.model.nv))
        return qpos, qvel

    def _batch_obs(self, qpos: np.ndarray, qvel: np.ndarray) -> np.ndarray:
        if self._exclude_current_positions_from_observation:
            qpos = qpos[:, 1:]
        return np.concatenate([qpos, qvel], axis=1)

    def _batch_reward(
        self, qpos_before: np.ndarray, qpos: np.ndarray, qvel: np.ndarray, action: np.ndarray, task_params: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        x_velocity = (qpos[:, 0] - qpos_before[:, 0]) / self.dt
        return self._reward(x_velocity, action, task_params), np.zeros(len(qpos), dtype=bool)

    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        return make_mujoco_batch(cls(**env_kwargs), num_envs, threads)


class HalfCheetahVelEnv(_HalfCheetahFamily):
    """Reward ``-|v_x - v_goal| - 0.05·Σa²``; tasks ``v_goal ~ U[0, 2]`` (MAML, ProMP); horizon 200."""

    family_name: ClassVar[str] = "HalfCheetahVel"
    task_type: ClassVar[type[Task]] = VelocityTask
    meta_test_seed: ClassVar[int] = 2_000_001
    velocity_range: ClassVar[tuple[float, float]] = (0.0, 2.0)

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return [VelocityTask(float(v)) for v in rng.uniform(*cls.velocity_range, size=n)]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        lo, hi = cls.velocity_range
        return lo <= task.velocity <= hi  # type: ignore[attr-defined]

    @staticmethod
    def _forward_reward(x_velocity: np.ndarray, task_params: np.ndarray) -> np.ndarray:
        return -np.abs(x_velocity - task_params[:, 0])


class HalfCheetahDirEnv(_HalfCheetahFamily):
    """Reward ``d·v_x - 0.05·Σa²``; tasks ``d ∈ {-1, +1}`` (MAML, ProMP); horizon 200.

    With two tasks, held-out tasks cannot be disjoint from training draws: the meta-test set is 20
    of each direction, evaluated with their own seeds.
    """

    family_name: ClassVar[str] = "HalfCheetahDir"
    task_type: ClassVar[type[Task]] = DirectionTask
    meta_test_seed: ClassVar[int] = 2_000_002
    discrete_tasks: ClassVar[bool] = True

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return [DirectionTask(int(d)) for d in rng.choice([-1, 1], size=n)]

    @classmethod
    def meta_test_tasks(cls) -> list[Task]:
        half = cls.num_meta_test_tasks // 2
        return [DirectionTask(1)] * half + [DirectionTask(-1)] * (cls.num_meta_test_tasks - half)

    @staticmethod
    def _forward_reward(x_velocity: np.ndarray, task_params: np.ndarray) -> np.ndarray:
        return task_params[:, 0] * x_velocity
