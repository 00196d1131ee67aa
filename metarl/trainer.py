"""The meta-training loop: sample a meta-batch, adapt with the agent, move θ with Reptile, evaluate.

Every random draw of iteration ``i`` derives from ``(seed, i)`` (numpy ``SeedSequence``), so a run
stopped after iteration ``i`` and resumed from its checkpoint ends with exactly the parameters of a
run that went straight through; the checkpoint needs no RNG state beyond the seed and the iteration.
This module writes no files: the CLI does.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import time
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from . import reptile
from .agents import PGAgent, PGConfig, RunningNorm
from .agents.parallel import ParallelAgent, default_workers
from .agents.policy import Params
from .checkpoint import CheckpointError
from .config import TrainConfig
from .envs import Task

if TYPE_CHECKING:
    from .agents.ray_agent import RayAgent


class DivergenceError(RuntimeError):
    """A non-finite loss, return or parameter; the message names the iteration and the quantity."""


def make_agent(cfg: TrainConfig, threads: int | None = None) -> PGAgent:
    """The in-process inner-loop agent a config describes."""
    if cfg.agent.startswith("sb3-"):  # stable-baselines3's PPO/A2C or sb3-contrib's TRPO
        from .sb3 import make_sb3_agent

        return make_sb3_agent(cfg, threads)  # type: ignore[return-value]
    pg = PGConfig(
        algo=cfg.agent,  # type: ignore[arg-type]
        value_lr=cfg.value_lr,
        value_epochs=cfg.value_epochs,
        max_kl=cfg.target_kl,
        **cfg.inner_loop_kwargs(),
    )
    return PGAgent(cfg.family, pg, threads=threads)


def _agent_from_dict(cfg: dict[str, Any], threads: int) -> PGAgent:  # picklable factory for workers
    return make_agent(TrainConfig.from_dict(cfg), threads)


def make_adapter(cfg: TrainConfig) -> tuple[PGAgent, PGAgent | ParallelAgent | RayAgent]:
    """The local agent (sizes, initialisation) and the one that adapts (itself, worker processes or Ray actors).

    ``workers`` (0: one per core) and ``backend`` only change speed: results are identical for any choice.
    """
    if cfg.backend == "ray":  # Ray actors, even for one worker (0: one per CPU of the Ray cluster)
        from .agents.ray_agent import RayAgent

        local = make_agent(cfg, 1)
        factory = functools.partial(_agent_from_dict, cfg.to_dict(), cfg.threads or 1)
        return local, RayAgent(factory, cfg.workers, local.obs_dim, local.act_dim, address=cfg.ray_address)
    workers = cfg.workers or default_workers()
    if workers <= 1:
        local = make_agent(cfg, cfg.threads or None)
        return local, local
    local = make_agent(cfg, 1)
    threads = cfg.threads or 1
    remote = ParallelAgent(
        functools.partial(_agent_from_dict, cfg.to_dict(), threads), workers, local.obs_dim, local.act_dim
    )
    return local, remote


@dataclasses.dataclass
class EvalResult:
    """Adaptation curves on held-out tasks: ``returns[k, j]`` after k steps on task j.

    ``success[k, j]`` is the fraction of task j's episodes that succeeded after k steps, for families
    that define success (else None).
    """

    tasks: list[Task]
    returns: np.ndarray
    env_steps: int
    seconds: float
    success: np.ndarray | None = None

    @property
    def mean(self) -> np.ndarray:
        return self.returns.mean(1)


class MetaTrainer:
    """Batched Reptile around a policy-gradient agent.

    Args:
        config: the run's configuration (validated).
    """

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        self.config = config
        self.family = config.family
        self.local_agent, self.agent = make_adapter(config)
        self._eval_agents: tuple[Any, Any] | None = None  # the meta-test inner loop's, when it differs
        self.theta: Params = self.local_agent.init_params(config.seed)
        self.norm = RunningNorm(self.local_agent.obs_dim)
        self.iteration = 0
        self.env_steps = 0

    def close(self) -> None:
        self.agent.close()
        self.local_agent.close()
        if self._eval_agents is not None:
            for a in self._eval_agents:
                a.close()
            self._eval_agents = None

    def _eval_agent(self) -> Any:
        """The agent that adapts at meta-test time: the training one, unless ``--adapt-agent``/``--adapt-target-kl``
        ask for another inner loop (built once, on first use)."""
        cfg = self.config.for_adaptation()
        if cfg == dataclasses.replace(self.config, adapt_agent="", adapt_target_kl=0.0):
            return self.agent
        if self._eval_agents is None:
            self._eval_agents = make_adapter(cfg)
        return self._eval_agents[1]

    def step_size(self) -> float:
        c = self.config
        return reptile.linear_schedule(c.meta_step, c.meta_step_final, self.iteration, c.meta_iters)

    def train_iteration(self) -> dict[str, float]:
        """One meta-iteration; returns the scalars logged for it."""
        c, i = self.config, self.iteration
        t0 = time.perf_counter()
        tasks = self.family.sample_tasks(c.meta_batch, np.random.default_rng([c.seed, i, 0]))
        seeds = [(c.seed, i, 1, t) for t in range(len(tasks))]
        res = self.agent.adapt(self.theta, tasks, c.inner_steps, c.episodes_per_step, self.norm, seeds)
        eps = self.step_size()
        theta, stats = reptile.reptile_step(self.theta, res.params, eps)
        metrics = {
            "adapt/return_pre": float(res.returns[0].mean()),
            "adapt/return_post": float(res.returns[-1].mean()),
            "loss/policy": res.policy_loss,
            "loss/value": res.value_loss,
            "meta/update_norm": stats.update_norm,
            "meta/adapted_distance": stats.adapted_distance,
            "meta/worker_restarts": float(getattr(self.agent, "restarts", 0)),  # dead workers replaced so far
            **res.stats,
        }
        if res.success is not None:  # families that define success (Meta-World)
            metrics["adapt/success_pre"] = float(res.success[0].mean())
            metrics["adapt/success_post"] = float(res.success[-1].mean())
        norm = RunningNorm(self.local_agent.obs_dim)
        norm.load_state_dict(self.norm.state_dict())
        norm.update(res.obs_sum.sum(0), res.obs_sq_sum.sum(0), res.obs_count)
        self._check_finite(metrics, theta, norm)
        self.theta, self.norm = theta, norm
        self.iteration += 1
        self.env_steps += res.env_steps
        seconds = time.perf_counter() - t0
        metrics.update(
            {
                "meta/step_size": eps,
                "meta/policy_std": float(self.theta["log_std"].exp().mean()),
                "time/env_steps_per_s": res.env_steps / seconds,
                "time/env_steps_total": float(self.env_steps),
                "time/iteration_s": seconds,
            }
        )
        return metrics

    def _check_finite(self, metrics: dict[str, float], theta: Params, norm: RunningNorm) -> None:
        """Raise :class:`DivergenceError` before a non-finite value can reach θ or a checkpoint."""
        where = f"meta-iteration {self.iteration + 1}"
        for name, value in metrics.items():
            if not math.isfinite(value):
                raise DivergenceError(f"{name} is {value} at {where}")
        for name, value in theta.items():
            if not torch.isfinite(value).all():
                raise DivergenceError(f"parameter {name} is not finite at {where}")
        for name, value in norm.state_dict().items():
            if not torch.isfinite(value).all():
                raise DivergenceError(f"observation normaliser {name} is not finite at {where} (observations blew up)")

    def evaluate(
        self,
        tasks: list[Task] | None = None,
        steps: int | None = None,
        episodes: int | None = None,
        seed: int | None = None,
    ) -> EvalResult:
        """Adapt θ to held-out tasks and report the return after each of k = 0..steps updates.

        Args:
            tasks: defaults to the first ``eval_tasks`` of the family's meta-test set.
            steps: adaptation steps (default ``eval_steps``).
            episodes: episodes per step (default ``episodes_per_step``).
            seed: evaluation seed (default ``eval_seed``); the same at every evaluation of a run.
        """
        c = self.config
        tasks = tasks if tasks is not None else self.family.meta_test_tasks()[: c.eval_tasks]
        t0 = time.perf_counter()
        res = self._eval_agent().adapt(
            self.theta,
            tasks,
            c.eval_steps if steps is None else steps,
            c.episodes_per_step if episodes is None else episodes,
            self.norm,
            [(c.eval_seed if seed is None else seed, j) for j in range(len(tasks))],
        )
        success = None if res.success is None else res.success.numpy().astype(np.float64)
        return EvalResult(
            list(tasks), res.returns.numpy().astype(np.float64), res.env_steps, time.perf_counter() - t0, success
        )

    # ---- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run: plain tensors and JSON-able values."""
        return {
            "family": self.family.family_name,
            "iteration": self.iteration,
            "env_steps": self.env_steps,
            "config": self.config.to_dict(),
            "theta": {k: v.detach().clone() for k, v in self.theta.items()},
            "normalizer": self.norm.state_dict(),
            # Randomness is derived from (seed, iteration): this is the whole RNG state.
            "rng": {"seed": self.config.seed, "next_iteration": self.iteration},
        }

    def load_state_dict(self, state: dict[str, Any], source: str = "checkpoint") -> None:
        """Restore from :meth:`state_dict` output, checking family and parameter shapes."""
        family = self.family.family_name
        if state.get("family") != family:
            raise CheckpointError(f"{source}: checkpoint of family {state.get('family')}, not {family}")
        theta = state.get("theta")
        if (
            not isinstance(theta, dict)
            or set(theta) != set(self.theta)
            or any(not isinstance(theta[k], torch.Tensor) or theta[k].shape != self.theta[k].shape for k in self.theta)
        ):
            raise CheckpointError(f"{source}: parameter shapes do not match this configuration (network sizes differ)")
        norm, dim = state.get("normalizer"), self.local_agent.obs_dim
        shapes = {"mean": (dim,), "var": (dim,), "count": ()}
        if not isinstance(norm, dict) or any(
            not isinstance(norm.get(k), torch.Tensor) or tuple(norm[k].shape) != s for k, s in shapes.items()
        ):
            raise CheckpointError(f"{source}: observation normaliser missing or of the wrong size for {dim} inputs")
        if not all(isinstance(state.get(k), int) and state[k] >= 0 for k in ("iteration", "env_steps")):
            raise CheckpointError(f"{source}: 'iteration' and 'env_steps' must be non-negative integers")
        self.theta = {k: theta[k].detach().clone().float() for k in self.theta}
        self.norm.load_state_dict(norm)
        self.iteration = int(state["iteration"])
        self.env_steps = int(state["env_steps"])
