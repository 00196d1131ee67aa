"""Adaptation in worker processes: the meta-batch's tasks split over ``N`` long-lived workers.

Python threads cannot run the policy-in-the-loop sampler on two cores at once (the GIL serialises the
glue between MuJoCo calls), processes can. Only coarse work crosses the process boundary: per call a
worker receives θ, the normaliser statistics, its tasks and their seeds, and returns its adapted
parameters and statistics (~100 µs of pipe traffic against seconds of sampling). Each worker keeps
its envs alive across calls. Because every task's randomness derives from its own seed, the result
is bit-for-bit the same for any number of workers (tested).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from ..envs.core import Task
from .pg import AdaptResult, PGAgent
from .policy import Params, RunningNorm


def _to_numpy(params: Params) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in params.items()}


def _to_torch(params: dict[str, np.ndarray]) -> Params:
    return {k: torch.from_numpy(v) for k, v in params.items()}


def _worker(conn: Connection, make_agent: Callable[[], PGAgent]) -> None:
    torch.set_num_threads(1)
    agent = make_agent()
    norm = RunningNorm(agent.obs_dim)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):  # parent gone (or Ctrl-C to the group): leave
            break
        if msg[0] == "close":
            break
        _, theta, norm_state, tasks, steps, episodes, seeds = msg
        try:
            norm.load_state_dict({k: torch.from_numpy(v) for k, v in norm_state.items()})
            res = agent.adapt(_to_torch(theta), tasks, steps, episodes, norm, seeds)
            res.params = [_to_numpy(p) for p in res.params]  # type: ignore[misc]
            conn.send(("ok", res))
        except Exception as e:  # report, keep serving
            conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
    agent.close()
    conn.close()


class WorkerError(RuntimeError):
    """An adaptation failed inside a worker; the message names the tasks."""


class ParallelAgent:
    """Same ``adapt`` as :class:`PGAgent`, with the tasks split over ``workers`` processes.

    Args:
        make_agent: builds the agent in each worker (must be picklable: a module-level function or
            ``functools.partial`` of one).
        workers: number of worker processes.
        obs_dim: observation size (for the caller's normaliser).
    """

    def __init__(self, make_agent: Callable[[], PGAgent], workers: int, obs_dim: int, act_dim: int) -> None:
        self.make_agent = make_agent
        self.workers = int(workers)
        self.obs_dim, self.act_dim = obs_dim, act_dim
        self._ctx = mp.get_context("spawn")  # no fork of a process holding threads
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        for _ in range(self.workers):
            self._start_worker()
        self.restarts = 0

    def _start_worker(self, slot: int | None = None) -> None:
        parent, child = self._ctx.Pipe()
        proc = self._ctx.Process(target=_worker, args=(child, self.make_agent), daemon=True)
        proc.start()
        child.close()
        if slot is None:
            self._procs.append(proc)
            self._conns.append(parent)
        else:
            self._procs[slot], self._conns[slot] = proc, parent

    def adapt(
        self,
        theta: Params,
        tasks: Sequence[Task],
        steps: int,
        episodes: int,
        norm: RunningNorm,
        seeds: Sequence[Any],
    ) -> AdaptResult:
        """See :meth:`PGAgent.adapt`. A worker that dies is restarted and its tasks re-run once."""
        bounds = np.linspace(0, len(tasks), min(self.workers, len(tasks)) + 1).astype(int)
        chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        theta_np = _to_numpy(theta)
        norm_np = {k: v.numpy() for k, v in norm.state_dict().items()}

        def send(w: int, lo: int, hi: int) -> None:
            self._conns[w].send(("adapt", theta_np, norm_np, list(tasks[lo:hi]), steps, episodes, list(seeds[lo:hi])))

        for w, (lo, hi) in enumerate(chunks):
            send(w, lo, hi)
        results: list[AdaptResult] = []
        for w, (lo, hi) in enumerate(chunks):
            try:
                reply = self._conns[w].recv()
            except (EOFError, OSError):
                self.restarts += 1
                self._procs[w].join(timeout=1)
                self._start_worker(w)
                send(w, lo, hi)
                try:
                    reply = self._conns[w].recv()
                except (EOFError, OSError):
                    raise WorkerError(f"worker {w} died twice adapting tasks {lo}..{hi - 1}") from None
            if reply[0] == "error":
                raise WorkerError(f"adapting tasks {lo}..{hi - 1} ({list(tasks[lo:hi])}) failed: {reply[1]}")
            results.append(reply[1])
        return _merge(results)

    def close(self) -> None:
        for conn in self._conns:
            try:
                conn.send(("close",))
            except (OSError, BrokenPipeError):
                pass
        for proc in self._procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for conn in self._conns:
            conn.close()
        self._procs, self._conns = [], []

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]


def _merge(results: list[AdaptResult]) -> AdaptResult:
    n = [len(r.params) for r in results]
    total = sum(n)
    return AdaptResult(
        params=[_to_torch(p) for r in results for p in r.params],  # type: ignore[arg-type]
        returns=torch.cat([r.returns for r in results], dim=1),
        policy_loss=float(sum(r.policy_loss * k for r, k in zip(results, n)) / total),
        value_loss=float(sum(r.value_loss * k for r, k in zip(results, n)) / total),
        env_steps=sum(r.env_steps for r in results),
        obs_sum=torch.cat([r.obs_sum for r in results]),
        obs_sq_sum=torch.cat([r.obs_sq_sum for r in results]),
        obs_count=sum(r.obs_count for r in results),
        stats={k: float(sum(r.stats[k] * m for r, m in zip(results, n)) / total) for k in results[0].stats},
    )


def default_workers() -> int:
    """One worker per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
