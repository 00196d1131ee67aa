"""Vanilla policy gradient: one plain SGD step of learning rate ``inner_lr`` per batch (MAML's inner step).

:func:`vpg_loss` is a pure function of the (stacked) parameters and a batch, so MAML (metarl/maml.py)
differentiates through exactly the step this module takes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .inner_loop import InnerLoop
from .networks import Params
from .update import UpdateBatch, ValueFit, clip_grad_per_task, policy_terms, split_params, step_size


def vpg_loss(params: Params, batch: UpdateBatch, inner: InnerLoop) -> torch.Tensor:
    """Per-task policy-gradient loss ``-mean(log π(a|s) · A) - ent_coef · H(π)``, ``(T,)``."""
    n = batch.alive.sum(1).clamp_min(1.0)
    logp, _, entropy = policy_terms(params, batch.obs, batch.actions)
    return -(logp * batch.advantages).sum(1) / n - inner.ent_coef * entropy.squeeze(1)


class VPG:
    """The policy-gradient step, then the value baseline fit (advantages use the baseline before the fit)."""

    def __init__(self, inner: InnerLoop, params: Params) -> None:
        self.c, self.params = inner, params
        self.pi, vf = split_params(params)
        self.opt = torch.optim.SGD(self.pi, lr=inner.inner_lr)
        self.value = ValueFit(params, vf, inner)
        self.step = 0

    def update(self, batch: UpdateBatch, gens: Sequence[torch.Generator]) -> tuple[float, float, dict[str, float]]:
        self.opt.param_groups[0]["lr"] = step_size(self.c.inner_lr, self.c, self.step)
        self.step += 1
        per_task = vpg_loss(self.params, batch, self.c)
        self.opt.zero_grad()
        per_task.sum().backward()
        clip_grad_per_task(self.pi, self.c.max_grad_norm)
        self.opt.step()
        return float(per_task.mean().detach()), self.value.fit(batch), {}
