"""The meta-training loop: sample a meta-batch, let the meta-learner move θ through the agent, evaluate.

Every random draw of iteration ``i`` derives from ``(seed, i)`` (numpy ``SeedSequence``), so a run
stopped after iteration ``i`` and resumed from its checkpoint ends with exactly the parameters of a
run that went straight through; the checkpoint needs no RNG state beyond the seed and the iteration.
This module writes no files: the CLI does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Any

import numpy as np
import torch

from .agents import Agent, RunningNorm
from .agents.agent import make_adapter
from .agents.networks import Params
from .checkpoint import CheckpointError
from .config import TrainConfig
from .envs import Task
from .meta_learner import make_meta_learner
from .resources import effective_workers


class DivergenceError(RuntimeError):
    """A non-finite loss, return or parameter; the message names the iteration and the quantity."""


def build_agent(cfg: TrainConfig) -> Agent:
    """The agent that adapts for ``cfg``: in this process, or one pool of worker processes or Ray actors.

    One agent serves both inner loops (meta-training and meta-test): the inner loop travels with each call.
    ``workers`` (0: one per core, at most one per task: :func:`metarl.resources.effective_workers`) and ``backend``
    only change speed: results are identical for any choice.
    """
    workers = cfg.workers if cfg.backend == "ray" else effective_workers(cfg)
    return make_adapter(cfg.agent_spec(), workers, cfg.backend, cfg.ray_address)


@dataclasses.dataclass
class EvalResult:
    """Adaptation curves on held-out tasks: ``returns[k, j]`` after k steps on task j.

    ``success[k, j]`` is the fraction of task j's episodes that succeeded after k steps, for families
    that define success (else None). ``params[j]`` are the parameters adapted to task j (after all steps).
    """

    tasks: list[Task]
    returns: np.ndarray
    env_steps: int
    seconds: float
    success: np.ndarray | None = None
    params: list[Params] = dataclasses.field(default_factory=list)

    @property
    def mean(self) -> np.ndarray:
        return self.returns.mean(1)


class MetaTrainer:
    """A meta-learner (Reptile, MAML, FO-MAML: metarl/meta_learner.py) around a policy-gradient agent.

    Args:
        config: the run's configuration (validated).
    """

    def __init__(self, config: TrainConfig) -> None:
        config.validate()
        self.config = config
        self.family = config.family
        self.agent = build_agent(config)
        self.meta_learner = make_meta_learner(config)
        self.theta: Params = self.agent.init_params(config.seed)
        self.norm = RunningNorm(self.agent.obs_dim)
        self.iteration = 0
        self.env_steps = 0

    def close(self) -> None:
        self.agent.close()

    def set_meta_iters(self, meta_iters: int) -> None:
        """A new total of meta-iterations (as ``--resume --meta-iters N``): the ε schedule is spread over it."""
        self.config = dataclasses.replace(self.config, meta_iters=meta_iters)
        self.meta_learner = make_meta_learner(self.config)

    def train_iteration(self) -> dict[str, float]:
        """One meta-iteration; returns the scalars logged for it."""
        c, i = self.config, self.iteration
        t0 = time.perf_counter()
        tasks = self.family.sample_tasks(c.meta_batch, np.random.default_rng([c.seed, i, 0]))
        seeds = [(c.seed, i, 1, t) for t in range(len(tasks))]
        step = self.meta_learner.step(self.agent, self.theta, tasks, seeds, self.norm, i)
        res, theta = step.result, step.theta
        metrics = {
            "adapt/return_pre": float(res.returns[0].mean()),
            "adapt/return_post": float(res.returns[-1].mean()),
            "loss/policy": res.policy_loss,
            "loss/value": res.value_loss,
            **step.metrics,
            "meta/worker_restarts": float(getattr(self.agent, "restarts", 0)),  # dead workers replaced so far
            **res.stats,
        }
        if res.success is not None:  # families that define success (Meta-World)
            metrics["adapt/success_pre"] = float(res.success[0].mean())
            metrics["adapt/success_post"] = float(res.success[-1].mean())
        norm = RunningNorm(self.agent.obs_dim)
        norm.load_state_dict(self.norm.state_dict())
        norm.update(res.obs_sum.sum(0), res.obs_sq_sum.sum(0), res.obs_count)
        self._check_finite(metrics, theta, norm)
        self.theta, self.norm = theta, norm
        self.iteration += 1
        self.env_steps += res.env_steps
        seconds = time.perf_counter() - t0
        metrics.update(
            {
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
        res = self.agent.adapt(
            self.theta,
            tasks,
            c.adapt,
            c.eval_steps if steps is None else steps,
            c.episodes_per_step if episodes is None else episodes,
            self.norm,
            [(c.eval_seed if seed is None else seed, j) for j in range(len(tasks))],
        )
        success = None if res.success is None else res.success.numpy().astype(np.float64)
        returns = res.returns.numpy().astype(np.float64)
        return EvalResult(list(tasks), returns, res.env_steps, time.perf_counter() - t0, success, list(res.params))

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
        norm, dim = state.get("normalizer"), self.agent.obs_dim
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
