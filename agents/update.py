"""What the native inner-loop algorithms share: the batch an update consumes, and its common pieces.

Each algorithm (agents/vpg.py, agents/ppo.py, agents/trpo.py) is a class built once per adaptation with
the stacked parameters and the :class:`~metarl.agents.inner_loop.InnerLoop`, whose ``update`` consumes one
:class:`UpdateBatch` per inner step. Tasks are independent blocks of the stacked parameters: the
gradient of a sum of per-task losses is every task's own gradient.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Protocol

import numpy as np
import torch

from .advantage import gae, linear_baseline, normalize_per_task
from .inner_loop import InnerLoop
from .networks import Params, gaussian_log_prob, mlp
from .sampler import Rollout


@dataclasses.dataclass
class UpdateBatch:
    """One rollout flattened per task, ``(T, E*H, ...)``, with normalised advantages and value targets."""

    obs: torch.Tensor
    actions: torch.Tensor
    log_probs: torch.Tensor  # at collection time
    advantages: torch.Tensor  # normalised per task, 0 where not alive
    returns: torch.Tensor  # value targets
    alive: torch.Tensor
    held_out: torch.Tensor  # 1.0 on the samples of the episodes held out to check the step (InnerLoop.holdout)


def prepare_batch(ro: Rollout, inner: InnerLoop) -> UpdateBatch:
    """GAE on the rollout (over the value net's or a linear baseline's values), flattened, normalised per task.

    The linear baseline applies where the algorithm reads ``baseline`` (vpg, trpo); ppo trains its value net with
    the policy and always uses it (a preset's meta-test ``baseline`` left on a ppo loop changes nothing; its
    ``step_decay`` does apply, ppo reads that)."""
    if inner.baseline == "linear" and inner.uses("baseline"):
        ro = dataclasses.replace(ro, values=linear_baseline(ro, inner.gamma))
    adv, ret = gae(ro, inner.gamma, inner.gae_lambda)
    T = adv.shape[0]

    def flat(x: torch.Tensor) -> torch.Tensor:  # (T, E*H, ...)
        return x.reshape(T, -1, *x.shape[3:])

    alive = flat(ro.alive)
    episodes = ro.alive.shape[1]
    held = torch.zeros_like(ro.alive)
    if inner.holdout > 0:  # the last episodes of each task; at least one is held out and one is kept
        held[:, episodes - min(episodes - 1, max(1, round(inner.holdout * episodes))) :] = 1.0
    return UpdateBatch(
        flat(ro.obs),
        flat(ro.actions),
        flat(ro.log_probs),
        normalize_per_task(flat(adv), alive),
        flat(ret),
        alive,
        flat(held),
    )


def step_size(base: float, inner: InnerLoop, step: int) -> float:
    """The size (learning rate or trust region) of inner step ``step`` (0-based): ``base · step_decay**step``."""
    return base * inner.step_decay**step


class Update(Protocol):
    """One native inner-loop algorithm, bound to one adaptation's stacked parameters."""

    def update(self, batch: UpdateBatch, gens: Sequence[torch.Generator]) -> tuple[float, float, dict[str, float]]:
        """One inner step in place; returns (policy loss, value loss, algorithm-specific scalars)."""
        ...


def split_params(params: Params) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The policy's tensors (mean MLP and ``log_std``) and the value MLP's."""
    return [v for k, v in params.items() if not k.startswith("vf.")], [
        v for k, v in params.items() if k.startswith("vf.")
    ]


def policy_terms(
    params: Params, obs: torch.Tensor, act: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Log-probabilities of ``act``, values of ``obs`` and the policy's entropy ``(T, 1)``."""
    mean = mlp(params, "pi", obs)
    log_std = params["log_std"].unsqueeze(1)
    logp = gaussian_log_prob(mean, log_std, act)
    value = mlp(params, "vf", obs).squeeze(-1)
    entropy = (log_std + 0.5 * (1.0 + np.log(2 * np.pi))).sum(-1)  # (T, 1)
    return logp, value, entropy


def clip_grad_per_task(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale each task's gradient (slice ``t`` of every tensor) to global norm ``<= max_norm`` (0: no clip)."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or max_norm <= 0:
        return
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


class ValueFit:
    """The value baseline fitted on each batch's returns after the policy step (vpg, trpo; as rllab does).

    With the linear baseline (``baseline="linear"``) the value net is not used and not fitted.
    """

    def __init__(self, params: Params, vf: list[torch.Tensor], inner: InnerLoop) -> None:
        self.params = params
        self.epochs = inner.value_epochs if inner.baseline == "value" else 0
        self.opt = torch.optim.Adam(vf, lr=inner.value_lr, eps=1e-5)

    def fit(self, batch: UpdateBatch) -> float:
        """``value_epochs`` full-batch Adam steps; returns the last value loss (mean over tasks)."""
        n = batch.alive.sum(1).clamp_min(1.0)
        vloss = 0.0
        for _ in range(self.epochs):
            value = mlp(self.params, "vf", batch.obs).squeeze(-1)
            v_task = 0.5 * ((value - batch.returns).pow(2) * batch.alive).sum(1) / n
            self.opt.zero_grad()
            v_task.sum().backward()
            self.opt.step()
            vloss = float(v_task.mean().detach())
        return vloss


def make_update(inner: InnerLoop, params: Params) -> Update:
    """The native algorithm ``inner.agent`` bound to ``params``."""
    from .ppo import PPO
    from .trpo import TRPO
    from .vpg import VPG

    algorithms: dict[str, type] = {"ppo": PPO, "vpg": VPG, "trpo": TRPO}
    if inner.agent not in algorithms:
        raise ValueError(f"the native agent runs {', '.join(algorithms)}, not {inner.agent!r}")
    return algorithms[inner.agent](inner, params)
