"""Meta-policies as users meet them: load (a run, a file, or a shipped pretrained one), adapt, act.

.. code-block:: python

    import gymnasium as gym
    import metarl

    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")       # or MetaPolicy.load(run_dir_or_file)
    env = gym.make("metarl/HalfCheetahVel-v0", task={"velocity": 1.3})
    adapted = meta.adapt(env)      # 3 steps of 20 episodes, as it was evaluated; `meta` is left unchanged
    obs, _ = env.reset(seed=0)
    action = adapted.act(obs)                                   # deterministic (the mean) by default

Adaptation runs the run's meta-test inner loop (``config.adapt``: its agent and hyper-parameters, set by
``--adapt-agent`` / ``--adapt-target-kl`` where the run gave them), on the task of ``env``, with the family's
fast batched copies of the env; steps and episodes default to the run's own evaluation.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .agents import Agent, RunningNorm, make_agent
from .agents.inner_loop import FIELDS as INNER_FIELDS
from .agents.inner_loop import check_used
from .agents.networks import Params, mlp
from .checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from .config import TrainConfig
from .envs import FamilyImportError, Task, TaskFamily, get_family


def pretrained_path(family: str) -> Path:
    """Path of the shipped pretrained meta-policy of ``family`` (name or id)."""
    name = get_family(family).family_name
    path = Path(str(resources.files("metarl") / "pretrained" / f"{name}.pt"))
    if not path.is_file():
        shipped = sorted(p.stem for p in path.parent.glob("*.pt"))
        raise CheckpointError(f"no pretrained meta-policy for {name}; shipped: {', '.join(shipped) or 'none'}")
    return path


def resolve_checkpoint(path: str | os.PathLike[str]) -> Path:
    """A checkpoint file from a file path or a run folder (its ``checkpoints/latest.pt``)."""
    path = Path(path)
    if path.is_dir():
        latest = path / "checkpoints" / "latest.pt"
        if not latest.is_file():
            raise CheckpointError(f"{path}: a folder, but not a metarl run (no checkpoints/latest.pt)")
        return latest
    return path


def _local_agent(family: type[TaskFamily], config: TrainConfig) -> Agent:
    """An in-process agent of the run's parameter layout (sizes, SB3 models), stepping on one thread."""
    return make_agent(family, config.inner, config.hidden, config.log_std_init, threads=1)


class _GaussianPolicy:
    """What acting needs: parameters, the frozen observation normaliser, and the family."""

    def __init__(self, family: type[TaskFamily], config: TrainConfig, theta: Params, norm: RunningNorm) -> None:
        self.family = family
        self.config = config
        self.theta = theta
        self.norm = norm

    @torch.no_grad()
    def act(self, obs: np.ndarray, deterministic: bool = True, rng: np.random.Generator | None = None) -> np.ndarray:
        """Action for one observation ``(obs_dim,)`` or a batch ``(n, obs_dim)``.

        Args:
            obs: raw observation(s) from the env.
            deterministic: the Gaussian's mean (default) instead of a sample.
            rng: generator of the sample when not deterministic.
        """
        if self.config.inner.is_sb3:
            return self._sb3_act(obs, deterministic)
        x = torch.as_tensor(np.asarray(obs, dtype=np.float64)).float()
        single = x.dim() == 1
        mean = mlp(self.theta, "pi", self.norm(x.unsqueeze(0) if single else x))
        if not deterministic:
            rng = rng or np.random.default_rng()
            std = self.theta["log_std"].exp()
            mean = mean + std * torch.from_numpy(rng.standard_normal(mean.shape)).float()
        out = mean.numpy().astype(np.float64)
        return out[0] if single else out

    def _sb3_act(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        # θ of an sb3-* run is an SB3 policy's state: act through SB3 itself (no metarl normaliser)
        if getattr(self, "_sb3_model", None) is None:
            agent = _local_agent(self.family, self.config)
            self._sb3_model = agent.build(self.theta)  # type: ignore[attr-defined]
        action, _ = self._sb3_model.predict(np.asarray(obs), deterministic=deterministic)
        return np.asarray(action, dtype=np.float64)

    def _state(self) -> dict[str, Any]:
        return {
            "family": self.family.family_name,
            "config": self.config.to_dict(),
            "theta": {k: v.detach().clone() for k, v in self.theta.items()},
            "normalizer": self.norm.state_dict(),
        }


class AdaptedPolicy(_GaussianPolicy):
    """A policy adapted to one task; ``returns[k]`` is the mean episode return after ``k`` steps.

    ``success[k]`` is the fraction of episodes that succeeded after ``k`` steps, for families that define
    success (Meta-World); else None.
    """

    def __init__(
        self,
        family,  # noqa: ANN001
        config,  # noqa: ANN001
        theta,  # noqa: ANN001
        norm,  # noqa: ANN001
        task: Task,
        returns: list[float],
        env_steps: int,
        success: list[float] | None = None,
    ) -> None:
        super().__init__(family, config, theta, norm)
        self.task = task
        self.returns = returns
        self.env_steps = env_steps
        self.success = success

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write a checkpoint that :meth:`MetaPolicy.load` reads back (e.g. to adapt further)."""
        save_checkpoint(
            path,
            {
                **self._state(),
                "iteration": 0,
                "env_steps": self.env_steps,
                "adapted": {"task": self.task.to_dict(), "returns": list(self.returns)},
            },
        )


class MetaPolicy(_GaussianPolicy):
    """Meta-parameters θ, their normaliser and the configuration of the run that made them."""

    def __init__(self, family, config, theta, norm, source: str = "", info: dict | None = None) -> None:  # noqa: ANN001
        super().__init__(family, config, theta, norm)
        self.source = source
        self.info = info or {}

    @classmethod
    def load(cls, path: str | os.PathLike[str], family: str | None = None) -> MetaPolicy:
        """Load from a checkpoint file or a run folder (``checkpoints/latest.pt``).

        Args:
            path: file or run folder.
            family: if given, the family the checkpoint must belong to.

        Raises:
            CheckpointError: one line naming the file and the problem.
        """
        file = resolve_checkpoint(path)
        state = load_checkpoint(file, family=get_family(family).family_name if family else None)
        try:
            config = TrainConfig.from_dict(state["config"])
            fam = config.family  # by the run's --env (a module:Name family imports its module)
            norm = RunningNorm(int(state["normalizer"]["mean"].shape[0]))
            norm.load_state_dict(state["normalizer"])
            theta = {k: v.float() for k, v in state["theta"].items()}
        except FamilyImportError as e:
            raise CheckpointError(f"{file}: {e.args[0]}") from None
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise CheckpointError(f"{file}: incomplete metarl checkpoint ({type(e).__name__}: {e})") from None
        agent = _local_agent(fam, config)
        try:
            expected = agent.init_params(0)
        finally:
            agent.close()
        if set(expected) != set(theta) or any(expected[k].shape != theta[k].shape for k in expected):
            raise CheckpointError(f"{file}: parameter names or shapes do not fit {fam.family_name} with this config")
        info = {k: state[k] for k in ("iteration", "env_steps", "provenance", "adapted") if k in state}
        return cls(fam, config, theta, norm, source=str(file), info=info)

    def with_inner_loop(self, **changes: Any) -> MetaPolicy:
        """The same θ, adapted with another meta-test inner loop, e.g. to measure meta-test-time step sizes.

        Args:
            changes: fields of :class:`~metarl.agents.inner_loop.InnerLoop` (``agent``, ``target_kl``,
                ``inner_lr``, ...) replaced in the meta-test inner loop (``config.adapt``); the training loop
                keeps saying how θ was trained.

        Raises:
            ValueError: one line naming the problem (an agent whose parameter layout differs, a bad value, a
                setting the chosen algorithm does not read).
        """
        unknown = sorted(set(changes) - set(INNER_FIELDS))
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not an inner-loop setting; settings are {', '.join(INNER_FIELDS)}")
        adapt = dataclasses.replace(self.config.adapt, **changes)
        if adapt.is_sb3 != self.config.inner.is_sb3:
            kind = "stable-baselines3 (sb3-*)" if self.config.inner.is_sb3 else "native (ppo, vpg, trpo)"
            raise ValueError(
                f"--agent {adapt.agent}: this meta-policy was trained with --agent {self.config.inner.agent}; "
                f"its parameters fit {kind} agents only"
            )
        adapt.validate()
        check_used({k: v for k, v in changes.items() if k != "agent"}, (adapt,))
        config = dataclasses.replace(self.config, adapt=adapt)
        return MetaPolicy(self.family, config, self.theta, self.norm, source=self.source, info=self.info)

    @classmethod
    def pretrained(cls, family: str) -> MetaPolicy:
        """The meta-policy shipped with metarl for ``family`` (see docs/results.md, "Pretrained meta-policies")."""
        return cls.load(pretrained_path(family))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write θ, the normaliser and the config as a checkpoint."""
        save_checkpoint(
            path,
            {
                **self._state(),
                "iteration": int(self.info.get("iteration", 0)),
                "env_steps": int(self.info.get("env_steps", 0)),
            },
        )

    def adapt(
        self,
        env_or_task: Any,
        steps: int | None = None,
        episodes_per_step: int | None = None,
        seed: int = 0,
        video: str | os.PathLike[str] | None = None,
    ) -> AdaptedPolicy:
        """Adapt a copy of θ to one task with ``steps`` inner updates of ``episodes_per_step`` episodes.

        Args:
            env_or_task: an env of this family (its current task is used), a task, or a task dict.
            steps: adaptation steps (default: the run's ``eval_steps``, the steps it was evaluated with).
            episodes_per_step: episodes sampled per step (default: the run's ``episodes_per_step``).
            seed: seed of the adaptation's sampling (and of the video episodes' initial state).
            video: write a ``.mp4`` or ``.gif`` here: one deterministic episode before adapting and after each
                step, side by side, each labelled with the step, the task and its return (metarl/video.py). The
                policies after steps ``1 .. steps - 1`` come from adapting again with fewer steps (adaptation is
                deterministic given the seed, so they are the intermediate policies of this adaptation).

        Raises:
            ValueError: ``video`` cannot be written (unknown extension, missing folder, no permission).
            RenderError: no OpenGL backend renders here (the message says what to install and set).
        """
        task = self._task_of(env_or_task)
        if video is not None:
            from .video import check_rendering, video_path_error

            problem = video_path_error(Path(video), "video")
            if problem:
                raise ValueError(problem)
            check_rendering(self.family)
        adapted = self.adapt_many([task], steps, episodes_per_step, seeds=[seed])[0]
        if video is not None:
            self._write_video(Path(video), adapted, episodes_per_step, seed)
        return adapted

    def _write_video(self, path: Path, adapted: AdaptedPolicy, episodes_per_step: int | None, seed: int) -> None:
        from .video import adaptation_frames, write_video

        steps = len(adapted.returns) - 1
        task = adapted.task
        between = [self.adapt_many([task], k, episodes_per_step, seeds=[seed])[0] for k in range(1, steps)]
        row = [(self, task, "before adapting")]
        row += [(p, task, f"after step {k}") for k, p in enumerate([*between, adapted], start=1)]
        frames, fps = adaptation_frames([row], seed=seed)
        write_video(path, frames, fps)

    def budget(self, steps: int | None = None, episodes_per_step: int | None = None) -> tuple[int, int]:
        """Adaptation steps and episodes per step: the given ones, else the run's own evaluation's."""
        return (
            self.config.eval_steps if steps is None else steps,
            self.config.episodes_per_step if episodes_per_step is None else episodes_per_step,
        )

    def adapt_many(
        self,
        tasks: Sequence[Task],
        steps: int | None = None,
        episodes_per_step: int | None = None,
        seeds: Sequence[Any] | None = None,
    ) -> list[AdaptedPolicy]:
        """Adapt to several tasks at once (batched) with the meta-test inner loop; one adapted policy per task.

        Args:
            tasks: the tasks.
            steps: adaptation steps (default: the run's ``eval_steps``).
            episodes_per_step: episodes per step (default: the run's ``episodes_per_step``).
            seeds: one seed per task (default: ``0, 1, ...``).
        """
        from .resources import available_cpus, effective_workers
        from .trainer import build_agent

        steps, episodes_per_step = self.budget(steps, episodes_per_step)
        seeds = list(range(len(tasks))) if seeds is None else list(seeds)
        if steps < 0 or episodes_per_step <= 0:
            raise ValueError("steps must be >= 0 and episodes_per_step > 0")
        # one task: in this process (no worker start-up); many: worker processes, as in training, but never more
        # than the tasks or the CPUs here (the checkpoint may come from a larger machine; results are the same)
        workers = 1 if len(tasks) == 1 else self.config.workers
        if self.config.backend == "processes":
            workers = max(1, min(effective_workers(self.config), available_cpus(), len(tasks)))
        config = dataclasses.replace(self.config, workers=workers)
        agent = build_agent(config)
        try:
            res = agent.adapt(self.theta, list(tasks), config.adapt, steps, episodes_per_step, self.norm, seeds)
        finally:
            agent.close()
        per_task_steps = res.env_steps // max(len(tasks), 1)
        return [
            AdaptedPolicy(
                self.family,
                self.config,
                res.params[t],
                self.norm,
                task,
                [float(r) for r in res.returns[:, t]],
                per_task_steps,
                None if res.success is None else [float(x) for x in res.success[:, t]],
            )
            for t, task in enumerate(tasks)
        ]

    def _task_of(self, env_or_task: Any) -> Task:
        if isinstance(env_or_task, Task):
            task = env_or_task
        elif isinstance(env_or_task, dict):
            task = self.family.task_type.from_dict(env_or_task)
        else:
            unwrapped = getattr(env_or_task, "unwrapped", env_or_task)
            if not isinstance(unwrapped, self.family):
                raise TypeError(
                    f"this meta-policy was trained on {self.family.family_name}; "
                    f"got an env of type {type(unwrapped).__name__}"
                )
            task = unwrapped.get_task()
        if not isinstance(task, self.family.task_type):
            raise TypeError(f"{self.family.family_name} takes a {self.family.task_type.__name__}, got {task!r}")
        return task
