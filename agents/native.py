"""The native policy-gradient agent: adapts stacked parameters on many tasks at once.

Every task's copy of θ is one slice of stacked tensors, and one batched env holds all tasks' episodes,
so each env step evaluates every task's policy in one batched call. The inner-loop algorithm (VPG, PPO,
TRPO: agents/vpg.py, agents/ppo.py, agents/trpo.py) comes with each ``adapt`` call as an
:class:`~metarl.agents.inner_loop.InnerLoop`. Optimiser state is created fresh for every adaptation.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterator

import numpy as np
import torch

from ..envs.batch import BatchEnv
from ..envs.family import TaskFamily
from .agent import AdaptRequest, AdaptResult, Agent
from .networks import Params, init_params, stack, unstack
from .sampler import collect
from .update import make_update, prepare_batch


@contextlib.contextmanager
def one_torch_thread() -> Iterator[None]:
    """Run the block with one torch intra-op thread, then restore the count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


class NativeAgent(Agent):
    """Vectorised VPG/PPO/TRPO over a task family's batched env (implements :class:`~metarl.agents.agent.Agent`).

    Args:
        family: the task family class.
        hidden: hidden layer widths of the policy and value MLPs.
        log_std_init: initial log standard deviation of the Gaussian policy.
        threads: threads that step the MuJoCo copies (default: CPU cores).
    """

    def __init__(
        self, family: type[TaskFamily], hidden: tuple[int, ...], log_std_init: float, threads: int | None = None
    ) -> None:
        self.family = family
        self.hidden, self.log_std_init = tuple(hidden), float(log_std_init)
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
        return init_params(self.obs_dim, self.act_dim, self.hidden, self.log_std_init, seed)

    def _adapt(self, req: AdaptRequest) -> AdaptResult:
        theta, tasks, inner, steps, norm, seeds = req.theta, req.tasks, req.inner, req.steps, req.norm, req.seeds
        T, E = len(tasks), req.episodes
        env_rngs, gens = [], []
        for s in seeds:
            ss = np.random.SeedSequence(s)
            env_rngs.extend(np.random.default_rng(c) for c in ss.spawn(E))
            gens.append(torch.Generator().manual_seed(int(ss.generate_state(1, dtype=np.uint64)[0] % (2**63))))
        env = self._env(T * E)
        env.set_tasks([t for t in tasks for _ in range(E)])
        params = stack(theta, T)
        algorithm = make_update(inner, params)
        returns, successes, pl, vl, batches = [], [], [], [], []
        stats: dict[str, list[float]] = defaultdict(list)
        steps_total, obs_sum, obs_sq, obs_n = 0, 0.0, 0.0, 0
        with one_torch_thread():  # small MLPs: intra-op threads only fight the simulator threads
            for k in range(steps + 1):
                ro = collect(params, norm, env, E, env_rngs, gens)
                returns.append(ro.episode_returns.mean(1))
                if ro.success is not None:
                    successes.append(ro.success.float().mean(1))
                steps_total += ro.env_steps
                obs_sum, obs_sq, obs_n = obs_sum + ro.obs_sum, obs_sq + ro.obs_sq_sum, obs_n + ro.obs_count
                batch = prepare_batch(ro, inner) if k < steps or req.record else None
                if req.record:
                    batches.append(batch)
                if k < steps:
                    p, v, s = algorithm.update(batch, gens)
                    pl.append(p)
                    vl.append(v)
                    for key, value in s.items():
                        stats[key].append(value)
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
            stats={key: float(np.mean(values)) for key, values in stats.items()},
            batches=batches if req.record else None,
        )
