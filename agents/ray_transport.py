"""Ray actors as a :class:`~metarl.agents.pool.WorkerPool` transport, on this machine or a cluster.

Each actor builds its agent once from the pool's picklable factory and keeps it; θ goes to the object
store once per call and is shared by every actor. An actor that dies (its process killed, its node lost:
``ray.exceptions.RayActorError``) is reported to the pool as :class:`~metarl.agents.pool.WorkerDied`, which
replaces it; an exception inside an actor as :class:`~metarl.agents.pool.WorkerFailed`.

Ray is an optional extra (``pip install "metarl[ray]"``): only this module imports it, and only when a
``RayTransport`` is built.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable
from typing import Any

import torch

from .agent import AdaptRequest, AdaptResult, Agent
from .normalizer import RunningNorm
from .pool import Job, WorkerDied, WorkerFailed, run_job

INSTALL_HINT = 'the Ray backend needs Ray: pip install "metarl[ray]"'


class RayMissingError(ImportError):
    """Ray is not installed; the message says how to install the extra."""


def import_ray() -> Any:
    """``import ray``, or :class:`RayMissingError` with the one-line install hint."""
    try:
        import ray
    except ImportError:
        raise RayMissingError(INSTALL_HINT) from None
    return ray


class _AdaptActor:
    """Body of one Ray actor: an agent built once, adapting the jobs it is sent."""

    def __init__(self, make_agent: Callable[[], Agent]) -> None:
        try:  # Ctrl-C reaches a local cluster's process group: the driver decides when to stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread of the actor's process
            pass
        torch.set_num_threads(1)
        self.agent = make_agent()
        self.norm = RunningNorm(self.agent.obs_dim)

    def pid(self) -> int:
        return os.getpid()

    def adapt(self, theta: dict, norm: dict, req: AdaptRequest) -> AdaptResult:  # θ: top level, so Ray resolves it
        return run_job(self.agent, self.norm, (theta, norm, req))

    def close(self) -> None:
        self.agent.close()


class RayTransport:
    """``workers`` Ray actors (0: one per CPU of the cluster).

    Args:
        make_agent: builds the agent in each actor (``metarl`` must be importable on every node).
        workers: number of actors (0: one per CPU of the cluster).
        address: ``""`` starts a local Ray instance on this machine; ``"auto"`` joins the cluster this
            machine belongs to; ``"HOST:PORT"`` joins the cluster whose head is there. Ignored when
            Ray is already initialised in this process.
        num_cpus: CPUs each actor reserves (one sampling thread each by default).
    """

    worker_name = "Ray actor"

    def __init__(self, make_agent: Callable[[], Agent], workers: int, address: str = "", num_cpus: float = 1.0) -> None:
        ray = import_ray()
        self._ray = ray
        self.make_agent = make_agent
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
        self.workers = int(workers) or max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
        self._actor_cls = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)(_AdaptActor)
        self._actors: list[Any] = [self._actor_cls.remote(make_agent) for _ in range(self.workers)]
        self._theta: tuple[Any, Any] = (None, None)  # (θ arrays of the current call, their object-store ref)

    def submit(self, w: int, job: Job) -> Any:
        theta, norm, req = job
        if self._theta[0] is not theta:  # one copy of θ in the object store per call, shared by every actor
            self._theta = (theta, self._ray.put(theta))
        return self._actors[w].adapt.remote(self._theta[1], norm, req)

    def result(self, w: int, ticket: Any) -> AdaptResult:
        ray = self._ray
        try:
            res = ray.get(ticket)
            res.params = [{k: v.copy() for k, v in p.items()} for p in res.params]  # writable (Ray's are read-only)
            return res
        except ray.exceptions.RayActorError as e:
            raise WorkerDied(str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__) from None
        except ray.exceptions.RayTaskError as e:
            cause = e.cause if getattr(e, "cause", None) is not None else e
            raise WorkerFailed(f"{type(cause).__name__}: {cause}".splitlines()[0], "") from None

    def replace(self, w: int) -> None:
        try:
            self._ray.kill(self._actors[w], no_restart=True)
        except Exception:  # already gone
            pass
        self._actors[w] = self._actor_cls.remote(self.make_agent)

    def pids(self) -> list[int]:
        return list(self._ray.get([a.pid.remote() for a in self._actors]))

    def close(self) -> None:
        """Stop the actors; shut Ray down if this transport started it."""
        ray = self._ray
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors = []
        self._theta = (None, None)
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False
