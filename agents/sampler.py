"""Rollout collection with the policy in the loop, for many tasks and episodes at once.

One :class:`~metarl.envs.BatchEnv` holds ``T × E`` env copies (``E`` episodes of each of ``T`` tasks);
every env step evaluates the ``T`` stacked policies once, on all copies. Sampling never goes one env
at a time through Python beyond the MuJoCo call itself.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np
import torch

from ..envs.batch import BatchEnv
from .networks import Params, gaussian_log_prob, mlp
from .normalizer import RunningNorm


@dataclasses.dataclass
class Rollout:
    """``E`` episodes of horizon ``H`` for each of ``T`` tasks (tensors shaped ``(T, E, H, ...)``)."""

    obs: torch.Tensor  # normalised observations fed to the policy, float32
    actions: torch.Tensor  # raw Gaussian samples (the env clips them)
    log_probs: torch.Tensor
    rewards: torch.Tensor
    values: torch.Tensor  # (T, E, H + 1): V(s_0..s_H) at collection time, for GAE
    alive: torch.Tensor  # 1.0 where the step happened (before any termination), else 0.0
    terminated: torch.Tensor  # 1.0 at the step whose transition ended the episode
    obs_sum: torch.Tensor  # (T, obs_dim) raw observation moments per task, for the normaliser update
    obs_sq_sum: torch.Tensor
    obs_count: int
    success: torch.Tensor | None = None  # (T, E) bool: the episode succeeded at some step; None: no success defined

    @property
    def episode_returns(self) -> torch.Tensor:
        """Undiscounted return of each episode, ``(T, E)``."""
        return (self.rewards * self.alive).sum(-1)

    @property
    def env_steps(self) -> int:
        return int(self.alive.sum().item())


@torch.no_grad()
def collect(
    params: Params,
    norm: RunningNorm,
    env: BatchEnv,
    episodes: int,
    rngs: Sequence[np.random.Generator],
    generators: Sequence[torch.Generator],
    deterministic: bool = False,
) -> Rollout:
    """Run one episode in every copy of ``env`` with the stacked policies ``params``.

    Args:
        params: stacked parameters, leading dim ``T``; ``env.num_envs`` must be ``T * episodes`` and its
            tasks ordered task-major (copy ``t * episodes + e`` runs task ``t``).
        norm: observation normaliser (read only).
        env: the batched env, tasks already set.
        episodes: episodes per task ``E``.
        rngs: one generator of initial states per env copy.
        generators: one torch generator of action noise per task, so that a task's samples do not
            depend on which other tasks share the batch.
        deterministic: act with the mean instead of sampling.
    """
    T = next(iter(params.values())).shape[0]
    E, H = episodes, env.horizon
    if env.num_envs != T * E:
        raise ValueError(f"batch env has {env.num_envs} copies, expected {T} tasks x {E} episodes")
    od, ad = env.obs_dim, env.act_dim
    obs_buf = torch.zeros(T, E, H, od)
    act_buf = torch.zeros(T, E, H, ad)
    logp_buf = torch.zeros(T, E, H)
    rew_buf = torch.zeros(T, E, H)
    val_buf = torch.zeros(T, E, H + 1)
    alive_buf = torch.zeros(T, E, H)
    term_buf = torch.zeros(T, E, H)
    obs_sum = torch.zeros(T, od, dtype=torch.float64)
    obs_sq = torch.zeros(T, od, dtype=torch.float64)
    alive = torch.ones(T, E)
    log_std = params["log_std"].unsqueeze(1)  # (T, 1, A)
    std = log_std.exp()

    raw = env.reset(rngs)
    for h in range(H):
        raw64 = torch.from_numpy(raw).view(T, E, od)
        obs_sum += (raw64 * alive.unsqueeze(-1).double()).sum(1)
        obs_sq += (raw64.pow(2) * alive.unsqueeze(-1).double()).sum(1)
        x = norm(raw64.float())
        mean = mlp(params, "pi", x)  # (T, E, A)
        val_buf[:, :, h] = mlp(params, "vf", x).squeeze(-1)
        if deterministic:
            action = mean
        else:
            noise = torch.stack([torch.randn(E, ad, generator=g) for g in generators])
            action = mean + std * noise
        obs_buf[:, :, h] = x
        act_buf[:, :, h] = action
        logp_buf[:, :, h] = gaussian_log_prob(mean, log_std, action)
        alive_buf[:, :, h] = alive
        raw, reward, terminated = env.step(action.reshape(T * E, ad).double().numpy())
        rew_buf[:, :, h] = torch.from_numpy(reward).view(T, E).float() * alive
        term = torch.from_numpy(terminated).view(T, E).float() * alive
        term_buf[:, :, h] = term
        alive = alive * (1.0 - term)
    x = norm(torch.from_numpy(raw).view(T, E, od).float())
    val_buf[:, :, H] = mlp(params, "vf", x).squeeze(-1)
    count = int(alive_buf.sum().item())
    flags = env.episode_success()
    success = None if flags is None else torch.from_numpy(flags).view(T, E)
    return Rollout(
        obs_buf, act_buf, logp_buf, rew_buf, val_buf, alive_buf, term_buf, obs_sum, obs_sq, count, success=success
    )
