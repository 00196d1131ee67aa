"""Ant task families: direction (AntDir, AntDirAngle) and goal position (AntGoal).

Definitions follow ProMP (Rothfuss et al. 2019, ``AntRandDirecEnv``) and PEARL (Rakelly et al. 2019,
``AntGoalEnv``) on Gymnasium's Ant-v5 model, horizon 200:

- AntDir: ``d·v_x - 0.5·Σa² - contact + 1``, ``d ∈ {-1, +1}``; terminates when unhealthy (torso height
  outside [0.2, 1.0] or a non-finite state), as ProMP's env and Ant-v5 do.
- AntDirAngle: the same with ``(cos φ, sin φ)·v_xy``, ``φ ~ U[0, 2π)``.
- AntGoal: ``-‖xy - goal‖₁ - 0.1·Σa² - contact``, goal uniform in a disk of radius 3; never terminates
  (PEARL's ``done = False``), no survival bonus.

``contact = 5e-4·Σ clip(cfrc_ext, -1, 1)²`` (= ProMP's ``0.5·1e-3``). Velocities and positions are those
of the torso body (``xpos``), as in Ant-v5 and the reference code. Actions are clipped to the action
space before the physics and the reward see them.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar

import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from .batch import BatchEnv
from .family import Task, TaskFamily, finite_float
from .half_cheetah import DirectionTask
from .mujoco_model import quiet_simulation
from .mujoco_native import make_mujoco_batch
from .navigation import GoalTask


@dataclasses.dataclass(frozen=True)
class AngleTask(Task):
    """Run in the direction ``(cos angle, sin angle)`` (radians)."""

    angle: float

    def __post_init__(self) -> None:
        object.__setattr__(self, "angle", finite_float("angle", self.angle))


class _AntFamily(TaskFamily, AntEnv):
    """Ant-v5 with a task-dependent reward; the reward is one vectorised function (``_reward_terms``)."""

    horizon: ClassVar[int] = 200
    #: constructor defaults of the family (override Ant-v5's where the literature differs)
    family_defaults: ClassVar[dict[str, Any]] = {}
    # Batched-env extras: contact forces need mj_rnePostConstraint; the reward reads the torso xpos. On
    # mujoco.batch (no such call) each copy's MjData is copied out after the step for it: see NativeMujocoBatchEnv.
    _batch_rne_post: ClassVar[bool] = True
    _batch_data_fields: ClassVar[tuple[str, ...]] = ("xpos", "cfrc_ext")

    def __init__(self, task: Task | dict | None = None, **kwargs: Any) -> None:
        kwargs = {**self.family_defaults, **kwargs}
        AntEnv.__init__(self, **kwargs)
        utils.EzPickle.__init__(self, task=task, **kwargs)
        if not isinstance(self._main_body, int):
            self._main_body = int(self.model.body(self._main_body).id)
        self._init_task(task)

    def _initialize_simulation(self) -> tuple[Any, Any]:
        return quiet_simulation(self)

    # ---- the one definition of the reward ------------------------------------------------------
    @staticmethod
    def _task_reward(xy_before: np.ndarray, xy_after: np.ndarray, dt: float, task_params: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _reward_terms(
        self,
        xy_before: np.ndarray,
        xy_after: np.ndarray,
        qpos: np.ndarray,
        qvel: np.ndarray,
        cfrc_ext: np.ndarray,
        action: np.ndarray,
        task_params: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """``(reward, terminated, terms)`` for a batch (leading dim n) of transitions."""
        lo, hi = self._contact_force_range
        contact = self._contact_cost_weight * np.square(np.clip(cfrc_ext, lo, hi)).sum(axis=(-2, -1))
        ctrl = self._ctrl_cost_weight * np.square(action).sum(-1)
        z_lo, z_hi = self._healthy_z_range
        healthy = np.isfinite(qpos).all(-1) & np.isfinite(qvel).all(-1) & (qpos[:, 2] >= z_lo) & (qpos[:, 2] <= z_hi)
        survive = healthy * self._healthy_reward
        task = self._task_reward(xy_before, xy_after, self.dt, task_params)
        reward = task + survive - ctrl - contact
        terminated = ~healthy if self._terminate_when_unhealthy else np.zeros(len(qpos), dtype=bool)
        return reward, terminated, {"reward_task": task, "reward_ctrl": -ctrl, "reward_contact": -contact}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), self.action_space.low, self.action_space.high)
        xy_before = self.data.xpos[self._main_body, :2].copy()
        self.do_simulation(action, self.frame_skip)  # mj_step, then mj_rnePostConstraint
        xy_after = self.data.xpos[self._main_body, :2].copy()
        obs = self._get_obs()
        reward, terminated, terms = self._reward_terms(
            xy_before[None],
            xy_after[None],
            self.data.qpos[None],
            self.data.qvel[None],
            self.data.cfrc_ext[None],
            action[None],
            self._task_vector[None],
        )
        velocity = (xy_after - xy_before) / self.dt
        info = {k: float(v[0]) for k, v in terms.items()}
        info.update(x_position=xy_after[0], y_position=xy_after[1], x_velocity=velocity[0], y_velocity=velocity[1])
        info["task"] = self._task
        return obs, float(reward[0]), bool(terminated[0]), False, info

    # ---- batched hooks used by the MuJoCo batched envs-------------------------------------------
    def _batch_reset(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        s = self._reset_noise_scale
        qpos = self.init_qpos + rng.uniform(-s, s, size=(n, self.model.nq))
        qvel = self.init_qvel + s * rng.standard_normal((n, self.model.nv))
        return qpos, qvel

    def _batch_obs(self, qpos: np.ndarray, qvel: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        parts = [qpos[:, 2:] if self._exclude_current_positions_from_observation else qpos, qvel]
        if self._include_cfrc_ext_in_observation:
            lo, hi = self._contact_force_range
            cfrc = extra["cfrc_ext"][:, 1:]
            parts.append(np.clip(cfrc, lo, hi).reshape(len(qpos), -1))
        return np.concatenate(parts, axis=1)

    def _batch_reward(
        self,
        qpos_before: np.ndarray,
        qpos: np.ndarray,
        qvel: np.ndarray,
        action: np.ndarray,
        task_params: np.ndarray,
        extra_before: dict[str, np.ndarray],
        extra: dict[str, np.ndarray],
    ) -> tuple[np.ndarray, np.ndarray]:
        b = self._main_body
        xy_before, xy_after = extra_before["xpos"][:, b, :2], extra["xpos"][:, b, :2]
        reward, terminated, _ = self._reward_terms(
            xy_before, xy_after, qpos, qvel, extra["cfrc_ext"], action, task_params
        )
        return reward, terminated

    @classmethod
    def make_batch(cls, num_envs: int, threads: int | None = None, **env_kwargs: Any) -> BatchEnv:
        return make_mujoco_batch(cls(**env_kwargs), num_envs, threads)


class AntDirEnv(_AntFamily):
    """Reward ``d·v_x - 0.5·Σa² - contact + 1``; tasks ``d ∈ {-1, +1}`` (ProMP); horizon 200.

    With two tasks, held-out tasks cannot be disjoint from training draws: the meta-test set is 20
    of each direction, evaluated with their own seeds.
    """

    family_name: ClassVar[str] = "AntDir"
    task_type: ClassVar[type[Task]] = DirectionTask
    meta_test_seed: ClassVar[int] = 2_000_004
    discrete_tasks: ClassVar[bool] = True
    family_defaults: ClassVar[dict[str, Any]] = dict(ctrl_cost_weight=0.5, healthy_reward=1.0)

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return [DirectionTask(int(d)) for d in rng.choice([-1, 1], size=n)]

    @classmethod
    def meta_test_tasks(cls) -> list[Task]:
        half = cls.num_meta_test_tasks // 2
        return [DirectionTask(1)] * half + [DirectionTask(-1)] * (cls.num_meta_test_tasks - half)

    @staticmethod
    def _task_reward(xy_before: np.ndarray, xy_after: np.ndarray, dt: float, task_params: np.ndarray) -> np.ndarray:
        return task_params[:, 0] * (xy_after[:, 0] - xy_before[:, 0]) / dt


class AntDirAngleEnv(_AntFamily):
    """Reward ``(cos φ, sin φ)·v_xy - 0.5·Σa² - contact + 1``; tasks ``φ ~ U[0, 2π)``; horizon 200."""

    family_name: ClassVar[str] = "AntDirAngle"
    task_type: ClassVar[type[Task]] = AngleTask
    meta_test_seed: ClassVar[int] = 2_000_005
    family_defaults: ClassVar[dict[str, Any]] = dict(ctrl_cost_weight=0.5, healthy_reward=1.0)

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        return [AngleTask(float(a)) for a in rng.uniform(0.0, 2 * math.pi, size=n)]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        return 0.0 <= task.angle < 2 * math.pi  # type: ignore[attr-defined]

    @staticmethod
    def _task_reward(xy_before: np.ndarray, xy_after: np.ndarray, dt: float, task_params: np.ndarray) -> np.ndarray:
        v = (xy_after - xy_before) / dt
        return np.cos(task_params[:, 0]) * v[:, 0] + np.sin(task_params[:, 0]) * v[:, 1]


class AntGoalEnv(_AntFamily):
    """Reward ``-‖xy - goal‖₁ - 0.1·Σa² - contact``; goal uniform in the disk of radius 3 (PEARL); horizon 200."""

    family_name: ClassVar[str] = "AntGoal"
    task_type: ClassVar[type[Task]] = GoalTask
    meta_test_seed: ClassVar[int] = 2_000_006
    goal_radius: ClassVar[float] = 3.0
    family_defaults: ClassVar[dict[str, Any]] = dict(
        ctrl_cost_weight=0.1, healthy_reward=0.0, terminate_when_unhealthy=False
    )

    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        angle = rng.uniform(0.0, 2 * math.pi, size=n)
        radius = cls.goal_radius * np.sqrt(rng.uniform(0.0, 1.0, size=n))  # uniform over the disk's area
        return [GoalTask((float(r * math.cos(a)), float(r * math.sin(a)))) for a, r in zip(angle, radius)]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        return math.hypot(*task.goal) <= cls.goal_radius  # type: ignore[attr-defined]

    @staticmethod
    def _task_reward(xy_before: np.ndarray, xy_after: np.ndarray, dt: float, task_params: np.ndarray) -> np.ndarray:
        return -np.abs(xy_after - task_params[:, :2]).sum(-1)
