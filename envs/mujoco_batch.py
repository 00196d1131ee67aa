"""Batched stepping of MuJoCo family envs: ``mj_step`` on each copy's ``MjData``, vectorised glue.

:class:`MujocoFamilyBatch` holds what every MuJoCo batched env of a family shares (settings, tasks,
per-copy models, the calls to the family's ``_batch_*`` hooks, the instability error);
:class:`MujocoBatchEnv` is the per-copy stepper, the path for MuJoCo < 4;
:class:`~metarl.envs.mujoco_native.NativeMujocoBatchEnv` steps with MuJoCo 4's own batched stepper.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import mujoco
import numpy as np

from .batch import BatchEnv, SimulationError
from .family import Task, TaskError
from .mujoco_model import UNSTABLE_WARNINGS


class MujocoFamilyBatch(BatchEnv):
    """The part of a MuJoCo family's batched env that does not depend on how the copies are stepped.

    Opt-in extras, read from class attributes of the family: ``_batch_per_copy_models`` (each copy
    steps its own ``MjModel``; ``set_tasks`` calls ``template._apply_task_to_model(model, task)``),
    ``_batch_rne_post`` (call ``mj_rnePostConstraint`` after stepping, for ``cfrc_ext``) and
    ``_batch_data_fields`` (``MjData`` arrays gathered per copy and passed to the hooks as
    ``extra=`` / ``extra_before=`` dicts of ``(num_envs, ...)`` arrays).

    Args:
        template: an instance of the family env; its model and settings are shared by all copies.
        num_envs: number of copies.
    """

    # each copy's current state and gathered ``MjData`` fields, rows of (num_envs, ...) arrays (set by subclasses)
    qpos: np.ndarray
    qvel: np.ndarray
    extra: dict[str, np.ndarray]

    def __init__(self, template: Any, num_envs: int) -> None:
        self.template = template
        self.num_envs = int(num_envs)
        self.model = template.model
        # Opt-in extras, off for the HalfCheetah families (their step loop stays the plain one):
        # dynamics families give each copy its own model; Ant needs contact forces and body positions.
        self._per_copy_models = bool(getattr(template, "_batch_per_copy_models", False))
        self._rne_post = bool(getattr(template, "_batch_rne_post", False))
        self._fields: tuple[str, ...] = tuple(getattr(template, "_batch_data_fields", ()))
        self.models = [copy.copy(self.model) for _ in range(self.num_envs)] if self._per_copy_models else None
        self._copy_tasks: list[Task | None] = [None] * self.num_envs
        self.frame_skip = int(template.frame_skip)
        self.dt = float(template.dt)
        self.horizon = int(template.horizon)
        self.action_low = template.action_space.low.astype(np.float64)
        self.action_high = template.action_space.high.astype(np.float64)
        self.act_dim = int(self.action_low.shape[0])
        self.task_params = np.zeros((self.num_envs, template.get_task().vector().shape[0]))
        self.obs_dim = int(template.observation_space.shape[0])
        self._ctrl = np.zeros((self.num_envs, self.act_dim))
        self._tasks: list[Task] = [template.get_task()] * self.num_envs
        self._t = np.zeros(self.num_envs, dtype=np.int64)  # per copy, env steps since its reset (error messages)
        # A copy that terminated is frozen until its next reset (the sampler masks its later steps), so
        # early-terminating walkers do not pay physics for dead episodes.
        self._done = np.zeros(self.num_envs, dtype=bool)

    def model_of(self, i: int) -> mujoco.MjModel:
        """The model copy ``i`` steps with (its own one for dynamics families)."""
        return self.models[i] if self.models is not None else self.model

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        self._set_tasks(tasks)

    def _set_tasks(self, tasks: Sequence[Task]) -> bool:
        """Validate and store ``tasks``; write each changed copy's dynamics. Returns whether a model changed."""
        if len(tasks) != self.num_envs:
            raise ValueError(f"set_tasks got {len(tasks)} tasks for {self.num_envs} envs")
        for t in tasks:
            if not isinstance(t, self.template.task_type):
                raise TaskError(f"{self.template.family_name} takes a {self.template.task_type.__name__}")
        self.task_params = np.stack([t.vector() for t in tasks])
        self._tasks = list(tasks)
        changed = False
        if self.models is not None:  # dynamics: nominal * scale into each copy's model, once per change
            for i, t in enumerate(tasks):
                if self._copy_tasks[i] != t:
                    self.template._apply_task_to_model(self.models[i], t)
                    self._copy_tasks[i] = t
                    changed = True
        return changed

    def _initial_states(
        self, indices: Sequence[int], rngs: Sequence[np.random.Generator]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids, qpos, qvel)``: the copies as an index array and their initial states, copy ``indices[j]`` drawn
        from ``rngs[j]``; starts their episodes (step count, frozen flag)."""
        ids = self._copies(indices, rngs)
        self._t[ids] = 0
        self._done[ids] = False
        states = [self.template._batch_reset(rng, 1) for rng in rngs]
        if not states:
            return ids, np.zeros((0, self.model.nq)), np.zeros((0, self.model.nv))
        return ids, np.concatenate([q for q, _ in states]), np.concatenate([v for _, v in states])

    def _observe(self, qpos: np.ndarray, qvel: np.ndarray, extra: dict[str, np.ndarray]) -> np.ndarray:
        """The family's observations of every copy."""
        if self._fields:
            return self.template._batch_obs(qpos, qvel, extra=extra)
        return self.template._batch_obs(qpos, qvel)

    def _observe_copies(self, ids: np.ndarray) -> np.ndarray:
        """The observations of copies ``ids``, from the current state rows."""
        if not len(ids):
            return np.zeros((0, self.obs_dim))
        return self._observe(self.qpos[ids], self.qvel[ids], {f: v[ids] for f, v in self.extra.items()})

    def _transition(
        self,
        qpos_before: np.ndarray,
        qpos: np.ndarray,
        qvel: np.ndarray,
        extra_before: dict[str, np.ndarray],
        extra: dict[str, np.ndarray],
        freeze: bool,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(obs, reward, terminated)`` from the family's hooks; with ``freeze``, frozen copies get reward 0."""
        obs = self._observe(qpos, qvel, extra)
        if self._fields:
            reward, terminated = self.template._batch_reward(
                qpos_before, qpos, qvel, self._ctrl, self.task_params, extra_before=extra_before, extra=extra
            )
        else:
            reward, terminated = self.template._batch_reward(qpos_before, qpos, qvel, self._ctrl, self.task_params)
        if freeze:  # frozen copies: no reward, still terminated
            reward[self._done] = 0.0
            terminated = terminated | self._done
            self._done |= terminated
        return obs, reward, terminated

    def _unstable(self, i: int, which: str) -> SimulationError:
        """The error for copy ``i`` going unstable (``which``: the warnings or the cause) at the current step."""
        return SimulationError(
            f"{self.template.family_name}: the simulation went unstable ({which}) at env step {self._t[i]} "
            f"of the episode, in copy {i} of {self.num_envs}, task {self._tasks[i]!r}"
        )


class MujocoBatchEnv(MujocoFamilyBatch):
    """Copies of a MuJoCo family env stepped by calling ``mj_step`` on their ``MjData`` directly.

    The physics is the one of plain Gymnasium stepping, bit for bit (same ``mj_step`` calls on the
    same state, warm-start included); only the Python glue around it is batched: observations and
    rewards are computed with vectorised numpy by the family's ``_batch_*`` hooks, the same
    functions its single env uses. The copies are split over ``threads`` Python threads: MuJoCo
    releases the GIL inside ``mj_step``, so physics runs on all cores. The family's opt-in extras are
    those of :class:`MujocoFamilyBatch`.

    Args:
        template: an instance of the family env; its model and settings are shared by all copies.
        num_envs: number of copies.
        threads: stepping threads (default: CPU cores, at most one per 8 copies).
    """

    def __init__(self, template: Any, num_envs: int, threads: int | None = None) -> None:
        super().__init__(template, num_envs)
        self.datas = [mujoco.MjData(m) for m in (self.models or [self.model] * self.num_envs)]
        self.extra = {f: np.zeros((self.num_envs, *getattr(self.datas[0], f).shape)) for f in self._fields}
        self._extra_before = {f: np.zeros_like(v) for f, v in self.extra.items()}
        self.qpos = np.zeros((self.num_envs, self.model.nq))
        self.qvel = np.zeros((self.num_envs, self.model.nv))
        self._qpos_before = np.zeros_like(self.qpos)
        cores = os.cpu_count() or 1
        threads = cores if threads is None else int(threads)
        self.threads = max(1, min(threads, self.num_envs // 8 or 1))
        bounds = np.linspace(0, self.num_envs, self.threads + 1).astype(int)
        self._slices = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._pool = ThreadPoolExecutor(self.threads) if self.threads > 1 else None
        self._warnings = [d.warning.number for d in self.datas]  # live views of each copy's warning counters
        self._general = self._per_copy_models or self._rne_post or bool(self._fields)

    def get_data(self, i: int) -> mujoco.MjData:
        """Copy ``i``'s ``MjData`` (its state and the derived fields of its last step)."""
        return self.datas[i]

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids, qpos0, qvel0 = self._initial_states(indices, rngs)
        for j, i in enumerate(ids):  # what Gymnasium's reset does: mj_resetData, the initial state, mj_forward
            d, model = self.datas[i], self.model_of(i)
            mujoco.mj_resetData(model, d)
            d.qpos[:] = qpos0[j]
            d.qvel[:] = qvel0[j]
            mujoco.mj_forward(model, d)
            self.qpos[i] = d.qpos
            self.qvel[i] = d.qvel
            for f, arr in self.extra.items():
                arr[i] = getattr(d, f)
        return self._observe_copies(ids)

    def _step_slice(self, lo: int, hi: int) -> None:
        model, fs, ctrl, qpos, qvel = self.model, self.frame_skip, self._ctrl, self.qpos, self.qvel
        step = mujoco.mj_step
        for i in range(lo, hi):
            d = self.datas[i]
            d.ctrl[:] = ctrl[i]
            step(model, d, fs)
            qpos[i] = d.qpos
            qvel[i] = d.qvel

    def _step_slice_general(self, lo: int, hi: int) -> None:
        fs, ctrl, qpos, qvel, extra, done = self.frame_skip, self._ctrl, self.qpos, self.qvel, self.extra, self._done
        step, rne = mujoco.mj_step, mujoco.mj_rnePostConstraint
        for i in range(lo, hi):
            if done[i]:
                continue
            d, model = self.datas[i], self.model_of(i)
            d.ctrl[:] = ctrl[i]
            step(model, d, fs)
            if self._rne_post:  # cfrc_ext and friends, as Gymnasium's do_simulation computes them
                rne(model, d)
            qpos[i] = d.qpos
            qvel[i] = d.qvel
            for f, arr in extra.items():
                arr[i] = getattr(d, f)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        np.clip(actions, self.action_low, self.action_high, out=self._ctrl)
        self._qpos_before[:] = self.qpos
        stepper = self._step_slice_general if self._general else self._step_slice
        for f, arr in self.extra.items():
            self._extra_before[f][:] = arr
        if self._pool is None:
            stepper(0, self.num_envs)
        else:
            for f in [self._pool.submit(stepper, lo, hi) for lo, hi in self._slices]:
                f.result()
        self._check_stable()
        return self._transition(self._qpos_before, self.qpos, self.qvel, self._extra_before, self.extra, self._general)

    def _check_stable(self) -> None:
        """Raise :class:`SimulationError` naming the copy's task and the step if any copy went unstable."""
        self._t += 1
        a, b, c, d = (int(w) for w in UNSTABLE_WARNINGS)
        finite = np.isfinite(self.qvel).all()
        for i, n in enumerate(self._warnings):  # ~0.3 µs a copy against ~40 µs of physics
            if n[a] or n[b] or n[c] or n[d] or not (finite or np.isfinite(self.qvel[i]).all()):
                which = ", ".join(w.name for w in UNSTABLE_WARNINGS if n[int(w)]) or "non-finite velocity"
                for dd, m in zip(self.datas, self.models or [self.model] * self.num_envs):
                    mujoco.mj_resetData(m, dd)  # the copies stay usable: the next episode starts clean
                raise self._unstable(i, which)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
