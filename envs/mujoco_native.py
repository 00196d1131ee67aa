"""Batched stepping of MuJoCo family envs on MuJoCo 4's own batched stepper, ``mujoco.batch.Batch``.

:func:`make_mujoco_batch` is what the MuJoCo families' ``make_batch`` calls: :class:`NativeMujocoBatchEnv`
where ``mujoco.batch`` exists (MuJoCo >= 4.0) for every MuJoCo family but Ant, else the per-copy
:class:`~metarl.envs.mujoco_batch.MujocoBatchEnv` (MuJoCo 3.x, e.g. under the Meta-World extra's pin). The
environment variable ``METARL_MUJOCO_STEPPER`` (``batch`` | ``per-copy``; unset or ``auto``: the default)
forces one, for comparisons and benchmarks; worker processes inherit it.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Sequence
from typing import Any

import mujoco
import numpy as np

from .batch import BatchEnv
from .family import Task
from .mujoco_batch import MujocoBatchEnv, MujocoFamilyBatch
from .mujoco_model import UNSTABLE_WARNINGS

#: Whether this MuJoCo ships ``mujoco.batch`` (4.0 and later).
HAS_NATIVE_BATCH = importlib.util.find_spec("mujoco.batch") is not None
#: ``MjData`` fields that ``mj_rnePostConstraint`` computes: the batch has no such call, so these come per copy.
_RNE_POST_FIELDS = frozenset({"cacc", "cfrc_int", "cfrc_ext"})
_STEPPERS = ("auto", "batch", "per-copy")


def make_mujoco_batch(template: Any, num_envs: int, threads: int | None = None) -> BatchEnv:
    """The batched env of a MuJoCo family: MuJoCo's batched stepper where it exists, else per-copy ``mj_step``.

    Families with ``_batch_rne_post`` (Ant) step per copy unless ``batch`` is forced (both are exact; per copy
    is faster for them, see docs/throughput.md).

    Args:
        template: an instance of the family env (its model and settings are shared by all copies).
        num_envs: number of copies.
        threads: threads that step the copies (default: the CPU cores).

    ``METARL_MUJOCO_STEPPER=per-copy`` (or ``batch``) forces the path; both give identical results.
    """
    choice = os.environ.get("METARL_MUJOCO_STEPPER", "auto") or "auto"
    if choice not in _STEPPERS:
        raise ValueError(f"METARL_MUJOCO_STEPPER must be one of {', '.join(_STEPPERS)}, got {choice!r}")
    if choice == "batch" and not HAS_NATIVE_BATCH:
        raise RuntimeError(
            f"METARL_MUJOCO_STEPPER=batch needs MuJoCo >= 4.0 (mujoco.batch); this is {mujoco.__version__}"
        )
    # auto: families that need mj_rnePostConstraint (Ant) stay per-copy, measured faster there: the batch has
    # no such call, and copying each copy's MjData out of it (Batch.get_data) is serialised by the batch's lock,
    # while per-copy mj_step + mj_rnePostConstraint run on Python threads with the GIL released (docs/throughput.md).
    rne_post = bool(getattr(template, "_batch_rne_post", False))
    if choice == "per-copy" or not HAS_NATIVE_BATCH or (choice == "auto" and rne_post):
        return MujocoBatchEnv(template, num_envs, threads)
    return NativeMujocoBatchEnv(template, num_envs, threads)


class NativeMujocoBatchEnv(MujocoFamilyBatch):
    """Copies of a MuJoCo family env stepped closed loop by ``mujoco.batch.Batch`` on persistent C threads.

    One ``Batch(model, num_envs, threads)`` holds every copy's state row; a step writes the clipped actions
    into the bound ``ctrl`` view and calls ``Batch.step(alive, frame_skip)``, which runs ``frame_skip`` calls of
    ``mj_step`` per copy with the GIL released and keeps the whole integration state (solver warm-start
    included) between calls. The batch is ``persistent`` (one ``MjData`` per copy) only for families that read
    a copy's whole ``MjData`` back (Ant, below); otherwise each thread's ``MjData`` serves its copies. The
    physics is therefore that of plain Gymnasium stepping, bit for bit, for any number of threads (tested),
    as MuJoCo documents for ``Batch``. Observations and rewards come from the family's vectorised
    ``_batch_*`` hooks reading the bound ``qpos`` / ``qvel`` (and ``xpos`` ...) views; terminated copies are
    left out of the step until the next reset. Instability is read from the batch's per-copy warning
    counters, and a MuJoCo error inside the batch becomes a :class:`~metarl.envs.batch.SimulationError`.

    Family extras (see :class:`~metarl.envs.mujoco_batch.MujocoFamilyBatch`): per-copy models run through
    ``Batch.set_models`` on the same per-copy ``MjModel`` objects the per-copy path steps (set again after
    ``set_tasks`` changes one); ``_batch_data_fields`` are bound outputs of the batch, except the fields of
    ``mj_rnePostConstraint`` (``cfrc_ext`` ...): ``Batch`` has no such call, so for a family with
    ``_batch_rne_post`` (Ant) each alive copy's ``MjData`` is copied out (``Batch.get_data``) after the step
    and ``mj_rnePostConstraint`` runs on the copy, exactly as Gymnasium runs it after ``mj_step``.

    Args:
        template: an instance of the family env; its model and settings are shared by all copies.
        num_envs: number of copies.
        threads: C threads of the batch (default: CPU cores; at most one per copy).
    """

    def __init__(self, template: Any, num_envs: int, threads: int | None = None) -> None:
        import mujoco.batch

        super().__init__(template, num_envs)
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        threads = cores if not threads else int(threads)
        self.threads = max(1, min(threads, self.num_envs))
        self._rne_fields = tuple(f for f in self._fields if self._rne_post and f in _RNE_POST_FIELDS)
        # Persistent (one MjData per copy) only where a copy's whole MjData is read back (Ant's contact forces):
        # otherwise one MjData per thread serves its copies, faster (it stays in cache) and with the same
        # physics: the state rows carry everything mj_step reads, warm-start included.
        self.batch = mujoco.batch.Batch(self.model, self.num_envs, self.threads, persistent=bool(self._rne_fields))
        # The batch reads the caller's models, so the copies step with the family's model objects themselves
        # (an edit of ``self.model`` reaches them, as on the per-copy path).
        self.batch.set_models(self.models if self.models is not None else self.model)
        self.qpos = self.batch.bind("qpos")  # live (num_envs, nq) views of the state rows
        self.qvel = self.batch.bind("qvel")
        self._ctrl_view = self.batch.bind("ctrl")
        self._qpos_before = np.zeros((self.num_envs, self.model.nq))
        self._scratch = mujoco.MjData(self.model) if self._rne_fields else None
        probe = mujoco.MjData(self.model)
        self.extra: dict[str, np.ndarray] = {
            f: np.zeros((self.num_envs, *getattr(probe, f).shape)) if f in self._rne_fields else self.batch.bind(f)
            for f in self._fields
        }
        self._extra_before = {f: np.zeros(v.shape) for f, v in self.extra.items()}
        ids = sorted(int(w) for w in UNSTABLE_WARNINGS)
        self._names = [w.name for w in sorted(UNSTABLE_WARNINGS, key=int)]
        # a slice (a view, no copy per step) where the warnings are adjacent, as in MuJoCo 3 and 4
        self._columns: slice | list[int] = (
            slice(ids[0], ids[-1] + 1) if ids == list(range(ids[0], ids[-1] + 1)) else ids
        )

    def get_data(self, i: int) -> mujoco.MjData:
        """A copy of copy ``i``'s ``MjData`` (its state and the derived fields of its last call)."""
        return self.batch.get_data(i)

    def set_tasks(self, tasks: Sequence[Task]) -> None:
        if self._set_tasks(tasks):
            self.batch.set_models(self.models)  # the batch reads models it was given: set them again after edits

    def reset_copies(self, indices: Sequence[int], rngs: Sequence[np.random.Generator]) -> np.ndarray:
        ids, qpos0, qvel0 = self._initial_states(indices, rngs)
        if not len(ids):
            return self._observe_copies(ids)
        b = self.batch
        b.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)  # mj_resetData; then the initial state, then mj_forward
        self.qpos[ids] = qpos0
        self.qvel[ids] = qvel0
        self._call(b.forward, ids)
        if self._rne_fields:  # what mj_forward leaves in them (no mj_rnePostConstraint at reset)
            for i in ids:
                self._gather_rne(int(i), post=False)
        return self._observe_copies(ids)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        np.clip(actions, self.action_low, self.action_high, out=self._ctrl)
        self._ctrl_view[:] = self._ctrl
        self._qpos_before[:] = self.qpos
        for f, arr in self.extra.items():
            self._extra_before[f][:] = arr
        alive = None if not self._done.any() else ~self._done
        self._t += 1
        self._call(self.batch.step, alive, self.frame_skip)
        if self._rne_fields:
            for i in range(self.num_envs) if alive is None else np.flatnonzero(alive):
                self._gather_rne(int(i), post=True)
        self._check_stable()
        return self._transition(self._qpos_before, self.qpos, self.qvel, self._extra_before, self.extra, True)

    def _gather_rne(self, i: int, post: bool) -> None:
        """Fill copy ``i``'s rows of the ``mj_rnePostConstraint`` fields, computed on a copy of its data if ``post``."""
        d = self.batch.get_data(i, self._scratch)
        if post:  # cfrc_ext and friends, as Gymnasium's do_simulation computes them after mj_step
            mujoco.mj_rnePostConstraint(self.model_of(i), d)
        for f in self._rne_fields:
            self.extra[f][i] = getattr(d, f)

    def _call(self, fn: Any, *args: Any) -> None:
        """Run a batch call; a MuJoCo error in a copy becomes a SimulationError naming it (all copies reset)."""
        try:
            fn(*args)
        except mujoco.batch.SimulationError as e:
            i = int(e.ids[0])
            message = self.batch.error(i)
            self.batch.reset()
            raise self._unstable(i, f"MuJoCo error: {message}") from e

    def _check_stable(self) -> None:
        """Raise :class:`SimulationError` naming the copy's task and the step if any copy went unstable."""
        # (num_envs, 4): the unstable warnings' counters since the last reset, per copy
        counts = self.batch.warning[:, self._columns, 1]
        if counts.any() or not np.isfinite(self.qvel).all():
            i = int(np.flatnonzero(counts.any(axis=1) | ~np.isfinite(self.qvel).all(axis=1))[0])
            which = ", ".join(name for name, n in zip(self._names, counts[i]) if n) or "non-finite velocity"
            self.batch.reset()  # the copies stay usable: the next episode starts clean
            raise self._unstable(i, which)

    def close(self) -> None:
        self.extra = {}
        self.qpos = self.qvel = self._ctrl_view = None  # type: ignore[assignment]
        self.batch = None  # type: ignore[assignment]  # its C threads end with it
