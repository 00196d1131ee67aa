"""The native policy-gradient agent: adapts stacked parameters on many tasks at once.

Three inner-loop algorithms:

- ``vpg``: one plain policy-gradient step (SGD, learning rate ``lr``) per batch of episodes, the
  MAML-style inner step; the value baseline is fitted after the advantages are computed (as rllab
  does), with ``value_epochs`` Adam steps.
- ``ppo``: the clipped surrogate objective with GAE, ``epochs`` passes over ``minibatches``
  minibatches, policy and value trained together with Adam.
- ``trpo``: one natural-gradient step per batch whose size is set by a KL trust region (TRPO:
  conjugate gradient on Fisher-vector products, then a backtracking line search that keeps the mean
  KL within ``max_kl`` and the surrogate improving), per task; the value baseline is fitted as for
  ``vpg``. The step moves the policy a fixed distance in KL whatever the gradient's scale.

An agent turns (meta-parameters, tasks, budget) into adapted parameters; it knows nothing of
meta-learning. Optimiser state is created fresh for every adaptation: adaptation from θ is a function
of θ alone, the same at meta-test time as at meta-training time.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Literal

import numpy as np
import torch

from ..envs.batch import BatchEnv
from ..envs.family import Task, TaskFamily
from .policy import Params, RunningNorm, gaussian_log_prob, init_params, mlp, stack, unstack
from .sampler import Rollout, collect, gae


@dataclasses.dataclass(frozen=True)
class PGConfig:
    """Hyper-parameters of the native agent."""

    algo: Literal["ppo", "vpg", "trpo"] = "ppo"
    lr: float = 3e-3
    gamma: float = 0.99
    gae_lambda: float = 0.95
    epochs: int = 5
    minibatches: int = 4
    clip_range: float = 0.2
    vf_coef: float = 0.5
    ent_coef: float = 0.0
    max_grad_norm: float = 0.5
    value_lr: float = 1e-2
    value_epochs: int = 5
    hidden: tuple[int, ...] = (64, 64)
    log_std_init: float = -0.5
    max_kl: float = 0.01  # trpo: trust region of one step (mean KL between old and new policy)
    cg_iters: int = 10  # trpo: conjugate-gradient iterations
    cg_damping: float = 0.1  # trpo: added to the Fisher matrix's diagonal
    line_search_steps: int = 10  # trpo: backtracking halvings tried


@dataclasses.dataclass
class AdaptResult:
    """What :meth:`PGAgent.adapt` returns."""

    params: list[Params]  # adapted parameters, one set per task
    returns: torch.Tensor  # (steps + 1, T): mean episode return after k updates, k = 0..steps
    policy_loss: float
    value_loss: float
    env_steps: int
    obs_sum: torch.Tensor  # (T, obs_dim): per task, so merging batches never reorders float sums
    obs_sq_sum: torch.Tensor
    obs_count: int
    stats: dict[str, float] = dataclasses.field(default_factory=dict)  # agent-specific scalars, mean over tasks
    # (steps + 1, T): fraction of the episodes that succeeded after k updates; None where success is not defined
    success: torch.Tensor | None = None


class PGAgent:
    """Vectorised VPG/PPO over a task family's batched env.

    Args:
        family: the task family class.
        config: hyper-parameters.
        threads: threads that step the MuJoCo copies (default: CPU cores).
    """

    def __init__(self, family: type[TaskFamily], config: PGConfig, threads: int | None = None) -> None:
        self.family = family
        self.config = config
        self.threads = threads
        self._envs: dict[int, BatchEnv] = {}
        probe = self._env(1)
        self.obs_dim, self.act_dim = probe.obs_dim, probe.act_dim

    def _env(self, n: int) -> BatchEnv:
        if n not in self._envs:
            self._envs[n] = self.family.make_batch(n, threads=self.threads)
        return self._envs[n]

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def init_params(self, seed: int) -> Params:
        """Fresh parameters for this family's observation and action sizes."""
        c = self.config
        return init_params(self.obs_dim, self.act_dim, c.hidden, c.log_std_init, seed)

    # ---------------------------------------------------------------------------------------
    def adapt(
        self,
        theta: Params,
        tasks: Sequence[Task],
        steps: int,
        episodes: int,
        norm: RunningNorm,
        seeds: Sequence[Sequence[int] | int],
    ) -> AdaptResult:
        """Adapt a copy of ``theta`` to each task with ``steps`` updates of ``episodes`` episodes each.

        Collects ``steps + 1`` batches per task: batch ``k`` is sampled after ``k`` updates, so
        ``returns[k]`` is the return after ``k`` adaptation steps (the MAML/ProMP protocol).

        Args:
            theta: the meta-parameters (not modified).
            tasks: one task per copy.
            steps: inner updates ``K``.
            episodes: episodes per update.
            norm: observation normaliser, frozen during adaptation.
            seeds: one seed (int or tuple of ints) per task, e.g. ``(seed, iteration, task_index)``.
                Everything random about task ``t`` (initial states, action noise, minibatch order)
                derives from ``seeds[t]`` alone, so results do not depend on how tasks are grouped
                into batches or worker processes.
        """
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small MLPs: intra-op threads only fight the simulator threads
        try:
            return self._adapt(theta, tasks, steps, episodes, norm, seeds)
        finally:
            torch.set_num_threads(threads)

    def _adapt(
        self,
        theta: Params,
        tasks: Sequence[Task],
        steps: int,
        episodes: int,
        norm: RunningNorm,
        seeds: Sequence[Sequence[int] | int],
    ) -> AdaptResult:
        T, E = len(tasks), episodes
        if len(seeds) != T:
            raise ValueError(f"adapt got {len(seeds)} seeds for {T} tasks")
        env_rngs, gens = [], []
        for s in seeds:
            ss = np.random.SeedSequence(s)
            env_rngs.extend(np.random.default_rng(c) for c in ss.spawn(E))
            gens.append(torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63))))
        env = self._env(T * E)
        env.set_tasks([t for t in tasks for _ in range(E)])
        params = stack(theta, T)
        updater = _Updater(self.config, params)
        returns, successes, pl, vl, fractions = [], [], [], [], []
        steps_total, obs_sum, obs_sq, obs_n = 0, 0.0, 0.0, 0
        for k in range(steps + 1):
            ro = collect(params, norm, env, E, env_rngs, gens)
            returns.append(ro.episode_returns.mean(1))
            if ro.success is not None:
                successes.append(ro.success.float().mean(1))
            steps_total += ro.env_steps
            obs_sum, obs_sq, obs_n = obs_sum + ro.obs_sum, obs_sq + ro.obs_sq_sum, obs_n + ro.obs_count
            if k < steps:
                p, v = updater.update(ro, gens)
                pl.append(p)
                vl.append(v)
                if self.config.algo == "trpo":
                    fractions.append(updater.last_step_fraction)
        return AdaptResult(
            params=unstack(params),
            returns=torch.stack(returns),
            policy_loss=float(np.mean(pl)) if pl else 0.0,
            value_loss=float(np.mean(vl)) if vl else 0.0,
            env_steps=steps_total,
            obs_sum=obs_sum,
            obs_sq_sum=obs_sq,
            obs_count=obs_n,
            success=torch.stack(successes) if successes else None,
            # trpo: mean fraction of the full trust-region step the line search kept (0: no step)
            stats={"adapt/trpo_step_fraction": float(np.mean(fractions))} if fractions else {},
        )


def _clip_grad_per_task(params: Sequence[torch.Tensor], max_norm: float) -> None:
    """Scale each task's gradient (slice ``t`` of every tensor) to global norm ``<= max_norm``."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads or max_norm <= 0:
        return
    sq = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    scale = (max_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.view(-1, *([1] * (g.dim() - 1))))


class _Updater:
    """The inner-loop optimiser(s) for one adaptation of stacked parameters."""

    def __init__(self, config: PGConfig, params: Params) -> None:
        self.c = config
        self.params = params
        self.pi = [v for k, v in params.items() if not k.startswith("vf.")]
        self.vf = [v for k, v in params.items() if k.startswith("vf.")]
        if config.algo == "ppo":
            self.opt = torch.optim.Adam(self.pi + self.vf, lr=config.lr, eps=1e-5)
        elif config.algo in ("vpg", "trpo"):  # trpo steps the policy itself (no optimiser), fits the value as vpg
            if config.algo == "vpg":
                self.opt = torch.optim.SGD(self.pi, lr=config.lr)
            self.vf_opt = torch.optim.Adam(self.vf, lr=config.value_lr, eps=1e-5)
        else:
            raise ValueError(f"unknown algorithm {config.algo!r}; choose 'ppo', 'vpg' or 'trpo'")

    def update(self, ro: Rollout, gens: Sequence[torch.Generator]) -> tuple[float, float]:
        adv, ret = gae(ro, self.c.gamma, self.c.gae_lambda)
        T = adv.shape[0]
        flat = lambda x: x.reshape(T, -1, *x.shape[3:])  # noqa: E731  (T, E*H, ...)
        obs, act, logp_old = flat(ro.obs), flat(ro.actions), flat(ro.log_probs)
        adv, ret, alive = flat(adv), flat(ret), flat(ro.alive)
        n_alive = alive.sum(1, keepdim=True).clamp_min(1.0)
        mean_adv = (adv * alive).sum(1, keepdim=True) / n_alive
        std_adv = (((adv - mean_adv) * alive).pow(2).sum(1, keepdim=True) / n_alive).sqrt()
        adv = (adv - mean_adv) / (std_adv + 1e-8) * alive
        if self.c.algo == "vpg":
            return self._vpg(obs, act, adv, ret, alive)
        if self.c.algo == "trpo":
            return self._trpo(obs, act, logp_old, adv, ret, alive)
        return self._ppo(obs, act, logp_old, adv, ret, alive, gens)

    def _losses(
        self, obs: torch.Tensor, act: torch.Tensor, alive: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        p = self.params
        mean = mlp(p, "pi", obs)
        log_std = p["log_std"].unsqueeze(1)
        logp = gaussian_log_prob(mean, log_std, act)
        value = mlp(p, "vf", obs).squeeze(-1)
        entropy = (log_std + 0.5 * (1.0 + np.log(2 * np.pi))).sum(-1)  # (T, 1)
        return logp, value, entropy

    def _vpg(self, obs, act, adv, ret, alive) -> tuple[float, float]:  # noqa: ANN001
        n = alive.sum(1).clamp_min(1.0)
        logp, _, entropy = self._losses(obs, act, alive)
        per_task = -(logp * adv).sum(1) / n - self.c.ent_coef * entropy.squeeze(1)
        self.opt.zero_grad()
        per_task.sum().backward()
        _clip_grad_per_task(self.pi, self.c.max_grad_norm)
        self.opt.step()
        return float(per_task.mean().detach()), self._fit_value(obs, ret, alive)

    def _fit_value(self, obs: torch.Tensor, ret: torch.Tensor, alive: torch.Tensor) -> float:
        """``value_epochs`` full-batch Adam steps of the value baseline on this batch's returns."""
        n = alive.sum(1).clamp_min(1.0)
        vloss = 0.0
        for _ in range(self.c.value_epochs):
            value = mlp(self.params, "vf", obs).squeeze(-1)
            v_task = 0.5 * ((value - ret).pow(2) * alive).sum(1) / n
            self.vf_opt.zero_grad()
            v_task.sum().backward()
            self.vf_opt.step()
            vloss = float(v_task.mean().detach())
        return vloss

    def _trpo(self, obs, act, logp_old, adv, ret, alive) -> tuple[float, float]:  # noqa: ANN001
        """One KL-bounded natural-gradient step per task (TRPO), then the value fit.

        Every quantity is per task: tasks are independent blocks of the stacked parameters, so one
        autograd pass over the sum of the per-task objectives gives every task's gradient (and
        Fisher-vector product) at once, and the CG and line-search scalars are vectors over tasks.
        """
        c = self.c
        pi, T = self.pi, obs.shape[0]
        n = alive.sum(1).clamp_min(1.0)
        with torch.no_grad():
            mean_old = mlp(self.params, "pi", obs)
            log_std_old = self.params["log_std"].detach().clone().unsqueeze(1)
        old = [p.detach().clone() for p in pi]

        def per_task(x: torch.Tensor) -> torch.Tensor:  # masked mean over a task's samples
            return (x * alive).sum(1) / n

        def surrogate() -> torch.Tensor:
            logp = gaussian_log_prob(mlp(self.params, "pi", obs), self.params["log_std"].unsqueeze(1), act)
            entropy = (self.params["log_std"] + 0.5 * (1.0 + np.log(2 * np.pi))).sum(-1)
            return per_task(torch.exp(logp - logp_old) * adv) + c.ent_coef * entropy

        def kl() -> torch.Tensor:  # mean KL(old || new) per task
            mean, log_std = mlp(self.params, "pi", obs), self.params["log_std"].unsqueeze(1)
            d = (
                log_std
                - log_std_old
                + (torch.exp(2 * log_std_old) + (mean_old - mean).pow(2)) / (2 * torch.exp(2 * log_std))
            )
            return per_task((d - 0.5).sum(-1))

        def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:  # (T,)
            return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b))

        def scale(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:  # v (T,) broadcast over x's task slices
            return v.view(-1, *([1] * (x.dim() - 1))) * x

        def fvp(v: Sequence[torch.Tensor]) -> list[torch.Tensor]:
            grads = torch.autograd.grad(kl().sum(), pi, create_graph=True)
            hv = torch.autograd.grad(dot(grads, v).sum(), pi)
            return [h.detach() + c.cg_damping * x for h, x in zip(hv, v)]

        surr0 = surrogate()
        g = [x.detach() for x in torch.autograd.grad(surr0.sum(), pi)]
        surr0 = surr0.detach()
        # conjugate gradient: x ≈ F⁻¹ g, per task
        x = [torch.zeros_like(t) for t in g]
        r = [t.clone() for t in g]
        d = [t.clone() for t in g]
        rr = dot(r, r)
        for _ in range(c.cg_iters):
            fd = fvp(d)
            alpha = rr / dot(d, fd).clamp_min(1e-12)
            x = [xi + scale(alpha, di) for xi, di in zip(x, d)]
            r = [ri - scale(alpha, fi) for ri, fi in zip(r, fd)]
            rr_new = dot(r, r)
            d = [ri + scale(rr_new / rr.clamp_min(1e-20), di) for ri, di in zip(r, d)]
            rr = rr_new
        shs = dot(x, fvp(x)).clamp_min(1e-12)
        full = [scale(torch.sqrt(2 * c.max_kl / shs), xi) for xi in x]
        # backtracking line search, per task: the largest fraction that improves the surrogate within the region
        chosen = torch.zeros(T)
        with torch.no_grad():
            for j in range(c.line_search_steps):
                frac = 0.5**j
                for p, p0, s in zip(pi, old, full):
                    p.copy_(p0 + frac * s)
                ok = (kl() <= 1.5 * c.max_kl) & (surrogate() > surr0) & (chosen == 0)
                chosen[ok] = frac
                if bool((chosen > 0).all()):
                    break
            for p, p0, s in zip(pi, old, full):
                p.copy_(p0 + scale(chosen, s))
        self.last_step_fraction = float(chosen.mean())
        return float(-surr0.mean()), self._fit_value(obs, ret, alive)

    def _ppo(self, obs, act, logp_old, adv, ret, alive, gens) -> tuple[float, float]:  # noqa: ANN001
        c = self.c
        T, N = obs.shape[:2]
        mb = max(1, N // c.minibatches)
        rows = torch.arange(T).unsqueeze(1)
        pls, vls = [], []
        for _ in range(c.epochs):
            perm = torch.stack([torch.randperm(N, generator=g) for g in gens])  # own order per task
            for start in range(0, N - mb + 1, mb):
                idx = (rows, perm[:, start : start + mb])
                a_mb = alive[idx]
                n = a_mb.sum(1).clamp_min(1.0)
                logp, value, entropy = self._losses(obs[idx], act[idx], a_mb)
                ratio = torch.exp(logp - logp_old[idx])
                adv_mb = adv[idx]
                surr = torch.min(ratio * adv_mb, ratio.clamp(1 - c.clip_range, 1 + c.clip_range) * adv_mb)
                pl = -(surr * a_mb).sum(1) / n - c.ent_coef * entropy.squeeze(1)
                vl = 0.5 * ((value - ret[idx]).pow(2) * a_mb).sum(1) / n
                self.opt.zero_grad()
                (pl + c.vf_coef * vl).sum().backward()
                _clip_grad_per_task(self.pi + self.vf, c.max_grad_norm)
                self.opt.step()
                pls.append(float(pl.mean().detach()))
                vls.append(float(vl.mean().detach()))
        return float(np.mean(pls)), float(np.mean(vls))
