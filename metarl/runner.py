"""A meta-training run in a run folder: config.json, TensorBoard events, checkpoints, evaluations, signals.

``run(cfg, run_dir, state)`` drives :class:`~metarl.trainer.MetaTrainer` (the loop that writes no files)
and owns everything a run writes. Faults (docs/robustness.md): every file is written atomically, so a
process killed at any moment leaves a run that ``--resume`` continues, losing at most the iteration in
progress. SIGINT/SIGTERM finish the iteration, checkpoint and return 130/143 (a second one stops at once,
keeping the last checkpoint). Divergence (NaN/inf), simulator and worker faults stop the run with status
1 and keep the last good checkpoint.
"""

from __future__ import annotations

import functools
import json
import signal
import sys
from pathlib import Path
from typing import Any

from . import __version__
from .agents.pool import WorkerError
from .checkpoint import CheckpointError, load_checkpoint, remove_stale_temporaries, save_checkpoint, write_text_atomic
from .cli import fail
from .config import CONFIG_VERSION, TrainConfig
from .envs import SimulationError
from .progress import Progress
from .trainer import DivergenceError, MetaTrainer

_fail = functools.partial(fail, "metarl.train")

#: Faults that stop a run with exit status 1, keeping its last good checkpoint.
FAULTS = (DivergenceError, WorkerError, SimulationError)


def _hparams_markdown(cfg: TrainConfig) -> str:
    flat = {k: v for k, v in cfg.to_dict().items() if not isinstance(v, dict)}
    for loop in ("inner", "adapt"):
        flat.update({f"{loop}.{k}": v for k, v in getattr(cfg, loop).to_dict().items()})
    rows = "\n".join(f"|{k}|{v}|" for k, v in flat.items())
    return f"|param|value|\n|-|-|\n{rows}"


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


class _Session:
    """One process's share of a run: the trainer, its TensorBoard writer and its stop flag."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, trainer: MetaTrainer, quiet: bool, resumed: bool) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self.cfg, self.run_dir, self.trainer, self.quiet = cfg, run_dir, trainer, quiet
        self.ckpt_dir = run_dir / "checkpoints"
        self.kept = self.ckpt_dir / "latest.pt"
        self.stop: dict[str, Any] = {"signal": None, "closing": False}
        # purge_step drops events a crashed process logged after its last checkpoint
        self.writer = SummaryWriter(str(run_dir), purge_step=trainer.iteration + 1 if resumed else None)

    def checkpoint(self, numbered: bool) -> None:
        st = self.trainer.state_dict()
        save_checkpoint(self.kept, st)
        if numbered:
            save_checkpoint(self.ckpt_dir / f"iter_{self.trainer.iteration:06d}.pt", st)

    def evaluate(self) -> None:
        trainer, writer = self.trainer, self.writer
        ev = trainer.evaluate()
        for k, r in enumerate(ev.mean):
            writer.add_scalar(f"eval/return_step{k}", float(r), trainer.iteration)
        writer.add_scalar("eval/env_steps_per_s", ev.env_steps / ev.seconds, trainer.iteration)
        rates = [] if ev.success is None else ev.success.mean(1)
        for k, rate in enumerate(rates):
            writer.add_scalar(f"eval/success_step{k}", float(rate), trainer.iteration)
        if not self.quiet:
            curve = " -> ".join(f"{r:.1f}" for r in ev.mean)
            if len(rates):
                curve += "; success rate " + " -> ".join(f"{r:.2f}" for r in rates)
            print(
                f"\nmetarl.train: eval at iteration {trainer.iteration} on {len(ev.tasks)} held-out tasks: {curve}",
                file=sys.stderr,
            )

    def loop(self, fresh: bool) -> int:
        """Train to ``meta_iters``; returns the exit status (0, or 130/143 when stopped by a signal)."""
        cfg, trainer = self.cfg, self.trainer
        progress = Progress(cfg.meta_iters, trainer.iteration, enabled=not self.quiet)
        if fresh:
            self.checkpoint(numbered=False)
            if cfg.eval_every:
                self.evaluate()
        while trainer.iteration < cfg.meta_iters:
            metrics = trainer.train_iteration()
            it = trainer.iteration
            for name, value in metrics.items():
                self.writer.add_scalar(name, value, it)
            last = it == cfg.meta_iters
            self.checkpoint(numbered=bool(cfg.checkpoint_every and it % cfg.checkpoint_every == 0) or last)
            progress.update(it, metrics)
            if last or (cfg.eval_every and it % cfg.eval_every == 0):
                self.evaluate()
            self.writer.flush()
            if self.stop["signal"] is not None:
                name = signal.Signals(self.stop["signal"]).name
                print(
                    f"\nmetarl.train: stopped by {name} after iteration {it}; checkpoint saved. Resume with:\n"
                    f"  python -m metarl.train --resume {self.run_dir}",
                    file=sys.stderr,
                )
                return 130 if self.stop["signal"] == signal.SIGINT else 143
        return 0

    def guarded_loop(self, fresh: bool) -> int:
        """:meth:`loop`, with faults, write errors and a second signal turned into one line and a status."""
        run_dir, saved = self.run_dir, lambda: _saved_iteration(self.kept)
        try:
            return self.loop(fresh)
        except FAULTS as e:
            what = (
                "diverged"
                if isinstance(e, DivergenceError)
                else f"fault in meta-iteration {self.trainer.iteration + 1}"
            )
            msg = str(e).replace("\n", " ")
            detail = getattr(e, "worker_traceback", "")
            if detail:  # keep the worker's traceback for a bug report, out of the one-line message
                try:
                    write_text_atomic(run_dir / "worker_error.txt", detail)
                    msg += f" (the worker's traceback is in {run_dir / 'worker_error.txt'})"
                except OSError:
                    pass
            return _fail(
                f"{what}: {msg}; stopped, the last good checkpoint (iteration {saved()}) is kept in {self.kept}",
                code=1,
            )
        except OSError as e:  # disk full, folder removed or read-only: the atomic writes kept the last checkpoint
            return _fail(
                f"cannot write {e.filename or run_dir} ({e.strerror or e}); stopped, the checkpoint of iteration "
                f"{saved()} is kept. Free space or fix permissions, then: python -m metarl.train --resume {run_dir}",
                code=1,
            )
        except KeyboardInterrupt:
            name = signal.Signals(self.stop["signal"] or signal.SIGINT).name
            return _fail(
                f"stopped at once by a second {name}; the checkpoint of iteration {saved()} is kept. "
                f"Resume with: python -m metarl.train --resume {run_dir}",
                code=130 if name == "SIGINT" else 143,
            )
        finally:
            self.stop["closing"] = True  # a signal now cannot interrupt the flush and the workers' shutdown
            self.writer.close()
            self.trainer.close()


def run(
    cfg: TrainConfig,
    run_dir: Path,
    state: dict[str, Any] | None = None,
    preset: dict[str, Any] | None = None,
    quiet: bool = False,
) -> int:
    """Meta-train ``cfg`` into ``run_dir`` (continuing checkpoint ``state`` if given). Returns an exit status."""
    import torch

    torch.set_num_threads(1)  # the simulator threads own the cores; the small MLPs gain nothing
    stop: dict[str, Any] = {"signal": None, "closing": False}

    def on_signal(signum: int, frame: Any) -> None:  # finish the iteration, then stop; a second signal: now
        if stop["signal"] is not None and not stop["closing"]:
            raise KeyboardInterrupt
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        session = _start(cfg, run_dir, state, preset or {}, quiet)
        if isinstance(session, int):
            return session
        session.stop = stop
        status = session.guarded_loop(fresh=state is None)
        if status == 0:
            t = session.trainer
            print(f"metarl.train: done, {t.iteration} iterations, {t.env_steps} env steps; {run_dir}")
        return status
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _start(
    cfg: TrainConfig, run_dir: Path, state: dict[str, Any] | None, preset: dict[str, Any], quiet: bool
) -> _Session | int:
    """Build the trainer, restore ``state``, write config.json; an exit status where that fails (nothing written)."""
    try:
        trainer = MetaTrainer(cfg)
    except KeyboardInterrupt:
        return _fail("stopped by a second signal while starting; no file was written", code=130)
    except Exception as e:  # e.g. an unreachable --ray-address: one line, nothing written
        first = (str(e).strip().splitlines() or [""])[0][:200]
        hint = "; check --ray-address" if cfg.backend == "ray" else ""
        return _fail(f"cannot start the adaptation workers ({type(e).__name__}: {first}){hint}")
    ckpt_dir = run_dir / "checkpoints"
    try:
        if state is not None:
            trainer.load_state_dict(state, source=str(ckpt_dir / "latest.pt"))
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except CheckpointError as e:
        trainer.close()
        return _fail(str(e))
    except OSError as e:
        trainer.close()
        return _fail(f"cannot create the run folder {run_dir} ({e.strerror or e}); choose another --run-dir")
    if state is None:
        write_text_atomic(run_dir / "config.json", json.dumps(config_document(cfg, preset), indent=2) + "\n")
        print(f"metarl.train: {cfg.family_name} preset {json.dumps(preset)}")
        print(f"metarl.train: run folder {run_dir}")
    else:
        for p in remove_stale_temporaries(ckpt_dir):
            print(f"metarl.train: removed {p.name}, a checkpoint write interrupted by a crash")
        saved = json.loads((run_dir / "config.json").read_text())
        if saved.get("config") != cfg.to_dict() or saved.get("format_version") != CONFIG_VERSION:
            doc = {**saved, "format_version": CONFIG_VERSION, "config": cfg.to_dict()}
            write_text_atomic(run_dir / "config.json", json.dumps(doc, indent=2) + "\n")
        print(f"metarl.train: resuming {run_dir} at iteration {trainer.iteration} of {cfg.meta_iters}")
    session = _Session(cfg, run_dir, trainer, quiet, resumed=state is not None)
    if state is None:
        session.writer.add_text("hyperparameters", _hparams_markdown(cfg), 0)
    return session


def _saved_iteration(path: Path) -> int | str:
    try:
        return int(load_checkpoint(path)["iteration"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return "?"
