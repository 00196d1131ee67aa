"""The agent contract: what turns (meta-parameters, tasks, inner loop, budget) into adapted parameters.

Three implementations, typed against :class:`Agent` by every caller: the native batched agent
(agents/native.py), the stable-baselines3 adapter (agents/sb3.py), and the pool that runs either in
worker processes or Ray actors (agents/pool.py). :func:`make_agent` is the one factory. An agent knows
nothing of meta-learning; its optimiser state is fresh for every adaptation, so adaptation from θ is a
function of θ, the inner loop and the seeds alone, the same at meta-test time as at meta-training time.
"""

from __future__ import annotations

import abc
import dataclasses
from collections.abc import Sequence

import torch

from ..envs.family import Task, TaskFamily
from .inner_loop import InnerLoop
from .networks import Params
from .normalizer import RunningNorm
from .update import UpdateBatch

#: One seed per task: an int or a tuple of ints, e.g. ``(seed, iteration, task_index)``.
Seed = Sequence[int] | int
Seeds = Sequence[Seed]
Tasks = Sequence[Task]


@dataclasses.dataclass
class AdaptResult:
    """What :meth:`Agent.adapt` returns."""

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
    # with ``record=True``: batch k (k = 0..steps) as the inner step saw it, tasks along dim 0 (MAML's input)
    batches: list[UpdateBatch] | None = None


@dataclasses.dataclass(frozen=True)
class AdaptRequest:
    """One ``adapt`` call's arguments (see :meth:`Agent.adapt`), as implementations and workers receive them."""

    theta: Params
    tasks: Tasks
    inner: InnerLoop
    steps: int
    episodes: int
    norm: RunningNorm
    seeds: Seeds
    record: bool = False

    def chunk(self, lo: int, hi: int) -> AdaptRequest:
        """The request for tasks ``lo..hi-1`` only."""
        return dataclasses.replace(self, tasks=list(self.tasks[lo:hi]), seeds=list(self.seeds[lo:hi]))


class Agent(abc.ABC):
    """Adapts copies of θ to tasks with a policy-gradient inner loop.

    Implementations set ``obs_dim``, ``act_dim`` and ``sb3_layout`` (whether their parameters are a
    stable-baselines3 policy's), and implement :meth:`init_params` and :meth:`_adapt`; :meth:`adapt` checks
    the request once for all of them.
    """

    obs_dim: int
    act_dim: int
    sb3_layout: bool = False

    @abc.abstractmethod
    def init_params(self, seed: int) -> Params:
        """Fresh parameters for the family's observation and action sizes, seeded."""

    def adapt(
        self,
        theta: Params,
        tasks: Tasks,
        inner: InnerLoop,
        steps: int,
        episodes: int,
        norm: RunningNorm,
        seeds: Seeds,
        record: bool = False,
    ) -> AdaptResult:
        """Adapt a copy of ``theta`` to each task with ``steps`` updates of ``episodes`` episodes each.

        Collects ``steps + 1`` batches per task: batch ``k`` is sampled after ``k`` updates, so
        ``returns[k]`` is the return after ``k`` adaptation steps (the MAML/ProMP protocol).

        Args:
            theta: the meta-parameters (not modified).
            tasks: one task per copy.
            inner: the inner loop (algorithm and hyper-parameters) that adapts.
            steps: inner updates ``K``.
            episodes: episodes per update.
            norm: observation normaliser, frozen during adaptation.
            seeds: one seed per task. Everything random about task ``t`` (initial states, action noise,
                minibatch order) derives from ``seeds[t]`` alone, so results do not depend on how tasks
                are grouped into batches or workers.
            record: also return every batch as the update consumed it (``AdaptResult.batches``; native
                agents only), for meta-learners that differentiate through the adaptation.
        """
        if len(seeds) != len(tasks):
            raise ValueError(f"adapt got {len(seeds)} seeds for {len(tasks)} tasks")
        check_layout(self.sb3_layout, inner)
        if inner.holdout > 0 and episodes < 2 and steps > 0:
            raise ValueError(
                f"holdout {inner.holdout} needs at least 2 episodes per step to hold one out, got {episodes}"
            )
        return self._adapt(AdaptRequest(theta, tasks, inner, steps, episodes, norm, seeds, record))

    @abc.abstractmethod
    def _adapt(self, req: AdaptRequest) -> AdaptResult:
        """:meth:`adapt` for a checked request."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release envs, threads and worker processes."""


def make_agent(
    family: type[TaskFamily],
    inner: InnerLoop,
    hidden: Sequence[int],
    log_std_init: float,
    threads: int | None = None,
) -> Agent:
    """The in-process agent that runs ``inner`` (and every inner loop with the same parameter layout).

    Args:
        family: the task family class.
        inner: an inner loop of the kind the agent runs: native (``ppo``, ``vpg``, ``trpo``) or SB3
            (``sb3-*``); for SB3 it also selects the policy class :meth:`Agent.init_params` initialises.
        hidden: hidden layer widths of the policy and value networks.
        log_std_init: initial log standard deviation of the Gaussian policy.
        threads: threads that step the simulator copies (None: the CPU cores).
    """
    if inner.is_sb3:
        from .sb3 import SB3Agent  # imports stable-baselines3 only when used

        return SB3Agent(family, inner, tuple(hidden), log_std_init, threads=threads)
    from .native import NativeAgent

    return NativeAgent(family, tuple(hidden), log_std_init, threads=threads)


@dataclasses.dataclass(frozen=True)
class AgentSpec:
    """A picklable recipe for an agent: what worker processes and Ray actors build theirs from.

    The family travels by name (``env`` and ``randomize``, as ``get_family`` takes them), so a worker on
    another process or node builds the same family.
    """

    env: str
    randomize: str
    inner: InnerLoop
    hidden: tuple[int, ...]
    log_std_init: float
    threads: int | None = None

    def __call__(self) -> Agent:
        from ..envs import get_family

        family = get_family(self.env, self.randomize)
        return make_agent(family, self.inner, self.hidden, self.log_std_init, self.threads)


def make_adapter(spec: AgentSpec, workers: int, backend: str = "processes", address: str = "") -> Agent:
    """The agent that adapts: ``spec``'s in this process (``workers <= 1``), or a pool of workers or Ray actors.

    ``workers`` and ``backend`` only change speed: results are identical for any choice.

    Args:
        spec: the agent; its ``threads`` step the simulator in each worker (None: all cores in one process,
            one thread per worker otherwise).
        workers: worker processes or actors (Ray: 0 is one per CPU of the cluster).
        backend: ``"processes"`` or ``"ray"``.
        address: Ray's address (see :class:`~metarl.agents.ray_transport.RayTransport`).
    """
    from .pool import ProcessTransport, WorkerPool

    remote = dataclasses.replace(spec, threads=spec.threads or 1)
    local = dataclasses.replace(spec, threads=1)
    if backend == "ray":  # Ray actors, even for one worker
        from .ray_transport import RayTransport

        return WorkerPool(local(), RayTransport(remote, workers, address=address))
    if workers <= 1:
        return spec()
    return WorkerPool(local(), ProcessTransport(remote, workers))


def check_layout(agent_is_sb3: bool, inner: InnerLoop) -> None:
    """Refuse an inner loop whose parameter layout differs from the agent's (native vs SB3)."""
    if inner.is_sb3 != agent_is_sb3:
        kind = "stable-baselines3 (sb3-*)" if agent_is_sb3 else "native (ppo, vpg, trpo)"
        raise ValueError(f"--agent {inner.agent} cannot adapt these parameters: they fit {kind} agents only")
