"""Advantages: generalised advantage estimation and the per-task normalisation every update applies."""

from __future__ import annotations

import torch

from .sampler import Rollout


def gae(rollout: Rollout, gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets, ``(T, E, H)`` each.

    The horizon is a time limit, not a terminal state: the last step bootstraps from ``V(s_H)``.
    A terminated step does not bootstrap.
    """
    r, v, term = rollout.rewards, rollout.values, rollout.terminated
    H = r.shape[-1]
    adv = torch.zeros_like(r)
    last = torch.zeros_like(r[..., 0])
    for h in reversed(range(H)):
        nonterminal = 1.0 - term[..., h]
        delta = r[..., h] + gamma * v[..., h + 1] * nonterminal - v[..., h]
        last = delta + gamma * lam * nonterminal * last
        adv[..., h] = last
    adv = adv * rollout.alive
    return adv, adv + v[..., :H]


def normalize_per_task(adv: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    """Advantages ``(T, N)`` shifted and scaled to mean 0 and std 1 over each task's live samples (dead ones: 0)."""
    n_alive = alive.sum(1, keepdim=True).clamp_min(1.0)
    mean_adv = (adv * alive).sum(1, keepdim=True) / n_alive
    std_adv = (((adv - mean_adv) * alive).pow(2).sum(1, keepdim=True) / n_alive).sqrt()
    return (adv - mean_adv) / (std_adv + 1e-8) * alive
