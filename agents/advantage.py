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


def discounted_returns(rollout: Rollout, gamma: float) -> torch.Tensor:
    """Returns-to-go ``Σ_{h' ≥ h} γ^{h'-h} r_{h'}`` within each episode, ``(T, E, H)``, 0 after termination."""
    r = rollout.rewards * rollout.alive
    out = torch.zeros_like(r)
    running = torch.zeros_like(r[..., 0])
    for h in reversed(range(r.shape[-1])):
        running = r[..., h] + gamma * running
        out[..., h] = running
    return out * rollout.alive


def linear_baseline(rollout: Rollout, gamma: float, reg: float = 1e-5) -> torch.Tensor:
    """rllab's linear feature baseline, fitted per task on the rollout itself: values ``(T, E, H + 1)``.

    Features of step ``h``: the (normalised) observation ``o``, ``o²``, ``t``, ``t²``, ``t³`` (``t = h / 100``) and 1;
    a ridge regression of the discounted returns on them (regulariser ``reg``, raised tenfold until the
    solve is finite, as rllab does), over the task's live steps. The value after the last step is 0: the
    returns are cut at the horizon, so nothing is bootstrapped (rllab's and MAML's convention).
    """
    obs = rollout.obs.double().clamp(-10, 10)
    T, E, H, _ = obs.shape
    t = (torch.arange(H, dtype=torch.float64) / 100.0).view(1, 1, H, 1).expand(T, E, H, 1)
    feats = torch.cat([obs, obs.pow(2), t, t.pow(2), t.pow(3), torch.ones_like(t)], -1)  # (T, E, H, F)
    alive = rollout.alive.double().unsqueeze(-1)
    x = (feats * alive).reshape(T, E * H, -1)
    y = (discounted_returns(rollout, gamma).double()).reshape(T, E * H, 1)
    xtx, xty = x.transpose(1, 2) @ x, x.transpose(1, 2) @ y
    eye = torch.eye(x.shape[-1], dtype=torch.float64)
    for _ in range(5):
        w = torch.linalg.solve(xtx + reg * eye, xty)
        if torch.isfinite(w).all():
            break
        reg *= 10
    values = (feats.reshape(T, E * H, -1) @ w).reshape(T, E, H) * rollout.alive.double()
    return torch.cat([values, torch.zeros(T, E, 1, dtype=torch.float64)], -1).to(rollout.values.dtype)
