"""One pool that runs any agent in worker processes or Ray actors: chunking, retries and merging written once.

The meta-batch's tasks are split into contiguous chunks over ``N`` long-lived workers; each worker builds
its agent (and so its envs) once, from a picklable factory, and per call receives θ, the normaliser
statistics, its tasks, their seeds and the inner loop (so one pool serves meta-training and meta-test
adaptation). Only coarse work crosses the boundary (~100 µs of pipe traffic, ~1 ms a Ray call, against
seconds of sampling). Every task's randomness derives from its own seed, so the result is bit for bit
that of one process, for any number of workers and either transport (tested).

Faults: a worker that dies is replaced and its chunk re-run, once per call (counted in
:attr:`WorkerPool.restarts`, logged as a warning); an exception inside a worker is raised as
:class:`WorkerError` naming the tasks, after every other chunk's reply has been read. The transports:

- :class:`ProcessTransport`: spawned processes on this machine. Shutdown belongs to the parent: workers
  ignore SIGINT and SIGTERM (a terminal's Ctrl-C reaches the whole process group; the parent finishes its
  iteration and closes them), and leave when their pipe closes, when told to, or, while busy, when a
  watchdog thread sees that their parent is gone (SIGKILL of the parent leaves no orphans).
- :class:`~metarl.agents.ray_transport.RayTransport`: Ray actors, locally or on a cluster (the optional
  ``ray`` extra; imported only when used).
"""

from __future__ import annotations

import dataclasses
import logging
import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any, Protocol

import numpy as np
import torch

from ..envs.family import Task
from .agent import AdaptRequest, AdaptResult, Agent
from .networks import Params
from .normalizer import RunningNorm
from .update import UpdateBatch

log = logging.getLogger(__name__)


class WorkerError(RuntimeError):
    """An adaptation failed inside a worker; the message names the tasks.

    ``worker_traceback`` holds the worker's own traceback (empty when the worker died without one).
    """

    def __init__(self, message: str, worker_traceback: str = "") -> None:
        super().__init__(message)
        self.worker_traceback = worker_traceback


class WorkerDied(Exception):
    """A transport's worker is gone (process killed, node lost); the message says how."""


class WorkerFailed(Exception):
    """The agent raised inside a worker; ``args`` are the one-line message and the worker's traceback."""


def to_numpy(params: Params) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy() for k, v in params.items()}


def to_torch(params: dict[str, np.ndarray]) -> Params:
    return {k: torch.from_numpy(v) for k, v in params.items()}


#: What a worker receives per call: θ and the normaliser's statistics as arrays, and the request without them.
Job = tuple[dict[str, np.ndarray], dict[str, np.ndarray], AdaptRequest]


def run_job(agent: Agent, norm: RunningNorm, job: Job) -> AdaptResult:
    """Run one chunk in a worker; the adapted parameters go back as arrays."""
    theta, norm_state, req = job
    norm.load_state_dict({k: torch.from_numpy(np.array(v)) for k, v in norm_state.items()})
    theta_t = {k: torch.from_numpy(np.array(v)) for k, v in theta.items()}  # writable copies (Ray's are read-only)
    res = agent.adapt(theta_t, req.tasks, req.inner, req.steps, req.episodes, norm, req.seeds, req.record)
    res.params = [to_numpy(p) for p in res.params]  # type: ignore[misc]
    return res


class Transport(Protocol):
    """Where a pool's workers live. ``submit`` starts a job; ``result`` waits for it."""

    workers: int
    #: How log lines name one worker ("worker", "Ray actor").
    worker_name: str

    def submit(self, w: int, job: Job) -> Any: ...

    def result(self, w: int, ticket: Any) -> AdaptResult:
        """The job's result; raises :class:`WorkerDied` or :class:`WorkerFailed`."""
        ...

    def replace(self, w: int) -> None:
        """Start a fresh worker in slot ``w`` (the old one is dead or killed)."""
        ...

    def pids(self) -> list[int]: ...

    def close(self) -> None: ...


class WorkerPool(Agent):
    """Any agent's ``adapt`` with the tasks split over a transport's workers (implements ``Agent``).

    Args:
        local: an agent of the same kind in this process, for ``init_params`` and the sizes.
        transport: the workers (built from a picklable factory of the same agent).
    """

    def __init__(self, local: Agent, transport: Transport) -> None:
        self.transport = transport
        self._local = local
        self.sb3_layout = local.sb3_layout
        self.obs_dim, self.act_dim = self._local.obs_dim, self._local.act_dim
        self.restarts = 0

    @property
    def workers(self) -> int:
        return self.transport.workers

    def init_params(self, seed: int) -> Params:
        return self._local.init_params(seed)

    def _adapt(self, req: AdaptRequest) -> AdaptResult:
        """A worker that dies is replaced and its tasks re-run once."""
        t, tasks = self.transport, req.tasks
        bounds = np.linspace(0, len(tasks), min(t.workers, len(tasks)) + 1).astype(int)
        chunks = [(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:]) if b > a]
        theta_np = to_numpy(req.theta)
        norm_np = {k: v.numpy() for k, v in req.norm.state_dict().items()}
        bare = dataclasses.replace(req, theta={}, norm=None)  # θ and the normaliser travel as arrays

        def job(lo: int, hi: int) -> Job:
            return (theta_np, norm_np, bare.chunk(lo, hi))

        tickets = [t.submit(w, job(lo, hi)) for w, (lo, hi) in enumerate(chunks)]
        results: list[AdaptResult] = []
        errors: list[tuple[str, str]] = []
        for w, (lo, hi) in enumerate(chunks):  # read every reply, so no stale one is left behind
            for attempt in (1, 2):
                try:
                    results.append(t.result(w, tickets[w]))
                    break
                except WorkerDied as e:
                    t.replace(w)  # leave a live worker in the slot for later calls
                    self.restarts += 1
                    if attempt == 2:
                        errors.append((f"{t.worker_name} {w} died twice adapting tasks {lo}..{hi - 1} ({e})", ""))
                        break
                    log.warning(
                        "metarl: %s %d died (%s) adapting tasks %d..%d; restarted it and re-ran its tasks",
                        t.worker_name,
                        w,
                        e,
                        lo,
                        hi - 1,
                    )
                    tickets[w] = t.submit(w, job(lo, hi))
                except WorkerFailed as e:
                    message, worker_traceback = e.args
                    errors.append(
                        (f"adapting tasks {lo}..{hi - 1} ({_short(tasks[lo:hi])}) failed: {message}", worker_traceback)
                    )
                    break
        if errors:
            raise WorkerError(*errors[0])
        return merge(results)

    def pids(self) -> list[int]:
        """Process ids of the workers (Ray actors may live on other nodes)."""
        return self.transport.pids()

    def close(self) -> None:
        self.transport.close()
        self._local.close()


def _short(tasks: Sequence[Task], limit: int = 160) -> str:
    text = ", ".join(map(repr, tasks))
    return text if len(text) <= limit else text[: limit - 3] + "..."


def merge(results: list[AdaptResult]) -> AdaptResult:
    """One result from the chunks' results, in task order (per-task tensors concatenated, scalars weighted)."""
    n = [len(r.params) for r in results]
    total = sum(n)
    return AdaptResult(
        params=[to_torch(p) for r in results for p in r.params],  # type: ignore[arg-type]
        returns=torch.cat([r.returns for r in results], dim=1),
        policy_loss=float(sum(r.policy_loss * k for r, k in zip(results, n)) / total),
        value_loss=float(sum(r.value_loss * k for r, k in zip(results, n)) / total),
        env_steps=sum(r.env_steps for r in results),
        obs_sum=torch.cat([r.obs_sum for r in results]),
        obs_sq_sum=torch.cat([r.obs_sq_sum for r in results]),
        obs_count=sum(r.obs_count for r in results),
        stats={k: float(sum(r.stats[k] * m for r, m in zip(results, n)) / total) for k in results[0].stats},
        success=None if results[0].success is None else torch.cat([r.success for r in results], dim=1),
        batches=None if results[0].batches is None else [_cat(parts) for parts in zip(*(r.batches for r in results))],
    )


def _cat(parts: Sequence[UpdateBatch]) -> UpdateBatch:
    """Batches of task chunks joined along the task dimension."""
    return UpdateBatch(*(torch.cat([getattr(p, f.name) for p in parts]) for f in dataclasses.fields(UpdateBatch)))


def default_workers() -> int:
    """One worker per CPU core available to this process."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ---- worker processes ------------------------------------------------------------------------------
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


def _worker(conn: Connection, make_agent: Callable[[], Agent], parent_pid: int) -> None:
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
        try:
            conn.send(("ok", run_job(agent, norm, msg[1])))
        except Exception as e:  # report, keep serving
            try:
                conn.send(("error", f"{type(e).__name__}: {e}", traceback.format_exc()))
            except (OSError, BrokenPipeError):  # parent gone
                break
    agent.close()
    conn.close()


class ProcessTransport:
    """``workers`` spawned processes on this machine, each serving jobs over a pipe."""

    worker_name = "worker"

    def __init__(self, make_agent: Callable[[], Agent], workers: int) -> None:
        self.make_agent = make_agent
        self.workers = int(workers)
        self._ctx = mp.get_context("spawn")  # no fork of a process holding threads
        self._procs: list[Any] = []
        self._conns: list[Connection] = []
        for _ in range(self.workers):
            self._start()

    def _start(self, slot: int | None = None) -> None:
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

    def submit(self, w: int, job: Job) -> None:
        try:
            self._conns[w].send(("adapt", job))
        except OSError:  # the worker died since the last call: result() sees it
            pass

    def result(self, w: int, ticket: Any) -> AdaptResult:
        try:
            reply = self._conns[w].recv()
        except (EOFError, OSError):
            self._procs[w].join(timeout=1)
            raise WorkerDied(f"exit code {self._procs[w].exitcode}") from None
        if reply[0] == "error":
            raise WorkerFailed(reply[1], reply[2])
        return reply[1]

    def replace(self, w: int) -> None:
        self._procs[w].join(timeout=1)
        self._start(w)

    def pids(self) -> list[int]:
        return [p.pid for p in self._procs if p.pid is not None]

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
