"""stable-baselines3's PPO and A2C, and sb3-contrib's TRPO, as inner-loop agents for Reptile.

:class:`SB3Agent` implements the :class:`~metarl.agents.agent.Agent` contract (``init_params``, ``adapt``,
``obs_dim``, ``act_dim``, ``close``), so the meta-trainer and the worker pool use it unchanged.
The meta-parameters θ are the SB3 policy's ``state_dict()`` (float tensors: ``mlp_extractor.*``,
``action_net.*``, ``value_net.*``, ``log_std``); Reptile interpolates them like any parameter set.

Per task, :meth:`SB3Agent.adapt`:

1. loads θ into the policy (``load_state_dict``) and resets the optimiser to its fresh state;
2. switches the batched env to the task and resets it (``set_env(..., force_reset=True)``; without
   it ``learn()`` would continue the previous task's episodes), then seeds SB3 and the env from the
   task's seed;
3. runs ``learn()`` for ``K + 1`` rollouts of ``n_steps = horizon`` steps in ``n_envs = E`` copies, so
   every rollout is ``E · horizon`` env steps (exactly ``E`` whole episodes where episodes have a fixed
   length); SB3 trains after rollouts ``0..K-1`` (``K`` updates) and a callback stops ``learn()`` at the
   end of rollout ``K``, before a ``K+1``-th update;
4. reads the adapted parameters back.

``returns[k]`` is the mean return of the episodes that end during rollout ``k``, sampled by SB3's own
``collect_rollouts`` after ``k`` updates. With fixed-length episodes those are rollout ``k``'s ``E``
episodes: the MAML protocol of the native agent, so ``adapt/return_pre`` and ``adapt/return_post``
mean the same for both. Families that end episodes early run too: the VecEnv adapter restarts each
copy the step its episode ends (:class:`~metarl.agents.vec_env.BatchVecEnv`), a rollout then holds
at least ``E`` episodes (``sb3/episodes_per_rollout``), and an episode that ends in rollout ``k`` may
have begun in rollout ``k - 1`` (docs/sb3.md, "Episodes that end early"). The budget is exact either
way, with no rounding of ``total_timesteps`` up to ``n_steps × n_envs``: ``(K + 1) · E · horizon`` env
steps per task, as SB3 counts timesteps, checked after every task and reported
(``sb3/timesteps_per_task``, ``sb3/updates_per_task``).

Decisions:

- **Optimiser state is reset for every task** (Adam moments, RMSprop averages): adaptation from θ is
  then a function of θ and the task's seed alone, as for the native agent, the same at meta-test time
  as at meta-training time and the same in plain SB3 after :func:`save_zip`; carried state would leak
  the previous task's gradients into this task's first steps and make results depend on how tasks
  are ordered or split over workers.
- **No observation normalisation.** θ acts on raw observations, so the exported ``.zip`` is the whole
  policy: ``PPO.load(path).predict(obs)`` needs no ``VecNormalize`` statistics (which SB3 keeps out of
  the ``.zip``), and ``learn()`` in plain SB3 is exactly this agent's adaptation. The ``norm`` argument
  of :meth:`SB3Agent.adapt` is ignored and no observation statistics are returned, so the trainer's
  normaliser stays the identity in SB3 checkpoints.
- **One SB3 logger per agent**, set once with ``set_logger`` and ``reset_num_timesteps=False``: no
  TensorBoard folder per inner loop and no files written by the agent. It collects SB3's own scalars
  (``train/approx_kl``, ``train/value_loss``, ``time/fps``, ...) in memory; ``adapt`` returns their means
  over the tasks in ``AdaptResult.stats`` as ``sb3/<key>``, and the trainer logs them in the run's
  TensorBoard folder next to metarl's tags (this also works from worker processes).
- Randomness: SB3 draws action noise and minibatch orders from the global torch/numpy generators;
  every task re-seeds them (``set_random_seed``) from its own seed, so results do not depend on the
  grouping of tasks, at the cost of resetting the process's global generators.
"""

from __future__ import annotations

import copy
import math
import os
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, BinaryIO

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger

from ..envs.family import TaskFamily
from .agent import AdaptRequest, AdaptResult, Agent, check_layout
from .inner_loop import InnerLoop
from .networks import Params
from .vec_env import BatchVecEnv


def algorithm_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 class of ``algo`` ('ppo', 'a2c' or 'trpo'; or 'sb3-ppo', ... as ``--agent`` names them)."""
    algo = algo.removeprefix("sb3-")
    if algo == "ppo":
        return PPO
    if algo == "a2c":
        return A2C
    if algo == "trpo":
        from sb3_contrib import TRPO  # a dependency of metarl; imported only when used

        return TRPO
    raise ValueError(f"unknown SB3 algorithm {algo!r}; choose 'ppo', 'a2c' or 'trpo'")


def algorithm_kwargs(
    inner: InnerLoop, hidden: Sequence[int], log_std_init: float, n_envs: int, horizon: int
) -> dict[str, Any]:
    """Constructor arguments of the SB3 algorithm ``inner.agent`` for ``n_envs`` episodes per update.

    ``n_steps = horizon`` with ``n_envs`` copies: one rollout is exactly ``n_envs`` whole episodes.
    ``minibatches`` sets PPO's ``batch_size`` (and TRPO's critic minibatch) to ``E · horizon // minibatches``;
    A2C takes one step on the whole rollout; TRPO's policy step is bounded by ``target_kl``, ``inner_lr`` is its
    critic's learning rate; the rest are SB3's defaults.
    """
    c = inner
    batch = max(2, n_envs * horizon // max(1, c.minibatches))
    kwargs: dict[str, Any] = dict(
        learning_rate=c.inner_lr,
        n_steps=horizon,
        gamma=c.gamma,
        gae_lambda=c.gae_lambda,
        policy_kwargs=dict(
            net_arch=dict(pi=list(hidden), vf=list(hidden)),
            activation_fn=torch.nn.Tanh,
            log_std_init=log_std_init,
        ),
        device="cpu",
        verbose=0,
    )
    grad_clip = c.max_grad_norm if c.max_grad_norm > 0 else math.inf
    if c.agent == "sb3-ppo":
        kwargs.update(
            batch_size=batch,
            n_epochs=c.ppo_epochs,
            clip_range=c.clip_range,
            ent_coef=c.ent_coef,
            vf_coef=c.vf_coef,
            max_grad_norm=grad_clip,
        )
    elif c.agent == "sb3-a2c":
        kwargs.update(ent_coef=c.ent_coef, vf_coef=c.vf_coef, max_grad_norm=grad_clip)
    elif c.agent == "sb3-trpo":
        kwargs.update(batch_size=batch, target_kl=c.target_kl)
    else:
        raise ValueError(f"unknown SB3 agent {c.agent!r}; choose 'sb3-ppo', 'sb3-a2c' or 'sb3-trpo'")
    return kwargs


def get_params(model: BaseAlgorithm) -> Params:
    """The policy's parameters as a parameter set (detached copies of its float tensors)."""
    return {k: v.detach().clone() for k, v in model.policy.state_dict().items() if v.is_floating_point()}


def set_params(model: BaseAlgorithm, theta: Params) -> None:
    """Copy ``theta`` into the policy in place (the optimiser keeps its parameter references)."""
    missing = set(get_params(model)) ^ set(theta)
    if missing:
        raise ValueError(f"parameter set does not match the SB3 policy (keys differ: {sorted(missing)[:4]})")
    model.policy.load_state_dict({k: v.detach() for k, v in theta.items()}, strict=False)


def sb3_seed(seed: Sequence[int] | int) -> int:
    """The integer seed SB3's ``set_random_seed`` gets for a metarl task seed (int or tuple of ints)."""
    return int(np.random.SeedSequence(seed).generate_state(1)[0])


class _Collector(KVWriter):
    """An SB3 logger output that keeps the finite scalars of each dump in memory.

    Counters that run over the process's life (``time/total_timesteps``, ``train/n_updates``, ...)
    are dropped: with worker processes they depend on how tasks were split.
    """

    skip = ("time/iterations", "time/time_elapsed", "time/total_timesteps", "train/n_updates")

    def __init__(self) -> None:
        self.values: dict[str, list[float]] = defaultdict(list)

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, tuple[str, ...]], step: int = 0) -> None:
        for key, value in key_values.items():
            if key in self.skip or isinstance(value, bool):
                continue
            if isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(float(value)):
                self.values[key].append(float(value))

    def take(self) -> dict[str, float]:
        """Mean of each key since the last call; clears."""
        out = {k: float(np.mean(v)) for k, v in self.values.items() if v}
        self.values.clear()
        return out


class _Rollouts(BaseCallback):
    """Measures the mean return of the episodes that end in each rollout; stops ``learn()`` after ``rollouts``.

    Each copy's return is the sum of the rewards SB3 receives (float32, summed in float64, read before SB3
    adds bootstrapped values to them) since its episode began; it is recorded the step the copy is
    ``done``. A rollout is ``horizon`` steps of every copy and no episode is longer, so every copy ends at
    least one episode in every rollout. With fixed-length episodes the rollout's episodes are exactly
    its ``n_envs`` whole ones; with early termination an episode that ends in rollout ``k`` may have begun
    in rollout ``k - 1`` (under the parameters before the last update), and the episodes still running
    when ``learn()`` stops are not counted.
    """

    def __init__(self, horizon: int, rollouts: int) -> None:
        super().__init__()
        self.horizon, self.rollouts = horizon, rollouts
        self.returns: list[float] = []
        self.episodes: list[int] = []  # episodes that ended in each rollout
        self.updates = 0  # rollouts that ended normally: SB3 trains after each of them
        self._sum: np.ndarray | None = None  # each copy's return so far; episodes run across rollouts
        self._ended: list[float] = []
        self._t = 0

    def _on_rollout_start(self) -> None:
        self._ended, self._t = [], 0

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals["rewards"], dtype=np.float64)
        self._sum = rewards.copy() if self._sum is None else self._sum + rewards
        for i in np.flatnonzero(self.locals["dones"]):
            self._ended.append(float(self._sum[i]))
            self._sum[i] = 0.0
        self._t += 1
        if self._t == self.horizon:
            self.returns.append(float(np.mean(self._ended)))
            self.episodes.append(len(self._ended))
            if len(self.returns) == self.rollouts:
                return False  # the last rollout only measures: no update after it
        return True

    def _on_rollout_end(self) -> None:
        self.updates += 1


class SB3Agent(Agent):
    """SB3 algorithms (PPO, A2C, TRPO) adapting meta-parameters task by task (implements ``Agent``).

    Args:
        family: the task family class.
        inner: an SB3 inner loop; its algorithm's policy is what :meth:`init_params` initialises.
        hidden: hidden layer widths of the policy and value networks.
        log_std_init: initial log standard deviation of the Gaussian policy.
        threads: threads that step the simulator copies (default: CPU cores).
    """

    sb3_layout = True

    def __init__(
        self,
        family: type[TaskFamily],
        inner: InnerLoop,
        hidden: tuple[int, ...],
        log_std_init: float,
        threads: int | None = None,
    ) -> None:
        check_layout(True, inner)
        self.family = family
        self.inner = inner
        self.hidden, self.log_std_init = tuple(hidden), float(log_std_init)
        self.threads = threads
        algorithm_class(inner.agent)  # fail early on an unknown algorithm or a missing sb3-contrib
        probe = family()
        self.observation_space, self.action_space = probe.observation_space, probe.action_space
        probe.close()
        self.obs_dim = int(np.prod(self.observation_space.shape))
        self.act_dim = int(np.prod(self.action_space.shape))
        self.horizon = int(family.horizon)
        self._logger = Logger(folder=None, output_formats=[_Collector()])
        self._models: dict[tuple[InnerLoop, int], tuple[BaseAlgorithm, BatchVecEnv, dict[str, Any]]] = {}

    @property
    def _collector(self) -> _Collector:
        return self._logger.output_formats[0]  # type: ignore[return-value]

    def _kwargs(self, inner: InnerLoop, n_envs: int) -> dict[str, Any]:
        return algorithm_kwargs(inner, self.hidden, self.log_std_init, n_envs, self.horizon)

    def _model(self, inner: InnerLoop, n_envs: int) -> tuple[BaseAlgorithm, BatchVecEnv, dict[str, Any]]:
        """The SB3 model of ``inner`` for ``n_envs`` episodes per update, its env and its fresh optimiser state."""
        key = (inner, n_envs)
        if key not in self._models:
            vec = BatchVecEnv(
                self.family.make_batch(n_envs, threads=self.threads), self.observation_space, self.action_space
            )
            model = algorithm_class(inner.agent)("MlpPolicy", vec, seed=0, **self._kwargs(inner, n_envs))
            model.set_logger(self._logger)
            fresh = copy.deepcopy(model.policy.optimizer.state_dict())
            self._models[key] = (model, vec, fresh)
        return self._models[key]

    def build(
        self, theta: Params | None = None, n_envs: int = 1, seed: int = 0, inner: InnerLoop | None = None
    ) -> BaseAlgorithm:
        """A new SB3 model of ``inner`` (default: the agent's own) over this family's batched env, holding ``theta``."""
        inner = inner or self.inner
        vec = BatchVecEnv(self.family.make_batch(n_envs, threads=1), self.observation_space, self.action_space)
        model = algorithm_class(inner.agent)("MlpPolicy", vec, seed=seed, **self._kwargs(inner, n_envs))
        if theta is not None:
            set_params(model, theta)
        return model

    def init_params(self, seed: int) -> Params:
        """Fresh parameters: SB3's own initialisation of the policy, seeded."""
        model = self.build(seed=seed)
        params = get_params(model)
        model.env.batch.close()  # type: ignore[union-attr]
        return params

    def close(self) -> None:
        for _, vec, _ in self._models.values():
            vec.batch.close()
        self._models.clear()

    def _adapt(self, req: AdaptRequest) -> AdaptResult:
        """See :meth:`metarl.agents.agent.Agent.adapt`; ``norm`` is ignored (SB3 agents see raw observations), and
        ``AdaptResult.stats`` holds SB3's own logged scalars (``sb3/...``) averaged over the tasks.
        """
        if req.record:
            raise ValueError("SB3 agents cannot record their batches (SB3 consumes them inside learn())")
        theta, tasks, inner, steps, seeds = req.theta, req.tasks, req.inner, req.steps, req.seeds
        T, E, H = len(tasks), req.episodes, self.horizon
        model, vec, fresh = self._model(inner, E)
        expected = (steps + 1) * E * H
        params, returns, stats, episodes = [], [], [], []
        for task, seed in zip(tasks, seeds):
            set_params(model, theta)
            model.policy.optimizer.load_state_dict(fresh)  # a fresh optimiser for every task
            vec.set_tasks([task] * E)
            model.set_env(vec, force_reset=True)
            model.set_random_seed(sb3_seed(seed))
            if model.ep_info_buffer is not None:  # rollout/ep_rew_mean: this task's episodes only
                model.ep_info_buffer.clear()
            callback = _Rollouts(H, steps + 1)
            before = model.num_timesteps
            model.learn(total_timesteps=expected, callback=callback, log_interval=1, reset_num_timesteps=False)
            self._logger.dump(model.num_timesteps)  # the last update's scalars
            done = model.num_timesteps - before
            if done != expected or callback.updates != steps or len(callback.returns) != steps + 1:
                raise RuntimeError(
                    f"SB3 inner budget off: {done} env steps and {callback.updates} updates, "
                    f"expected {expected} and {steps}"
                )
            params.append(get_params(model))
            returns.append(callback.returns)
            stats.append(self._collector.take())
            episodes.append(float(np.mean(callback.episodes)))
        pl = [
            s.get("train/policy_gradient_loss", s.get("train/policy_loss", -s.get("train/policy_objective", 0.0)))
            for s in stats
        ]
        vl = [s.get("train/value_loss", 0.0) for s in stats]
        keys = set().union(*stats) if stats else set()
        merged = {f"sb3/{k}": float(np.mean([s[k] for s in stats if k in s])) for k in sorted(keys)}
        merged["sb3/timesteps_per_task"] = float(expected)
        merged["sb3/updates_per_task"] = float(steps)
        merged["sb3/episodes_per_rollout"] = float(np.mean(episodes))  # E for fixed-length episodes, more if early ends
        return AdaptResult(
            params=params,
            returns=torch.tensor(returns, dtype=torch.float32).T.contiguous(),  # (steps + 1, T)
            policy_loss=float(np.mean(pl)) if steps else 0.0,
            value_loss=float(np.mean(vl)) if steps else 0.0,
            env_steps=T * expected,
            obs_sum=torch.zeros(T, self.obs_dim, dtype=torch.float64),
            obs_sq_sum=torch.zeros(T, self.obs_dim, dtype=torch.float64),
            obs_count=0,
            stats=merged,
        )


def save_zip(
    theta: Params,
    family: type[TaskFamily],
    inner: InnerLoop,
    hidden: Sequence[int],
    log_std_init: float,
    file: str | os.PathLike[str] | BinaryIO,
    n_envs: int = 1,
) -> None:
    """Write ``theta`` as a plain SB3 model file (``model.save``), loadable with ``PPO.load`` etc.

    The file holds the policy with ``theta``, a fresh optimiser, the family's spaces and ``inner``'s
    hyper-parameters (``n_steps`` = horizon, ``batch_size`` for ``n_envs`` copies), so
    ``learn(total_timesteps=K * n_envs * horizon)`` over ``n_envs`` copies of the task's env is exactly
    the meta-test adaptation. Nothing of metarl is pickled into it.

    Args:
        theta: parameters of an SB3 agent (:meth:`SB3Agent.init_params` layout).
        family: the task family (for the observation and action spaces).
        inner: the SB3 inner loop (algorithm and hyper-parameters) saved with the model.
        hidden: hidden layer widths of the policy.
        log_std_init: initial log standard deviation (SB3's constructor needs it; ``theta`` sets it).
        file: a binary file object to write the zip into (``metarl.export`` passes its atomic writer's
            temporary file), or a path (SB3 appends ``.zip`` if missing).
        n_envs: episodes per update the saved hyper-parameters are sized for.
    """
    agent = SB3Agent(family, inner, tuple(hidden), log_std_init, threads=1)
    model = agent.build(theta, n_envs=n_envs)
    try:
        model.save(file)
    finally:
        model.env.batch.close()  # type: ignore[union-attr]
