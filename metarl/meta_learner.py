"""The outer loops: one meta-iteration's step from θ, given the agent, the meta-batch and its seeds.

A meta-learner turns (θ, tasks) into the next θ through an agent; the trainer (metarl/trainer.py) calls
:meth:`MetaLearner.step` and knows nothing of the method. Three ship:

- ``reptile``: the agent adapts a copy of θ per task, θ ← θ + ε (mean θ' − θ) (metarl/reptile.py, pure
  parameter arithmetic), ε annealed linearly from ``meta_step`` to ``meta_step_final``;
- ``maml`` and ``fomaml``: the agent adapts and records its batches; the meta-gradient through the VPG inner
  steps (second order, or first order) drives a TRPO outer step (metarl/maml.py).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any, Protocol

import torch

from . import maml, reptile
from .agents import AdaptResult, Agent, Params, RunningNorm
from .agents.agent import Seeds, Tasks
from .config import TrainConfig


@dataclasses.dataclass
class MetaStep:
    """What one meta-iteration produced: the new θ, the agent's adaptation, and the method's own scalars."""

    theta: Params
    result: AdaptResult
    metrics: dict[str, float]


class MetaLearner(Protocol):
    """An outer loop over an agent."""

    def step(
        self, agent: Agent, theta: Params, tasks: Tasks, seeds: Seeds, norm: RunningNorm, iteration: int
    ) -> MetaStep: ...


@dataclasses.dataclass
class ReptileLearner:
    """Reptile (Nichol, Achiam & Schulman 2018) with linearly annealed ε."""

    config: TrainConfig

    def step(
        self, agent: Agent, theta: Params, tasks: Tasks, seeds: Seeds, norm: RunningNorm, iteration: int
    ) -> MetaStep:
        c = self.config
        res = agent.adapt(theta, tasks, c.inner, c.inner_steps, c.episodes_per_step, norm, seeds)
        eps = reptile.linear_schedule(c.meta_step, c.meta_step_final, iteration, c.meta_iters)
        new, stats = reptile.reptile_step(theta, res.params, eps)
        metrics = {
            "meta/update_norm": stats.update_norm,
            "meta/adapted_distance": stats.adapted_distance,
            "meta/step_size": eps,
        }
        return MetaStep(new, res, metrics)


@dataclasses.dataclass
class MAMLLearner:
    """MAML (``first_order=False``) or FO-MAML over recorded VPG adaptations, with a TRPO outer step."""

    config: TrainConfig
    first_order: bool = False

    def step(
        self, agent: Agent, theta: Params, tasks: Tasks, seeds: Seeds, norm: RunningNorm, iteration: int
    ) -> MetaStep:
        c = self.config
        res = agent.adapt(theta, tasks, c.inner, c.inner_steps, c.episodes_per_step, norm, seeds, record=True)
        assert res.batches is not None
        t0 = time.perf_counter()
        out = maml.trpo_outer_step(theta, res.batches, c.inner, c.inner_steps, c.outer_kl, not self.first_order)
        outer_seconds = time.perf_counter() - t0
        res.batches = None  # not kept past the step
        update = torch.sqrt(sum(((out.theta[k] - theta[k]) ** 2).sum() for k in theta))
        metrics = {
            "meta/update_norm": float(update),
            "meta/grad_norm": out.meta_grad_norm,
            "maml/outer_kl": out.kl,
            "maml/line_search_backtracks": float(out.backtracks),
            "maml/step_fraction": out.fraction,
            "maml/surrogate_gain": out.surrogate_gain,
            "time/outer_step_s": outer_seconds,  # the meta-gradient, conjugate gradient and line search
        }
        return MetaStep(out.theta, res, metrics)


def make_meta_learner(config: TrainConfig) -> Any:
    """The outer loop ``config.meta_learner`` names."""
    if config.meta_learner == "reptile":
        return ReptileLearner(config)
    if config.meta_learner in ("maml", "fomaml"):
        return MAMLLearner(config, first_order=config.meta_learner == "fomaml")
    raise ValueError(f"unknown meta-learner {config.meta_learner!r}")
