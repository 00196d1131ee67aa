"""Meta-train from Python, as ``python -m metarl.train`` does: ``metarl.Reptile``, ``metarl.MAML``, ``metarl.FOMAML``.

.. code-block:: python

    import metarl

    model = metarl.Reptile("Navigation2D", meta_batch=5, seed=0)  # keywords: the flags of python -m metarl.train
    model.learn(20)  # writes runs/<env>__<agent>__s<seed>__<time>/ as the command line does
    model.save("navigation.pt")  # a checkpoint: metarl.Reptile.load and metarl.MetaPolicy.load read it
    adapted = model.meta_policy.adapt({"goal": [0.3, -0.2]})

The keywords are the command line's flags (``meta_batch=``, ``inner_steps=``, ``adapt_agent=``, ...), resolved as
there: defaults ← the family's preset (← MAML's for MAML / FO-MAML) ← the keywords given (``resolve_flags``).
The three classes are one implementation, :class:`MetaAlgorithm`, with ``meta_learner`` set. ``python -m
metarl.train`` builds a :class:`MetaAlgorithm` from its flags and runs the same loop (metarl/runner.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar

from .callbacks import CallbackLike, as_callback
from .checkpoint import load_checkpoint, save_checkpoint
from .config import ConfigError, TrainConfig, check_types, migrate, resolve_flags
from .envs import FAMILIES, TaskFamily, get_family, import_path, register_family
from .envs.randomized import format_randomize
from .lock import FolderLock
from .resources import check_resources, effective_workers
from .runner import RunFolder, signals_finish_the_iteration, start_trainer, train_loop

#: ``run_dir`` default: a new folder ``runs/<family>__<agent>__s<seed>__<time>`` (in :meth:`MetaAlgorithm.load`:
#: the run folder itself, or no files for a checkpoint file).
AUTO = "auto"
#: What may change when a run continues (they do not change what the run computes).
RESUMABLE_OVERRIDES = (
    "meta_iters",
    "eval_every",
    "video_every",
    "checkpoint_every",
    "threads",
    "workers",
    "backend",
    "ray_address",
)

RunDir = str | os.PathLike[str] | None


def family_flags(env: Any) -> tuple[dict[str, str], type[TaskFamily] | None]:
    """The ``env`` (and ``randomize``) flags that name ``env``, and the class where only this process can find it.

    A name or id is taken as given. A family class (or an env of one) is named so that worker processes rebuild
    it: a built-in family by its name, a ``randomized(...)`` family by its Gymnasium id and ``randomize``, a class
    of an importable module by ``module:ClassName``; any other class (defined in ``__main__`` or in a function)
    by its family name, registered in this process (:func:`~metarl.envs.register_family`), with the class returned.
    """
    if isinstance(env, str):
        return {"env": env}, None
    cls = env if isinstance(env, type) else type(getattr(env, "unwrapped", env))
    if not issubclass(cls, TaskFamily):
        raise ConfigError(
            "env must be a family name, a Gymnasium id with randomize=, 'module:Name', or a TaskFamily class or env; "
            f"got {env!r}"
        )
    name = cls.family_name
    if FAMILIES.get(name) is cls and cls.__module__.startswith(f"{__package__}.envs."):
        return {"env": name}, None
    if hasattr(cls, "scale_ranges") and hasattr(cls, "base_id"):  # metarl.envs.randomized(...)
        spec = format_randomize(cls.scale_ranges)
        if get_family(cls.base_id, spec) is cls:
            return {"env": cls.base_id, "randomize": spec}, None
        return {"env": name}, None
    path = import_path(cls)
    if path is not None and get_family(path) is cls:
        return {"env": path}, None
    if FAMILIES.get(name, cls) is not cls:
        raise ConfigError(f"another family is registered as {name!r}; give this one another family_name")
    register_family(cls)
    return {"env": name}, cls


class MetaAlgorithm:
    """A meta-training run: configuration, trainer, and (unless ``run_dir=None``) the run folder it writes.

    Args:
        env: a family name (``"HalfCheetahVel"``), a Gymnasium MuJoCo id with ``randomize="body_mass=0.5:2"``,
            ``"package.module:Name"``, or a family class or env made in Python (``metarl.envs.randomized(...)``, your
            own :class:`~metarl.envs.TaskFamily`). Worker processes rebuild the family by name: a class defined in
            ``__main__`` or in a function trains with ``workers=1`` only (more are refused in one line); put it in an
            importable module for more.
        run_dir: the run folder, written exactly as ``python -m metarl.train --run-dir`` writes it (config.json,
            TensorBoard events, checkpoints, its lock). Default: a new ``runs/<family>__<agent>__s<seed>__<time>``;
            ``None``: no file at all (evaluations, callbacks and :meth:`save` still work).
        config: the flags of ``python -m metarl.train`` as keywords (``meta_batch=10``, ``inner_steps=3``,
            ``hidden=(64, 64)``, ``adapt_agent="trpo"``, ...); what is not given takes the family's preset, then
            the defaults of :class:`~metarl.config.TrainConfig`.

    Raises:
        ConfigError: an unknown keyword, a bad value, or a run folder that holds a run (one line, nothing written).
        KeyError: an unknown family (the message lists the known ones).
    """

    #: The outer loop this class runs ("": the ``meta_learner`` keyword, default Reptile).
    meta_learner: ClassVar[str] = ""

    def __init__(self, env: Any, run_dir: RunDir = AUTO, **config: Any) -> None:
        flags, self._local_family = family_flags(env)
        if "randomize" in config and "randomize" in flags:
            raise ConfigError("give the family once, as env (a randomized(...) class already holds its randomize)")
        given = {**config, **flags}
        if self.meta_learner:
            if given.setdefault("meta_learner", self.meta_learner) != self.meta_learner:
                raise ConfigError(
                    f"metarl.{type(self).__name__} runs meta_learner={self.meta_learner!r}, not "
                    f"{given['meta_learner']!r}: use metarl.MetaAlgorithm or the class of that meta-learner"
                )
        self.config, self.preset = resolve_flags(given)
        self._init_run(None, "")
        if run_dir == AUTO:
            c, stamp = self.config, time.strftime("%Y%m%d-%H%M%S")
            run_dir = Path("runs") / f"{c.family_name}__{c.inner.agent}__s{c.seed}__{stamp}"
        self.run_dir = None if run_dir is None else Path(run_dir)
        if self.run_dir is not None:
            check_free(self.run_dir)
        self._check_workers()

    def _init_run(self, state: dict[str, Any] | None, source: str) -> None:
        self._state, self._source = state, source
        self._fresh = state is None  # a new run: checkpoint and evaluate iteration 0 first
        self._resume_in_place = False
        self._changes: dict[str, Any] = {}
        self._trainer: Any = None
        self._folder: RunFolder | None = None
        self._lock: FolderLock | None = None

    def _check_workers(self) -> None:
        cls = self._local_family
        if cls is not None and (self.config.backend == "ray" or effective_workers(self.config) > 1):
            raise ConfigError(
                f"the family {cls.family_name} is defined in {cls.__module__} and worker processes cannot rebuild it: "
                "pass workers=1, or define it in an importable module (env=its class, or 'module:Name')"
            )

    # ---- continuing a run --------------------------------------------------------------------
    @classmethod
    def load(cls, path: str | os.PathLike[str], run_dir: RunDir = AUTO, **changes: Any) -> MetaAlgorithm:
        """Continue a run: a run folder (resumed in place, as ``--resume``) or a checkpoint file (:meth:`save`'s).

        Args:
            path: a run folder, or a checkpoint file.
            run_dir: for a checkpoint file, a new run folder to write (default: none); a run folder is continued in
                place.
            changes: what may change when a run continues: ``meta_iters`` (a new total), ``eval_every``,
                ``video_every``, ``checkpoint_every``, ``threads``, ``workers``, ``backend``, ``ray_address``.

        Raises:
            ConfigError: not a run, an unreadable configuration, or a change that is not allowed (one line).
            CheckpointError: a damaged checkpoint (one line naming the file).
        """
        path = Path(path)
        fixed = [f for f in changes if f not in RESUMABLE_OVERRIDES]
        if fixed:
            allowed = ", ".join("--" + f.replace("_", "-") for f in RESUMABLE_OVERRIDES)
            got = fixed[0].replace("_", "-")
            raise ConfigError(f"--resume keeps the run's configuration; only {allowed} may change (got --{got})")
        check_types(changes)
        if path.is_dir():
            if run_dir not in (AUTO, path):
                raise ConfigError(f"a run folder is continued in place; load({path}) takes no other run_dir")
            cfg, state = read_run(path, changes)
            run_dir = path
        elif path.is_file():
            state = load_checkpoint(path)
            try:
                cfg = dataclasses.replace(TrainConfig.from_dict(state["config"]), **changes)
                cfg.validate()
            except KeyError as e:
                raise ConfigError(f"{path}: not a checkpoint of a meta-training run (no {e.args[0]!r})") from None
            run_dir = None if run_dir == AUTO else run_dir
        else:
            raise ConfigError(f"{path} is not a metarl run (needs config.json and checkpoints/latest.pt)")
        if cls.meta_learner and cfg.meta_learner != cls.meta_learner:
            raise ConfigError(
                f"{path} was trained by meta_learner={cfg.meta_learner!r}; load it with metarl.MetaAlgorithm"
            )
        self = cls.__new__(cls)
        self.config, self.preset, self._local_family = cfg, {}, None
        self._init_run(state, str(path / "checkpoints" / "latest.pt" if path.is_dir() else path))
        self.run_dir = None if run_dir is None else Path(run_dir)
        self._resume_in_place = self.run_dir == path
        self._changes = dict(changes)
        if self.run_dir is not None and not self._resume_in_place:
            check_free(self.run_dir)
        return self

    # ---- training ----------------------------------------------------------------------------
    def learn(self, meta_iters: int | None = None, callback: CallbackLike = None, progress_bar: bool = True) -> Any:
        """Meta-train until the run has done ``meta_iters`` iterations in all (default: the configuration's).

        As ``python -m metarl.train``: ``meta_iters`` is the run's total (the ε schedule is spread over it), a
        checkpoint follows every iteration, the held-out evaluation every ``eval_every``. Ctrl-C or SIGTERM finish
        the iteration and save it, then raise KeyboardInterrupt / SystemExit(143) (a second one stops at once).
        Calling ``learn`` again with a larger total continues the run.

        Args:
            meta_iters: the total number of meta-iterations of the run.
            callback: a :class:`~metarl.callbacks.Callback`, a function ``f(metrics, trainer)`` or a list of them,
                called after every iteration; returning False stops after that iteration (metarl/callbacks.py).
            progress_bar: the progress bar and the evaluation lines on stderr.

        Returns:
            self.
        """
        if meta_iters is not None:
            self.set_meta_iters(meta_iters)
        if self.iteration >= self.config.meta_iters:
            return self
        with signals_finish_the_iteration() as stop:
            self._open()
            status = self._run(stop, callback, quiet=not progress_bar)
        if status == 130:
            raise KeyboardInterrupt("SIGINT: stopped after a complete iteration, checkpoint saved")
        if status == 143:
            raise SystemExit(143)
        return self

    def set_meta_iters(self, meta_iters: int) -> None:
        """A new total of meta-iterations (at least the iterations done)."""
        if isinstance(meta_iters, bool) or not isinstance(meta_iters, int) or meta_iters <= 0:
            raise ConfigError(f"--meta-iters must be a positive int, got {meta_iters!r}")
        if meta_iters < self.iteration:
            raise ConfigError(
                f"--meta-iters {meta_iters} is below the {self.iteration} iterations the run has done; "
                "give a larger total"
            )
        self.config = dataclasses.replace(self.config, meta_iters=meta_iters)
        self._changes["meta_iters"] = meta_iters
        if self._trainer is not None:
            self._trainer.set_meta_iters(meta_iters)
        if self._folder is not None:
            self._folder.write_config(self.config)

    def _open(self) -> None:
        """Everything before the first iteration, in the command line's order: resources, lock, trainer, files.

        Raises (nothing written, the lock released): ConfigError, FolderInUse, CheckpointError, StartError, OSError.
        """
        if self._trainer is None:
            check_resources(self.config)
        if self.run_dir is not None and self._lock is None:
            lock = FolderLock(self.run_dir, "" if self._resume_in_place else "--run-dir").acquire()
            try:  # again under the lock: another process may have started or extended the run meanwhile
                if self._resume_in_place:
                    self.config, self._state = read_run(self.run_dir, self._changes)
                    if self._state.get("iteration") == self.config.meta_iters:
                        raise ConfigError(
                            f"{self.run_dir} was completed by another process meanwhile ({self.config.meta_iters} "
                            "iterations)"
                        )
                    if self._trainer is not None:
                        self._trainer.load_state_dict(self._state, source=self._source)
                else:
                    check_free(self.run_dir)
            except BaseException:
                lock.release()
                raise
            self._lock = lock
        if self._trainer is None:
            self._trainer = start_trainer(self.config, self._state, self._source)
        if self.run_dir is not None and self._folder is None:
            self._folder = RunFolder(self.run_dir, self.config, self.preset, self._trainer.iteration)

    def _run(self, stop: dict[str, Any], callback: CallbackLike, quiet: bool) -> int:
        """The training loop (metarl/runner.py) from where the run stands; returns 0, or 130/143 after a signal."""
        status = train_loop(self._trainer, self._folder, as_callback(callback), stop, self._fresh, quiet)
        self._fresh = False
        if status == 0:
            t = self._trainer
            where = self.run_dir if self.run_dir is not None else "no run folder (run_dir=None)"
            print(f"metarl.train: done, {t.iteration} iterations, {t.env_steps} env steps; {where}")
        return status

    # ---- the result ----------------------------------------------------------------------------
    @property
    def trainer(self) -> Any:
        """The :class:`~metarl.trainer.MetaTrainer` (built, with its workers, on first use)."""
        if self._trainer is None:
            check_resources(self.config)
            self._trainer = start_trainer(self.config, self._state, self._source)
        return self._trainer

    @property
    def iteration(self) -> int:
        """Meta-iterations done."""
        if self._trainer is not None:
            return self._trainer.iteration
        return int(self._state["iteration"]) if self._state is not None else 0

    @property
    def meta_policy(self) -> Any:
        """The current meta-parameters as a :class:`~metarl.policy.MetaPolicy`, ready for ``adapt`` (a copy)."""
        from .agents import RunningNorm
        from .policy import MetaPolicy

        t = self.trainer
        norm = RunningNorm(t.agent.obs_dim)
        norm.load_state_dict(t.norm.state_dict())
        theta = {k: v.detach().clone() for k, v in t.theta.items()}
        info = {"iteration": t.iteration, "env_steps": t.env_steps}
        return MetaPolicy(t.family, t.config, theta, norm, source=str(self.run_dir or "memory"), info=info)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the run's checkpoint (as ``checkpoints/latest.pt``) to ``path``, atomically.

        :meth:`load` continues from it; :class:`~metarl.policy.MetaPolicy.load` adapts with it.
        """
        save_checkpoint(path, self.trainer.state_dict())

    def close(self) -> None:
        """Stop the workers, close the TensorBoard writer and release the run folder."""
        try:
            if self._trainer is not None:
                self._trainer.close()
        finally:
            self._trainer = None
            if self._folder is not None:
                self._folder.close()
                self._folder = None
            if self._lock is not None:
                self._lock.release()
                self._lock = None

    def __enter__(self) -> MetaAlgorithm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Reptile(MetaAlgorithm):
    """Reptile (``meta_learner="reptile"``) over a policy-gradient inner loop; see :class:`MetaAlgorithm`."""

    meta_learner = "reptile"


class MAML(MetaAlgorithm):
    """MAML (``meta_learner="maml"``, MAML's preset applied; docs/maml.md); see :class:`MetaAlgorithm`."""

    meta_learner = "maml"


class FOMAML(MetaAlgorithm):
    """First-order MAML (``meta_learner="fomaml"``, MAML's preset applied); see :class:`MetaAlgorithm`."""

    meta_learner = "fomaml"


def check_free(run_dir: Path) -> None:
    """Refuse a run folder that is a file or holds a run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    if (run_dir / "config.json").exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir"
        )


def read_run(run_dir: Path, changes: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """The configuration (with ``changes``) and the latest checkpoint of the run in ``run_dir``."""
    cfg_path, ckpt_path = run_dir / "config.json", run_dir / "checkpoints" / "latest.pt"
    if not cfg_path.is_file() or not ckpt_path.is_file():
        raise ConfigError(f"{run_dir} is not a metarl run (needs config.json and checkpoints/latest.pt)")
    try:
        doc = json.loads(cfg_path.read_text())
        cfg = TrainConfig.from_dict(migrate(doc["config"], doc.get("format_version", 1)))
        cfg.validate()
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        detail = str(e.args[0]) if isinstance(e, KeyError) else str(e)
        raise ConfigError(f"{cfg_path}: unreadable run configuration ({detail})") from None
    cfg = dataclasses.replace(cfg, **changes)
    cfg.validate()
    state = load_checkpoint(ckpt_path, family=cfg.family_name)
    done = state.get("iteration")
    if isinstance(done, int) and cfg.meta_iters < done:
        raise ConfigError(
            f"--meta-iters {cfg.meta_iters} is below the {done} iterations {run_dir} has done; give a larger total"
        )
    return cfg, state
