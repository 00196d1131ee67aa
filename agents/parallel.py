"""Adaptation in worker processes: the meta-batch's tasks split over ``N`` long-lived workers.

Python threads cannot run the policy-in-the-loop sampler on two cores at once (the GIL serialises the
glue between MuJoCo calls), processes can. Only coarse work crosses the process boundary: per call a
worker receives θ, the normaliser statistics, its tasks and their seeds, and returns its adapted
parameters and statistics (~100 µs of pipe traffic against seconds of sampling). Each worker keeps
its envs alive across calls. Because every task's randomness derives from its own seed, the result
is bit-for-bit the same for any number of workers (tested).

Shutdown belongs to the parent. Workers ignore SIGINT and SIGTERM (a terminal's Ctrl-C reaches the
whole process group; the parent finishes its iteration and closes them). A worker leaves when its pipe closes, when
told to, or, while busy computing, when a watchdog thread sees that its parent is gone (SIGKILL of the
parent leaves no orphans). An exception inside a worker is sent back and re-raised by the parent as
:class:`WorkerError`, after every other worker's reply of that call has been read.
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

import numpy as np
import torch

from ..envs.family import Task
from .pg import AdaptResult, PGAgent
from .policy import Params, RunningNorm

log = logging.getLogger(__name__)


def _to_numpy(params: Params) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in params.items()}


def _to_torch(params: dict[str, np.ndarray]) -> Params:
    return {k: torch.from_numpy(v) for k, v in params.items()}


#: Seconds between the worker watchdog's checks that the parent is alive.
PARENT_CHECK_S = 0.5
#: Signals a worker ignores: a terminal's Ctrl-C or a job manager's SIGTERM reaches the whole process
#: group, and the parent, not each worker, decides how to stop (finish the iteration, checkpoint).
_SHUTDOWN_SIGNALS = {signal.SIGINT, signal.SIGTERM}


def _exit_when_orphaned(parent_pid: int) -> None:
    """Watchdog thread of a worker: end the process as soon as its parent is gone."""
    while True:
        time.sleep(PARENT_CHECK_S)
        if os.getppid() != parent_pid:
            os._exit(3)


def _worker(conn: Connection, make_agent: Callable[[], PGAgent], parent_pid: int) -> None:
    for s in _SHUTDOWN_SIGNALS:  # the parent decides when to stop (inherited already; made sure)
        signal.signal(s, signal.SIG_IGN)
    threading.Thread(target=_exit_when_orphaned, args=(parent_pid,), daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died while this process started
        return
    torch.set_num_threads(1)
    agent = make_agent()
    norm = RunningNorm(agent.obs_dim)
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):  # parent gone: leave
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
            try:
                conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
            except (OSError, BrokenPipeError):  # parent gone
                break
    agent.close()
    conn.close()


class WorkerError(RuntimeError):
    """An adaptation failed inside a worker; the message names the tasks.

    ``worker_traceback`` holds the worker's own traceback (empty when the worker died without one).
    """

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.worker_traceback = worker_traceback


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
        proc = self._ctx.Process(target=_worker, args=(child, self.make_agent, os.getpid()), daemon=True)
        # The worker is born ignoring SIGINT and SIGTERM (an ignored disposition survives exec, and Python
        # then installs no KeyboardInterrupt handler), so a Ctrl-C during its imports cannot kill it. Here
        # the two signals stay blocked meanwhile: one that arrives is delivered after, not lost.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, _SHUTDOWN_SIGNALS)
        handlers = {s: signal.signal(s, signal.SIG_IGN) for s in _SHUTDOWN_SIGNALS}
        try:
            proc.start()
        finally:
            for s, h in handlers.items():
                signal.signal(s, h)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
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
            try:
                send(w, lo, hi)
            except OSError:  # the worker died since the last call: its recv below fails, and it is restarted
                pass
        results: list[AdaptResult] = []
        errors: list[str] = []
        tracebacks: list[str] = []
        for w, (lo, hi) in enumerate(chunks):  # read every reply, so no stale one is left in a pipe
            try:
                reply = self._conns[w].recv()
            except (EOFError, OSError):
                self.restarts += 1
                self._procs[w].join(timeout=1)
                log.warning(
                    "metarl: worker %d died (exit code %s) adapting tasks %d..%d; restarted it and re-ran its tasks",
                    w,
                    self._procs[w].exitcode,
                    lo,
                    hi - 1,
                )
                self._start_worker(w)
                send(w, lo, hi)
                try:
                    reply = self._conns[w].recv()
                except (EOFError, OSError):
                    self._procs[w].join(timeout=1)
                    self._start_worker(w)  # leave a live worker in the slot for later calls
                    errors.append(f"worker {w} died twice adapting tasks {lo}..{hi - 1}")
                    continue
            if reply[0] == "error":
                errors.append(f"adapting tasks {lo}..{hi - 1} ({_short(tasks[lo:hi])}) failed: {reply[1]}")
                tracebacks.append(reply[2])
            else:
                results.append(reply[1])
        if errors:
            raise WorkerError(errors[0], tracebacks[0] if tracebacks else "")
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


def _short(tasks: Sequence[Task], limit: int = 160) -> str:
    text = ", ".join(map(repr, tasks))
    return text if len(text) <= limit else text[: limit - 3] + "..."


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
        success=None if results[0].success is None else torch.cat([r.success for r in results], dim=1),
    )


def default_workers() -> int:
    """One worker per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)
