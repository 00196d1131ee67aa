"""A meta-training run: the one training loop, its run folder (config.json, TensorBoard events, checkpoints), signals.

:func:`train_loop` drives :class:`~metarl.trainer.MetaTrainer` (which writes no files) to the run's ``meta_iters``,
with callbacks (metarl/callbacks.py); :class:`RunFolder` owns everything a run writes; the Python API
(metarl/algorithm.py: ``metarl.Reptile``, ...) puts them together, and ``python -m metarl.train`` is a thin
layer over that API (it turns the faults into one line and an exit status).

Faults (docs/robustness.md): every file is written atomically, so a process killed at any moment leaves a run
that ``--resume`` continues, losing at most the iteration in progress. SIGINT/SIGTERM finish the iteration,
checkpoint and stop (status 130/143; a second one stops at once, keeping the last checkpoint). Divergence
(NaN/inf), simulator and worker faults stop the run with status 1 and keep the last good checkpoint.
"""

from __future__ import annotations

import contextlib
import json
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from . import __version__
from .agents.pool import WorkerError
from .callbacks import Callback
from .checkpoint import CheckpointError, remove_stale_temporaries, save_checkpoint, write_text_atomic
from .config import CONFIG_VERSION, TrainConfig
from .envs import RenderError, SimulationError
from .progress import Progress
from .trainer import DivergenceError, EvalResult, MetaTrainer

#: Faults that stop a run with exit status 1, keeping its last good checkpoint.
FAULTS = (DivergenceError, WorkerError, SimulationError)


class StartError(RuntimeError):
    """The adaptation workers could not start (e.g. an unreachable ``--ray-address``), or the run folder cannot be
    created; nothing was written."""


def _flat_config(cfg: TrainConfig) -> dict[str, Any]:
    """The configuration as one level of ``name -> value`` (the inner loops as ``inner.*``, ``adapt.*``)."""
    flat = {k: v for k, v in cfg.to_dict().items() if not isinstance(v, dict)}
    for loop in ("inner", "adapt"):
        flat.update({f"{loop}.{k}": v for k, v in getattr(cfg, loop).to_dict().items()})
    return flat


def _hparams_markdown(cfg: TrainConfig) -> str:
    rows = "\n".join(f"|{k}|{v}|" for k, v in _flat_config(cfg).items())
    return f"|param|value|\n|-|-|\n{rows}"


def scalar_layout(cfg: TrainConfig) -> dict[str, Any]:
    """TensorBoard's custom-scalars layout: the adaptation gap at a glance (two charts of several lines each)."""
    held_out = [f"eval/return_step{k}" for k in range(cfg.eval_steps + 1)]
    return {
        "adaptation": {
            "meta-batch return before and after adapting (adapt/return_pre, adapt/return_post)": [
                "Multiline",
                ["adapt/return_pre", "adapt/return_post"],
            ],
            f"held-out return after k = 0..{cfg.eval_steps} steps (eval/return_step*)": ["Multiline", held_out],
        }
    }


def hparams_summaries(cfg: TrainConfig) -> list[Any]:
    """The HParams tab's summaries: the hyper-parameters, with the held-out returns as its metrics.

    The tab shows each metric's latest value from the run's own scalars (``eval/return_step{k}``,
    ``adapt/return_post``), so written once at the start it shows the final metrics at the end; no scalar is written
    here (the ``0.0`` values only name the metrics).
    """
    from torch.utils.tensorboard.summary import hparams

    values = {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in _flat_config(cfg).items()}
    metrics = {f"eval/return_step{k}": 0.0 for k in range(cfg.eval_steps + 1)} | {"adapt/return_post": 0.0}
    return list(hparams(values, metrics))


def eval_video(trainer: MetaTrainer, ev: EvalResult) -> tuple[Any, float]:
    """The frames of ``eval/video``: the first held-out task before and after the evaluation's steps, side by side.

    The adapted parameters are the evaluation's own (no extra adaptation); the episodes run on an env of their own
    with the evaluation seed, every second step rendered, so the video changes no result.
    """
    from .policy import _GaussianPolicy
    from .video import adaptation_frames

    cfg, task = trainer.config, ev.tasks[0]
    before = _GaussianPolicy(trainer.family, cfg, trainer.theta, trainer.norm)
    after = _GaussianPolicy(trainer.family, cfg, ev.params[0], trainer.norm)
    steps = len(ev.returns) - 1
    row = [(before, task, "before adapting"), (after, task, f"after {steps} step{'s' if steps != 1 else ''}")]
    return adaptation_frames([row], seed=cfg.eval_seed, stride=2)


def video_due(cfg: TrainConfig, iteration: int) -> bool:
    """Whether the evaluation after ``iteration`` logs a video: every ``video_every``-th periodic one, and the last."""
    if not cfg.video_every:
        return False
    return iteration == cfg.meta_iters or bool(cfg.eval_every and (iteration // cfg.eval_every) % cfg.video_every == 0)


def config_document(cfg: TrainConfig, preset: dict[str, Any]) -> dict[str, Any]:
    """What config.json holds."""
    return {
        "format_version": CONFIG_VERSION,
        "config": cfg.to_dict(),
        "family": cfg.family_name,
        "metarl_version": __version__,
        "preset": preset,
        "command": sys.argv,
    }


def start_trainer(cfg: TrainConfig, state: dict[str, Any] | None, source: str) -> MetaTrainer:
    """The trainer of ``cfg``, restored from checkpoint ``state`` where given.

    Raises:
        StartError: the workers could not start (one line).
        CheckpointError: ``state`` does not fit ``cfg``.
    """
    import torch

    torch.set_num_threads(1)  # the simulator threads own the cores; the small MLPs gain nothing
    try:
        trainer = MetaTrainer(cfg)
    except KeyboardInterrupt:
        raise
    except Exception as e:  # e.g. an unreachable --ray-address: one line, nothing written
        first = (str(e).strip().splitlines() or [""])[0][:200]
        hint = "; check --ray-address" if cfg.backend == "ray" else ""
        raise StartError(f"cannot start the adaptation workers ({type(e).__name__}: {first}){hint}") from e
    if state is not None:
        try:
            trainer.load_state_dict(state, source=source)
        except CheckpointError:
            trainer.close()
            raise
    return trainer


class RunFolder:
    """What a run writes in its folder: config.json, TensorBoard events and checkpoints.

    The caller holds the folder's lock (metarl/lock.py). A folder without config.json is a new run: config.json
    and the hyper-parameter table are written; otherwise config.json is brought up to date (a new total, new
    workers) and the TensorBoard events a crashed process logged after its last checkpoint are dropped.
    """

    def __init__(self, run_dir: Path, cfg: TrainConfig, preset: dict[str, Any], iteration: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = run_dir
        self.ckpt_dir = run_dir / "checkpoints"
        self.kept = self.ckpt_dir / "latest.pt"
        try:
            self.ckpt_dir.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise StartError(
                f"cannot create the run folder {run_dir} ({e.strerror or e}); choose another --run-dir"
            ) from None
        resumed = (run_dir / "config.json").exists()
        self.preset = preset
        if resumed:
            for p in remove_stale_temporaries(self.ckpt_dir):
                print(f"metarl.train: removed {p.name}, a checkpoint write interrupted by a crash")
        self.write_config(cfg)
        if resumed:
            print(f"metarl.train: resuming {run_dir} at iteration {iteration} of {cfg.meta_iters}")
        else:
            print(f"metarl.train: {cfg.family_name} preset {json.dumps(preset)}")
            print(f"metarl.train: run folder {run_dir}")
        # purge_step drops events a crashed process logged after its last checkpoint
        self.writer = SummaryWriter(str(run_dir), purge_step=iteration + 1 if resumed else None)
        if not resumed:
            self.writer.add_text("hyperparameters", _hparams_markdown(cfg), 0)
            self.writer.add_custom_scalars(scalar_layout(cfg))
            for summary in hparams_summaries(cfg):
                self.writer._get_file_writer().add_summary(summary)
        self.videos = self._can_render(cfg)

    def write_config(self, cfg: TrainConfig) -> None:
        """Write config.json, or update its configuration where ``cfg`` differs (e.g. a new ``meta_iters``)."""
        path = self.run_dir / "config.json"
        if not path.exists():
            write_text_atomic(path, json.dumps(config_document(cfg, self.preset), indent=2) + "\n")
            return
        saved = json.loads(path.read_text())
        if saved.get("config") != cfg.to_dict() or saved.get("format_version") != CONFIG_VERSION:
            doc = {**saved, "format_version": CONFIG_VERSION, "config": cfg.to_dict()}
            write_text_atomic(path, json.dumps(doc, indent=2) + "\n")

    def checkpoint(self, trainer: MetaTrainer, numbered: bool) -> None:
        st = trainer.state_dict()
        save_checkpoint(self.kept, st)
        if numbered:
            save_checkpoint(self.ckpt_dir / f"iter_{trainer.iteration:06d}.pt", st)

    @staticmethod
    def _can_render(cfg: TrainConfig) -> bool:
        """Videos for ``cfg``: asked for, a family with a renderer, and an OpenGL backend that works (else one line)."""
        from .video import check_rendering

        if not (cfg.video_every and cfg.family.has_renderer()):
            return False
        try:
            check_rendering(cfg.family)
        except RenderError as e:
            print(f"metarl.train: warning: no eval/video ({e}); training goes on without videos", file=sys.stderr)
            return False
        return True

    def log_video(self, trainer: MetaTrainer, ev: EvalResult) -> None:
        """``eval/video`` (:func:`eval_video`) at the trainer's iteration."""
        from .video import tensorboard_video

        frames, fps = eval_video(trainer, ev)
        tensorboard_video(self.writer, "eval/video", frames, fps, trainer.iteration)
        self.writer.flush()

    def log(self, metrics: dict[str, float], step: int) -> None:
        for name, value in metrics.items():
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def evaluate(trainer: MetaTrainer, progress: Progress, folder: RunFolder | None = None) -> dict[str, float]:
    """The periodic evaluation on held-out tasks, as the scalars logged for it (``eval/return_step{k}``, ...).

    With ``folder``, the scalars are logged there, and the video where due (:func:`video_due`); the whole of it is
    timed apart from training by ``progress``, which prints its line.
    """
    with progress.evaluating(f"eval at iteration {trainer.iteration}"):
        return _evaluate(trainer, progress, folder)


def _evaluate(trainer: MetaTrainer, progress: Progress, folder: RunFolder | None) -> dict[str, float]:
    ev = trainer.evaluate()
    metrics = {f"eval/return_step{k}": float(r) for k, r in enumerate(ev.mean)}
    metrics["eval/env_steps_per_s"] = ev.env_steps / ev.seconds
    rates = [] if ev.success is None else ev.success.mean(1)
    metrics.update({f"eval/success_step{k}": float(rate) for k, rate in enumerate(rates)})
    curve = " -> ".join(f"{r:.1f}" for r in ev.mean)
    if len(rates):
        curve += "; success rate " + " -> ".join(f"{r:.2f}" for r in rates)
    progress.write(
        f"metarl.train: eval at iteration {trainer.iteration} on {len(ev.tasks)} held-out tasks: {curve} "
        f"({ev.seconds:.0f} s)"
    )
    if folder is not None:
        if folder.videos and video_due(trainer.config, trainer.iteration):
            t0 = time.perf_counter()
            folder.log_video(trainer, ev)
            metrics["time/video_s"] = time.perf_counter() - t0  # what rendering costs (docs/usage.md, "Videos")
        folder.log(metrics, trainer.iteration)
    return metrics


@contextlib.contextmanager
def signals_finish_the_iteration() -> Iterator[dict[str, Any]]:
    """While inside: SIGINT/SIGTERM set ``stop["signal"]`` (the loop finishes its iteration and stops); a second one
    raises KeyboardInterrupt, unless ``stop["closing"]``. Outside the main thread no handler can be installed."""
    stop: dict[str, Any] = {"signal": None, "closing": False}

    def on_signal(signum: int, frame: Any) -> None:  # finish the iteration, then stop; a second signal: now
        if stop["signal"] is not None and not stop["closing"]:
            raise KeyboardInterrupt(signal.Signals(stop["signal"]).name)
        stop["signal"] = signum

    main_thread = threading.current_thread() is threading.main_thread()
    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        yield stop
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def train_loop(
    trainer: MetaTrainer,
    folder: RunFolder | None,
    callback: Callback,
    stop: dict[str, Any],
    fresh: bool,
    quiet: bool,
) -> int:
    """Train to ``trainer.config.meta_iters``: the loop of every run, from the command line or from Python.

    After each meta-iteration: its scalars to TensorBoard, the checkpoint (``latest.pt``; numbered every
    ``checkpoint_every`` and at the end), the periodic evaluation where due, then ``callback`` with the iteration's
    scalars (those it adds are logged too; returning False stops the run, which ends with a numbered checkpoint
    of that iteration). Without ``folder`` nothing is written. Returns 0, or 130/143 when stopped by SIGINT/SIGTERM.
    """
    cfg = trainer.config
    progress = Progress(cfg.meta_iters, trainer.iteration, cfg.eval_every, enabled=not quiet)
    try:
        return _loop(trainer, folder, callback, stop, fresh, progress)
    finally:
        progress.close()


def _loop(
    trainer: MetaTrainer,
    folder: RunFolder | None,
    callback: Callback,
    stop: dict[str, Any],
    fresh: bool,
    progress: Progress,
) -> int:
    cfg = trainer.config
    if fresh:
        if folder is not None:
            folder.checkpoint(trainer, numbered=False)
        if cfg.eval_every:
            evaluate(trainer, progress, folder)
    while trainer.iteration < cfg.meta_iters:
        metrics = trainer.train_iteration()
        it = trainer.iteration
        last = it == cfg.meta_iters
        numbered = bool(cfg.checkpoint_every and it % cfg.checkpoint_every == 0) or last
        if folder is not None:
            folder.log(metrics, it)
            folder.checkpoint(trainer, numbered)
        progress.trained(it, metrics)
        if last or (cfg.eval_every and it % cfg.eval_every == 0):
            metrics.update(evaluate(trainer, progress, folder))
        logged = set(metrics)
        go_on = callback.on_iteration(metrics, trainer) is not False
        if folder is not None:
            folder.log({k: v for k, v in metrics.items() if k not in logged}, it)
            if not go_on and not numbered:
                folder.checkpoint(trainer, numbered=True)
        if not go_on:
            print(f"\nmetarl.train: stopped by a callback after iteration {it}", file=sys.stderr)
            return 0
        if stop["signal"] is not None:
            name = signal.Signals(stop["signal"]).name
            saved = (
                f"checkpoint saved. Resume with:\n  python -m metarl.train --resume {folder.run_dir}"
                if folder is not None
                else "no run folder (run_dir=None), nothing written"
            )
            print(f"\nmetarl.train: stopped by {name} after iteration {it}; {saved}", file=sys.stderr)
            return 130 if stop["signal"] == signal.SIGINT else 143
    return 0
