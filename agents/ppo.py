"""PPO: the clipped surrogate objective, ``ppo_epochs`` passes over ``minibatches`` minibatches, Adam."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from .inner_loop import InnerLoop
from .networks import Params
from .update import UpdateBatch, clip_grad_per_task, policy_terms, split_params, step_size


class PPO:
    """Policy and value trained together; every task draws its own minibatch order from its generator."""

    def __init__(self, inner: InnerLoop, params: Params) -> None:
        self.c, self.params = inner, params
        pi, vf = split_params(params)
        self.trained = pi + vf
        self.opt = torch.optim.Adam(self.trained, lr=inner.inner_lr, eps=1e-5)
        self.step = 0

    def update(self, batch: UpdateBatch, gens: Sequence[torch.Generator]) -> tuple[float, float, dict[str, float]]:
        c = self.c
        self.opt.param_groups[0]["lr"] = step_size(c.inner_lr, c, self.step)
        self.step += 1
        T, N = batch.obs.shape[:2]
        mb = max(1, N // c.minibatches)
        rows = torch.arange(T).unsqueeze(1)
        pls, vls = [], []
        for _ in range(c.ppo_epochs):
            perm = torch.stack([torch.randperm(N, generator=g) for g in gens])  # own order per task
            for start in range(0, N - mb + 1, mb):
                idx = (rows, perm[:, start : start + mb])
                a_mb = batch.alive[idx]
                n = a_mb.sum(1).clamp_min(1.0)
                logp, value, entropy = policy_terms(self.params, batch.obs[idx], batch.actions[idx])
                ratio = torch.exp(logp - batch.log_probs[idx])
                adv_mb = batch.advantages[idx]
                surr = torch.min(ratio * adv_mb, ratio.clamp(1 - c.clip_range, 1 + c.clip_range) * adv_mb)
                pl = -(surr * a_mb).sum(1) / n - c.ent_coef * entropy.squeeze(1)
                vl = 0.5 * ((value - batch.returns[idx]).pow(2) * a_mb).sum(1) / n
                self.opt.zero_grad()
                (pl + c.vf_coef * vl).sum().backward()
                clip_grad_per_task(self.trained, c.max_grad_norm)
                self.opt.step()
                pls.append(float(pl.mean().detach()))
                vls.append(float(vl.mean().detach()))
        return float(np.mean(pls)), float(np.mean(vls)), {}
