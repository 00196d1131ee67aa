"""What a run needs before anything is started: worker processes against CPUs and tasks, memory against RAM.

:func:`check_resources` runs before :class:`~metarl.trainer.MetaTrainer` starts a worker or allocates a
buffer, and raises :class:`ResourceError` (a :class:`~metarl.config.ConfigError`: one line, exit status 2,
nothing written) for

- ``--workers`` above the CPUs available to this process (``sched_getaffinity``; not checked for a Ray
  cluster, whose CPUs are elsewhere), or above the most tasks one call adapts (the larger of
  ``--meta-batch`` and ``--eval-tasks``): the extra workers would have nothing to do. Refused, not capped:
  it is a number the user typed, and the message says the largest that works. ``--workers 0`` (the
  default) picks ``min(CPUs, tasks)`` by itself (:func:`effective_workers`).
- a memory estimate above ``MemAvailable`` of ``/proc/meminfo``.

The estimate (:func:`estimate`), in bytes, with ``W`` processes that adapt (the workers, or the trainer
itself with ``--workers 1``), ``B`` = meta-batch, ``V`` = evaluation tasks, ``E`` = episodes per step,
``H`` = horizon, ``od`` / ``ad`` = observation / action sizes, ``h`` = the sum of the hidden widths::

    TRAINER_BYTES + W × WORKER_BYTES   (or SOLO_BYTES when W = 1)          processes, measured
    + (W·⌈B/W⌉ + W·⌈V/W⌉) × E × copy_bytes                                env copies (each process keeps
                                                                          its training and evaluation envs)
    + max over the two phases of  tasks × E × H × step_bytes(algorithm, K)  rollouts and the update's graph
    + PARAM_COPIES × (B + V) × parameters × 4                             adapted parameters in flight

    step_bytes(algorithm, K) = 4 × (od + ad + SCALARS_PER_STEP + GRAPH_FLOATS[algorithm] × h) × (1 + 0.15·K)

with the training phase's tasks ``B``, algorithm ``--agent`` and ``K = --inner-steps``, the evaluation's ``V``,
``--adapt-agent`` and ``--eval-steps``. Measured with ``python benchmarks/adapt_memory.py`` (one ``adapt``
call in a fresh process, HalfCheetahVel, 64×64 MLPs, 100 and 400 copies, peak RSS): a PPO step costs 1.6 KB
of memory per env step, a TRPO step 7.4 KB (its Fisher-vector products keep a double-backward graph over the
whole batch), and three TRPO steps peaked 11 % above one (allocator fragmentation), hence the factor in ``K``.

``copy_bytes`` is read off the family's MuJoCo model: an ``MjData`` is resident for about its model's
``nbuffer`` (measured: 482 KB per HalfCheetah copy for an ``nbuffer`` of 525 KB, 506 KB per Ant copy for
531 KB), twice that when each copy steps its own ``MjModel`` (the randomised-dynamics families: 1.10 MB
per Hopper copy for 519 KB); families without a MuJoCo model (Navigation2D, Pendulum) measured 1-2 KB.

Check of the whole: a default ``python -m metarl.train --env HalfCheetahVel`` (2 workers, PPO training, TRPO
evaluation of 40 tasks) peaked at 3216 MiB of summed RSS (``python benchmarks/footprint.py --json``), estimated
3.6 GiB; ``tests/test_faults.py`` runs smaller cases and checks measured ≤ estimate.
"""

from __future__ import annotations

import dataclasses
import math

from .agents.networks import init_params
from .agents.pool import default_workers
from .config import ConfigError, TrainConfig
from .envs import TaskFamily

MIB = 2**20
#: Peak RSS of the trainer when workers adapt (imports of torch, MuJoCo, Gymnasium, TensorBoard, its local agent),
#: with multiprocessing's resource tracker: 304 + 13 + 11 MiB measured with ``python benchmarks/footprint.py
#: --env HalfCheetahVel --json`` (299 + 13 + 10 with ``--env Navigation2D --workers 2``); rounded up.
TRAINER_BYTES = 340 * MIB
#: Peak RSS of one worker beyond its env copies and rollouts: imports and agent (271 MiB measured before the
#: first adaptation), the update's fixed part (~90 MiB); 417 MiB measured for a Navigation2D worker, whose
#: copies and rollouts are small (``footprint.py --env Navigation2D --workers 2``); rounded up.
WORKER_BYTES = 440 * MIB
#: The same for ``--workers 1``, the trainer adapting in its own process: 481 MiB measured
#: (``footprint.py --env Navigation2D --workers 1``); rounded up.
SOLO_BYTES = 520 * MIB
#: Per env copy besides the MuJoCo buffers (the batched env's arrays, Python objects); measured 1.1 KB
#: (Navigation2D) and 1.8 KB (PendulumRandParams) per copy; rounded up.
COPY_OVERHEAD_BYTES = 16 * 1024
#: Slack on the MuJoCo part of a copy (482 KB measured for 525 + 14 KB of model and data buffers: below 1).
MUJOCO_COPY_FACTOR = 1.1
#: float32 values per env step of a rollout besides the observation and the action: log-probability, reward,
#: value, alive and terminated flags (collect), advantage, return, normalised advantage (update).
SCALARS_PER_STEP = 8
#: float32 values per env step and hidden unit that an inner step's autograd graph holds, per algorithm.
#: Fitted to the measurements above (PPO 1.6 KB and TRPO 7.4 KB per env step with 128 hidden units: 2.6 and
#: 13 per unit), rounded up; the SB3 agents are not measured and take TRPO's.
GRAPH_FLOATS = {"vpg": 4, "ppo": 4, "trpo": 16}
GRAPH_FLOATS_DEFAULT = 16
#: Growth of the peak per inner step (allocator fragmentation): TRPO's peak grew 11 % from one step to three.
PER_STEP_GROWTH = 0.15
#: Copies of the adapted parameters in flight per task (worker tensors, pickle, received arrays, merged tensors).
PARAM_COPIES = 4


class ResourceError(ConfigError):
    """A run that cannot fit this machine; the message says what it needs and what to lower."""


@dataclasses.dataclass(frozen=True)
class Estimate:
    """A run's peak memory, in bytes, by part."""

    workers: int
    processes: int
    copies: int
    copy_bytes: int
    buffers: int
    params: int

    @property
    def total(self) -> int:
        return self.processes + self.copies + self.buffers + self.params


def available_cpus() -> int:
    """CPUs this process may run on."""
    return default_workers()


def available_memory() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes (None where unknown: not Linux)."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def most_tasks(cfg: TrainConfig) -> int:
    """The most tasks one adaptation call gets: a meta-batch, or the periodic evaluation's held-out tasks."""
    return max(cfg.meta_batch, cfg.eval_tasks)


def effective_workers(cfg: TrainConfig) -> int:
    """The worker processes a ``processes`` run starts (1: it adapts in the trainer's process).

    ``--workers 0`` means one per CPU, but never more than :func:`most_tasks`.
    """
    return cfg.workers or min(available_cpus(), most_tasks(cfg))


def _family_sizes(cfg: TrainConfig) -> tuple[int, int, int, int]:
    """Observation size, action size, horizon and the bytes of one env copy of ``cfg``'s family."""
    family = cfg.family
    env = family()
    try:
        unwrapped = getattr(env, "unwrapped", env)
        od = int(math.prod(unwrapped.observation_space.shape))
        ad = int(math.prod(unwrapped.action_space.shape))
        model = getattr(unwrapped, "model", None)
        copy_bytes = COPY_OVERHEAD_BYTES
        if model is not None and hasattr(model, "nbuffer"):
            import mujoco

            generic = getattr(family.make_batch, "__func__", None) is TaskFamily.make_batch.__func__  # type: ignore[attr-defined]
            # each copy steps its own model: the randomised-dynamics families, and the generic GymBatchEnv
            own_model = generic or bool(getattr(unwrapped, "_batch_per_copy_models", False))
            data = mujoco.MjData(model).nbuffer
            copy_bytes += int(MUJOCO_COPY_FACTOR * (model.nbuffer * (2 if own_model else 1) + data))
    finally:
        env.close()
    return od, ad, int(family.horizon), copy_bytes


def _step_bytes(agent: str, steps: int, od: int, ad: int, hidden: tuple[int, ...]) -> float:
    """Peak bytes per env step of one adaptation by ``agent`` with ``steps`` inner steps (module formula)."""
    floats = od + ad + SCALARS_PER_STEP + GRAPH_FLOATS.get(agent, GRAPH_FLOATS_DEFAULT) * sum(hidden)
    return 4 * floats * (1 + PER_STEP_GROWTH * steps)


def estimate(cfg: TrainConfig) -> Estimate:
    """The peak memory a ``processes`` run of ``cfg`` needs (see the module's formula)."""
    w = max(1, effective_workers(cfg))
    od, ad, horizon, copy_bytes = _family_sizes(cfg)
    e, hidden = cfg.episodes_per_step, tuple(cfg.hidden)
    processes = SOLO_BYTES if w == 1 else TRAINER_BYTES + w * WORKER_BYTES
    copies = (w * math.ceil(cfg.meta_batch / w) + w * math.ceil(cfg.eval_tasks / w)) * e * copy_bytes
    train = cfg.meta_batch * _step_bytes(cfg.inner.agent, cfg.inner_steps, od, ad, hidden)
    evaluation = cfg.eval_tasks * _step_bytes(cfg.adapt.agent, cfg.eval_steps, od, ad, hidden)
    buffers = int(max(train, evaluation) * e * horizon)
    n_params = sum(v.numel() for v in init_params(od, ad, hidden, cfg.log_std_init, 0).values())
    params = PARAM_COPIES * (cfg.meta_batch + cfg.eval_tasks) * n_params * 4
    return Estimate(w, processes, copies, copy_bytes, buffers, params)


def _gib(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / MIB:.0f} MiB"


def check_resources(cfg: TrainConfig, memory: int | None = None) -> Estimate | None:
    """Refuse, before anything starts, a run that this machine cannot hold; returns the memory estimate.

    Args:
        cfg: the run's configuration (validated).
        memory: bytes available (default: ``MemAvailable``); None where unknown skips the memory check.

    Raises:
        ResourceError: one line naming the flag, the limit and what to lower.
    """
    tasks, cpus = most_tasks(cfg), available_cpus()
    local = cfg.backend == "processes" or not cfg.ray_address  # Ray without an address: actors on this machine
    if local and cfg.workers > cpus:
        raise ResourceError(
            f"--workers {cfg.workers} is above the {cpus} CPUs available to this process; "
            f"use --workers {cpus} or fewer (0: one per CPU)"
        )
    if cfg.workers > tasks:
        raise ResourceError(
            f"--workers {cfg.workers} is above the {tasks} task{'s' if tasks != 1 else ''} an adaptation call gets "
            f"(the larger of --meta-batch {cfg.meta_batch} and --eval-tasks {cfg.eval_tasks}): the extra workers "
            "would have nothing to do; "
            f"use --workers {min(tasks, cpus) if local else tasks} or fewer (0: one per CPU)"
        )
    if cfg.backend != "processes":  # Ray actors' memory is Ray's to schedule
        return None
    est = estimate(cfg)
    memory = available_memory() if memory is None else memory
    if memory is not None and est.total > memory:
        raise ResourceError(
            f"this run needs about {_gib(est.total)} of memory ({_gib(est.processes)} for {est.workers} "
            f"process{'es' if est.workers > 1 else ''}, {_gib(est.copies)} for env copies, {_gib(est.buffers)} for "
            f"rollouts and updates) and {_gib(memory)} is available; lower --meta-batch ({cfg.meta_batch}), "
            f"--episodes-per-step ({cfg.episodes_per_step}), --eval-tasks ({cfg.eval_tasks}) or --workers"
        )
    return est
