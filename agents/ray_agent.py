"""Adaptation on Ray: the meta-batch's tasks split over ``N`` long-lived Ray actors, here or on a cluster.

The same contract as :class:`~metarl.agents.parallel.ParallelAgent`, with Ray actors in place of spawned
processes: each actor builds its agent (and so its envs) once, from the same picklable factory, and
keeps it; per call it receives only θ, the normaliser statistics, its tasks and their seeds (a Ray
actor call costs ~1 ms against seconds of sampling). Tasks are split into the same contiguous chunks
as ``ParallelAgent`` does, and every task's randomness derives from its own seed, so the result is
bit-for-bit that of one process (tested).

Faults: an actor that dies (its process killed, its node lost: ``ray.exceptions.RayActorError``) is
replaced by a fresh actor and its chunk re-run, once per call; each replacement is counted in
:attr:`RayAgent.restarts` and logged as a warning. An exception inside an actor is raised as
:class:`~metarl.agents.parallel.WorkerError` naming the tasks, after every other chunk has returned.

Ray is an optional extra (``pip install "metarl[ray]"``): only this module imports it, and only when a
``RayAgent`` is built.
"""

from __future__ import annotations

import logging
import os
import signal
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ..envs.family import Task
from .parallel import WorkerError, _merge, _short, _to_numpy
from .pg import AdaptResult, PGAgent
from .policy import Params, RunningNorm

log = logging.getLogger(__name__)

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
    """Body of one Ray actor: an agent built once, adapting the chunks it is sent."""

    def __init__(self, make_agent: Callable[[], PGAgent]) -> None:
        try:  # Ctrl-C reaches a local cluster's process group: the driver decides when to stop
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        except ValueError:  # not the main thread of the actor's process
            pass
        torch.set_num_threads(1)
        self.agent = make_agent()
        self.norm = RunningNorm(self.agent.obs_dim)

    def pid(self) -> int:
        return os.getpid()

    def adapt(
        self,
        theta: dict[str, np.ndarray],
        norm_state: dict[str, np.ndarray],
        tasks: list[Task],
        steps: int,
        episodes: int,
        seeds: list[Any],
    ) -> AdaptResult:
        self.norm.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in norm_state.items()})
        theta_t = {k: torch.from_numpy(v.copy()) for k, v in theta.items()}  # Ray's arrays are read-only
        res = self.agent.adapt(theta_t, tasks, steps, episodes, self.norm, seeds)
        res.params = [_to_numpy(p) for p in res.params]  # type: ignore[misc]
        return res

    def close(self) -> None:
        self.agent.close()


class RayAgent:
    """Same ``adapt`` as :class:`PGAgent`, with the tasks split over ``workers`` Ray actors.

    Args:
        make_agent: builds the agent in each actor (picklable: a module-level function or a
            ``functools.partial`` of one; ``metarl`` must be importable on every node).
        workers: number of actors (0: one per CPU of the cluster).
        obs_dim: observation size (for the caller's normaliser).
        act_dim: action size.
        address: ``""`` starts a local Ray instance on this machine; ``"auto"`` joins the cluster this
            machine belongs to; ``"HOST:PORT"`` joins the cluster whose head is there. Ignored when
            Ray is already initialised in this process.
        num_cpus: CPUs each actor reserves (one sampling thread each by default).
    """

    def __init__(
        self,
        make_agent: Callable[[], PGAgent],
        workers: int,
        obs_dim: int,
        act_dim: int,
        address: str = "",
        num_cpus: float = 1.0,
    ) -> None:
        ray = import_ray()
        self._ray = ray
        self.make_agent = make_agent
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self._owns_ray = not ray.is_initialized()
        if self._owns_ray:
            ray.init(address=address or None, include_dashboard=False, logging_level=logging.WARNING)
        self.workers = int(workers) or max(1, int(ray.cluster_resources().get("CPU", 1) // num_cpus))
        self._actor_cls = ray.remote(num_cpus=num_cpus, max_restarts=0, max_task_retries=0)(_AdaptActor)
        self._actors: list[Any] = [self._actor_cls.remote(make_agent) for _ in range(self.workers)]
        self.restarts = 0

    def _replace(self, w: int) -> None:
        try:
            self._ray.kill(self._actors[w], no_restart=True)
        except Exception:  # already gone
            pass
        self._actors[w] = self._actor_cls.remote(self.make_agent)
        self.restarts += 1

    def adapt(
        self,
        theta: Params,
        tasks: Sequence[Task],
        steps: int,
        episodes: int,
        norm: RunningNorm,
        seeds: Sequence[Any],
    ) -> AdaptResult:
        """See :meth:`PGAgent.adapt`. An actor that dies is replaced and its tasks re-run once."""
        ray = self._ray
        bounds = np.linspace(0, len(tasks), min(self.workers, len(tasks)) + 1).astype(int)
        chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        theta_ref = ray.put(_to_numpy(theta))  # one copy in the object store, shared by every actor
        norm_np = {k: v.numpy() for k, v in norm.state_dict().items()}

        def submit(w: int, lo: int, hi: int) -> Any:
            return self._actors[w].adapt.remote(
                theta_ref, norm_np, list(tasks[lo:hi]), steps, episodes, list(seeds[lo:hi])
            )

        refs = [submit(w, lo, hi) for w, (lo, hi) in enumerate(chunks)]
        results: list[AdaptResult] = []
        errors: list[str] = []
        for w, (lo, hi) in enumerate(chunks):  # wait for every chunk before raising
            for attempt in (1, 2):
                try:
                    res = ray.get(refs[w])
                    res.params = [{k: v.copy() for k, v in p.items()} for p in res.params]  # writable
                    results.append(res)
                    break
                except ray.exceptions.RayActorError as e:
                    cause = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                    self._replace(w)
                    if attempt == 2:
                        errors.append(f"Ray actor {w} died twice adapting tasks {lo}..{hi - 1} ({cause})")
                        break
                    log.warning(
                        "metarl: Ray actor %d died adapting tasks %d..%d (%s); replaced it and re-ran its tasks",
                        w,
                        lo,
                        hi - 1,
                        cause,
                    )
                    refs[w] = submit(w, lo, hi)
                except ray.exceptions.RayTaskError as e:
                    cause = e.cause if getattr(e, "cause", None) is not None else e
                    message = f"{type(cause).__name__}: {cause}".splitlines()[0]
                    errors.append(f"adapting tasks {lo}..{hi - 1} ({_short(tasks[lo:hi])}) failed: {message}")
                    break
        if errors:
            raise WorkerError(errors[0])
        return _merge(results)

    def pids(self) -> list[int]:
        """Process ids of the actors (they may live on other nodes)."""
        return list(self._ray.get([a.pid.remote() for a in self._actors]))

    def close(self) -> None:
        """Stop the actors; shut Ray down if this agent started it."""
        ray = self._ray
        for a in self._actors:
            try:
                ray.kill(a, no_restart=True)
            except Exception:  # already gone
                pass
        self._actors = []
        if self._owns_ray and ray.is_initialized():
            ray.shutdown()
            self._owns_ray = False
