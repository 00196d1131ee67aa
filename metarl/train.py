"""``python -m metarl.train``: meta-train a Reptile meta-policy on a task family.

Writes ``runs/<env>__<agent>__s<seed>__<time>/`` (or ``--run-dir``): ``config.json``, TensorBoard
events, ``checkpoints/latest.pt`` (after every iteration) and ``checkpoints/iter_NNNNNN.pt`` (every
``--checkpoint-every`` iterations). ``--resume RUN_DIR`` continues a run from its latest checkpoint.

Faults (docs/robustness.md): every file is written atomically, so a process killed at any moment
leaves a run that ``--resume`` continues, losing at most the iteration in progress. SIGINT/SIGTERM
finish the iteration, checkpoint and exit 130/143 (a second one stops at once, keeping the last
checkpoint). Divergence (NaN/inf) and simulator faults stop the run with exit status 1 and keep the
last good checkpoint. Bad input is a one-line error with exit status 2 and changes no file.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .checkpoint import (
    CheckpointError,
    load_checkpoint,
    remove_stale_temporaries,
    save_checkpoint,
    write_text_atomic,
)
from .config import ConfigError, TrainConfig, add_config_arguments, resolve

#: Flags that may change when resuming (they do not change what the run computes).
RESUMABLE_OVERRIDES = ("meta_iters", "eval_every", "checkpoint_every", "threads", "workers", "backend", "ray_address")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m metarl.train",
        description="Meta-train a Reptile meta-policy over a task family (preset per family, printed at start). "
        "Flags not given take the family's preset, then the defaults shown.",
    )
    add_config_arguments(p)
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help="output folder (default: runs/<env>__<agent>__s<seed>__<time>); must not hold another run",
    )
    p.add_argument(
        "--resume",
        type=Path,
        default=None,
        metavar="RUN_DIR",
        help="continue the run in RUN_DIR from checkpoints/latest.pt; --meta-iters sets a new total",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


class Progress:
    """A one-line progress bar with ETA and the latest post-adaptation return."""

    def __init__(self, total: int, start: int, enabled: bool) -> None:
        self.total, self.start, self.enabled = total, start, enabled
        self.t0 = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_print = 0.0

    def update(self, it: int, metrics: dict[str, float]) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        done = it - self.start
        rate = (now - self.t0) / max(done, 1)
        eta = rate * (self.total - it)
        frac = it / max(self.total, 1)
        bar = "#" * int(frac * 24) + "." * (24 - int(frac * 24))
        line = (
            f"[{bar}] {it}/{self.total} ETA {_hms(eta)} | return pre {metrics['adapt/return_pre']:.1f} "
            f"post {metrics['adapt/return_post']:.1f} | {metrics['time/env_steps_per_s'] / 1e3:.1f}k steps/s"
        )
        if self.tty:
            sys.stderr.write("\r" + line + " " * 4)
            if it == self.total:
                sys.stderr.write("\n")
            sys.stderr.flush()
        elif now - self.last_print > 10 or it == self.total:
            print(line, file=sys.stderr, flush=True)
            self.last_print = now


def _hms(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _hparams_markdown(cfg: TrainConfig) -> str:
    rows = "\n".join(f"|{k}|{v}|" for k, v in cfg.to_dict().items())
    return f"|param|value|\n|-|-|\n{rows}"


def _fail(msg: str, code: int = 2) -> int:
    print(f"metarl.train: error: {msg}", file=sys.stderr)
    return code


def _new_run(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any], Path]:
    cfg, overrides = resolve(args)
    if args.run_dir is not None:
        run_dir = args.run_dir
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{cfg.family_name}__{cfg.agent}__s{cfg.seed}__{stamp}"
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    if (run_dir / "config.json").exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir"
        )
    return cfg, overrides, run_dir


def _resume_run(args: argparse.Namespace) -> tuple[TrainConfig, Path, dict[str, Any]]:
    run_dir: Path = args.resume
    cfg_path, ckpt_path = run_dir / "config.json", run_dir / "checkpoints" / "latest.pt"
    if not cfg_path.is_file() or not ckpt_path.is_file():
        raise ConfigError(f"{run_dir} is not a metarl run (needs config.json and checkpoints/latest.pt)")
    try:
        saved = json.loads(cfg_path.read_text())["config"]
        cfg = TrainConfig.from_dict(saved)
        cfg.validate()
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        detail = str(e.args[0]) if isinstance(e, KeyError) else str(e)
        raise ConfigError(f"{cfg_path}: unreadable run configuration ({detail})") from None
    changes = {}
    for f in RESUMABLE_OVERRIDES:
        value = getattr(args, f)
        if value is not None:
            changes[f] = value
    fixed = [f for f in vars(TrainConfig()) if getattr(args, f, None) is not None and f not in RESUMABLE_OVERRIDES]
    if fixed:
        allowed = ", ".join("--" + f.replace("_", "-") for f in RESUMABLE_OVERRIDES)
        raise ConfigError(
            f"--resume keeps the run's configuration; only {allowed} may change (got --{fixed[0].replace('_', '-')})"
        )
    cfg = TrainConfig(**{**cfg.to_dict(), "hidden": tuple(cfg.hidden), **changes})
    cfg.validate()
    state = load_checkpoint(ckpt_path, family=cfg.family_name)
    done = state.get("iteration")
    if isinstance(done, int) and cfg.meta_iters < done:
        raise ConfigError(
            f"--meta-iters {cfg.meta_iters} is below the {done} iterations {run_dir} has done; give a larger total"
        )
    return cfg, run_dir, state


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.resume is not None:
            if args.run_dir is not None:
                raise ConfigError("give either --resume RUN_DIR or --run-dir, not both")
            cfg, run_dir, state = _resume_run(args)
            overrides: dict[str, Any] = {}
        else:
            cfg, overrides, run_dir = _new_run(args)
            state = None
    except (ConfigError, CheckpointError) as e:
        return _fail(str(e))
    except KeyError as e:
        return _fail(str(e.args[0]))
    if state is not None and state.get("iteration") == cfg.meta_iters:
        print(
            f"metarl.train: {run_dir} is complete ({cfg.meta_iters} iterations); nothing to do. "
            f"To train further: --resume {run_dir} --meta-iters N with N > {cfg.meta_iters}"
        )
        return 0
    return run(cfg, run_dir, state, overrides, quiet=args.quiet)


def run(
    cfg: TrainConfig,
    run_dir: Path,
    state: dict[str, Any] | None = None,
    overrides: dict[str, Any] | None = None,
    quiet: bool = False,
) -> int:
    """Meta-train ``cfg`` into ``run_dir`` (continuing ``state`` if given). Returns an exit status."""
    import torch

    from .agents.parallel import WorkerError
    from .envs import SimulationError
    from .trainer import DivergenceError

    torch.set_num_threads(1)  # the simulator threads own the cores; the small MLPs gain nothing
    ckpt_dir = run_dir / "checkpoints"
    stop: dict[str, Any] = {"signal": None, "closing": False}

    def _on_signal(signum: int, frame: Any) -> None:  # finish the iteration, then stop; a second signal: now
        if stop["signal"] is not None and not stop["closing"]:
            raise KeyboardInterrupt
        stop["signal"] = signum

    old_handlers = {s: signal.signal(s, _on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _run(
            cfg, run_dir, ckpt_dir, state, overrides, quiet, stop, (DivergenceError, WorkerError, SimulationError)
        )
    finally:
        for s, h in old_handlers.items():
            signal.signal(s, h)


def _run(
    cfg: TrainConfig,
    run_dir: Path,
    ckpt_dir: Path,
    state: dict[str, Any] | None,
    overrides: dict[str, Any] | None,
    quiet: bool,
    stop: dict[str, Any],
    faults: tuple[type[BaseException], ...],
) -> int:
    from torch.utils.tensorboard import SummaryWriter

    from .trainer import MetaTrainer

    try:
        trainer = MetaTrainer(cfg)
    except KeyboardInterrupt:
        return _fail("stopped by a second signal while starting; no file was written", code=130)
    except Exception as e:  # e.g. an unreachable --ray-address: one line, nothing written
        first = (str(e).strip().splitlines() or [""])[0][:200]
        hint = "; check --ray-address" if cfg.backend == "ray" else ""
        return _fail(f"cannot start the adaptation workers ({type(e).__name__}: {first}){hint}")
    try:
        if state is not None:
            trainer.load_state_dict(state, source=str(ckpt_dir / "latest.pt"))
    except CheckpointError as e:
        trainer.close()
        return _fail(str(e))
    try:
        ckpt_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        trainer.close()
        return _fail(f"cannot create the run folder {run_dir} ({e.strerror or e}); choose another --run-dir")
    if state is not None:
        for p in remove_stale_temporaries(ckpt_dir):
            print(f"metarl.train: removed {p.name}, a checkpoint write interrupted by a crash")
    meta = {
        "config": cfg.to_dict(),
        "family": cfg.family_name,
        "metarl_version": __version__,
        "preset": overrides or {},
        "command": sys.argv,
    }
    if state is None:
        write_text_atomic(run_dir / "config.json", json.dumps(meta, indent=2) + "\n")
        print(f"metarl.train: {cfg.family_name} preset {json.dumps(overrides or {})}")
        print(f"metarl.train: run folder {run_dir}")
    else:
        saved = json.loads((run_dir / "config.json").read_text())
        if saved.get("config") != cfg.to_dict():
            write_text_atomic(run_dir / "config.json", json.dumps({**saved, "config": cfg.to_dict()}, indent=2) + "\n")
        print(f"metarl.train: resuming {run_dir} at iteration {trainer.iteration} of {cfg.meta_iters}")
    # purge_step drops events a crashed process logged after its last checkpoint
    writer = SummaryWriter(str(run_dir), purge_step=trainer.iteration + 1 if state is not None else None)
    if state is None:
        writer.add_text("hyperparameters", _hparams_markdown(cfg), 0)

    def checkpoint(numbered: bool) -> None:
        st = trainer.state_dict()
        save_checkpoint(ckpt_dir / "latest.pt", st)
        if numbered:
            save_checkpoint(ckpt_dir / f"iter_{trainer.iteration:06d}.pt", st)

    def evaluate() -> None:
        ev = trainer.evaluate()
        for k, r in enumerate(ev.mean):
            writer.add_scalar(f"eval/return_step{k}", float(r), trainer.iteration)
        writer.add_scalar("eval/env_steps_per_s", ev.env_steps / ev.seconds, trainer.iteration)
        rates = [] if ev.success is None else ev.success.mean(1)
        for k, rate in enumerate(rates):
            writer.add_scalar(f"eval/success_step{k}", float(rate), trainer.iteration)
        if not quiet:
            curve = " -> ".join(f"{r:.1f}" for r in ev.mean)
            if len(rates):
                curve += "; success rate " + " -> ".join(f"{r:.2f}" for r in rates)
            print(
                f"\nmetarl.train: eval at iteration {trainer.iteration} on {len(ev.tasks)} held-out tasks: {curve}",
                file=sys.stderr,
            )

    progress = Progress(cfg.meta_iters, trainer.iteration, enabled=not quiet)
    status = 0
    kept = ckpt_dir / "latest.pt"
    try:
        if state is None:
            checkpoint(numbered=False)
            if cfg.eval_every:
                evaluate()
        while trainer.iteration < cfg.meta_iters:
            metrics = trainer.train_iteration()
            it = trainer.iteration
            for name, value in metrics.items():
                writer.add_scalar(name, value, it)
            last = it == cfg.meta_iters
            checkpoint(numbered=(cfg.checkpoint_every and it % cfg.checkpoint_every == 0) or last)
            progress.update(it, metrics)
            if last or (cfg.eval_every and it % cfg.eval_every == 0):
                evaluate()
            writer.flush()
            if stop["signal"] is not None:
                name = signal.Signals(stop["signal"]).name
                print(
                    f"\nmetarl.train: stopped by {name} after iteration {it}; checkpoint saved. Resume with:\n"
                    f"  python -m metarl.train --resume {run_dir}",
                    file=sys.stderr,
                )
                status = 130 if stop["signal"] == signal.SIGINT else 143
                break
    except faults as e:
        diverged = type(e).__name__ == "DivergenceError"
        what = "diverged" if diverged else f"fault in meta-iteration {trainer.iteration + 1}"
        msg = str(e).replace("\n", " ")
        detail = getattr(e, "worker_traceback", "")
        if detail:  # keep the worker's traceback for a bug report, out of the one-line message
            try:
                write_text_atomic(run_dir / "worker_error.txt", detail)
                msg += f" (the worker's traceback is in {run_dir / 'worker_error.txt'})"
            except OSError:
                pass
        status = _fail(
            f"{what}: {msg}; stopped, the last good checkpoint (iteration {_saved_iteration(kept)}) is kept in {kept}",
            code=1,
        )
    except OSError as e:  # disk full, folder removed or read-only: the atomic writes kept the last checkpoint
        status = _fail(
            f"cannot write {e.filename or run_dir} ({e.strerror or e}); stopped, the checkpoint of iteration "
            f"{_saved_iteration(kept)} is kept. Free space or fix permissions, then: python -m metarl.train "
            f"--resume {run_dir}",
            code=1,
        )
    except KeyboardInterrupt:
        name = signal.Signals(stop["signal"] or signal.SIGINT).name
        status = _fail(
            f"stopped at once by a second {name}; the checkpoint of iteration {_saved_iteration(kept)} is kept. "
            f"Resume with: python -m metarl.train --resume {run_dir}",
            code=130 if name == "SIGINT" else 143,
        )
    finally:
        stop["closing"] = True  # a signal now cannot interrupt the flush and the workers' shutdown
        writer.close()
        trainer.close()
    if status == 0:
        print(f"metarl.train: done, {trainer.iteration} iterations, {trainer.env_steps} env steps; {run_dir}")
    return status


def _saved_iteration(path: Path) -> int | str:
    try:
        return int(load_checkpoint(path)["iteration"])
    except (CheckpointError, KeyError, TypeError, ValueError):
        return "?"


if __name__ == "__main__":
    sys.exit(main())
