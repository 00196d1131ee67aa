"""``python -m metarl.train``: meta-train a Reptile meta-policy on a task family (the command line over metarl.runner).

Writes ``runs/<env>__<agent>__s<seed>__<time>/`` (or ``--run-dir``): ``config.json``, TensorBoard
events, ``checkpoints/latest.pt`` (after every iteration) and ``checkpoints/iter_NNNNNN.pt`` (every
``--checkpoint-every`` iterations). ``--resume RUN_DIR`` continues a run from its latest checkpoint.

Faults (docs/robustness.md): every file is written atomically, so a process killed at any moment
leaves a run that ``--resume`` continues, losing at most the iteration in progress. SIGINT/SIGTERM
finish the iteration, checkpoint and exit 130/143 (a second one stops at once, keeping the last
checkpoint). Divergence (NaN/inf) and simulator faults stop the run with exit status 1 and keep the
last good checkpoint. Bad input is a one-line error with exit status 2 and changes no file, and so are a
run folder that another process holds (metarl/lock.py), more --workers than CPUs or tasks, and a run whose
memory estimate exceeds the memory available (metarl/resources.py): all checked before anything starts.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import time
from pathlib import Path
from typing import Any

from .checkpoint import CheckpointError, load_checkpoint
from .cli import Parser, fail
from .config import ConfigError, TrainConfig, add_config_arguments, given_flags, migrate, resolve
from .lock import FolderInUse, FolderLock
from .resources import check_resources

_fail = functools.partial(fail, "metarl.train")

#: Flags that may change when resuming (they do not change what the run computes).
RESUMABLE_OVERRIDES = ("meta_iters", "eval_every", "checkpoint_every", "threads", "workers", "backend", "ray_address")


def build_parser() -> Parser:
    p = Parser(
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


def _new_run(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any], Path]:
    cfg, overrides = resolve(args)
    if args.run_dir is not None:
        run_dir = args.run_dir
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        run_dir = Path("runs") / f"{cfg.family_name}__{cfg.inner.agent}__s{cfg.seed}__{stamp}"
    _check_free(run_dir)
    return cfg, overrides, run_dir


def _check_free(run_dir: Path) -> None:
    """Refuse a ``--run-dir`` that is a file or holds a run."""
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"--run-dir {run_dir} is a file, not a folder; choose another --run-dir")
    if (run_dir / "config.json").exists() or (run_dir / "checkpoints").exists():
        raise ConfigError(
            f"{run_dir} already holds a run; resume it with --resume {run_dir} or choose another --run-dir"
        )


def _resume_run(args: argparse.Namespace) -> tuple[TrainConfig, Path, dict[str, Any]]:
    run_dir: Path = args.resume
    cfg_path, ckpt_path = run_dir / "config.json", run_dir / "checkpoints" / "latest.pt"
    if not cfg_path.is_file() or not ckpt_path.is_file():
        raise ConfigError(f"{run_dir} is not a metarl run (needs config.json and checkpoints/latest.pt)")
    try:
        doc = json.loads(cfg_path.read_text())
        cfg = TrainConfig.from_dict(migrate(doc["config"], doc.get("format_version", 1)))
        cfg.validate()
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, UnicodeDecodeError) as e:
        detail = str(e.args[0]) if isinstance(e, KeyError) else str(e)
        raise ConfigError(f"{cfg_path}: unreadable run configuration ({detail})") from None
    given = given_flags(args)
    changes = {f: v for f, v in given.items() if f in RESUMABLE_OVERRIDES}
    fixed = [f for f in given if f not in RESUMABLE_OVERRIDES]
    if fixed:
        allowed = ", ".join("--" + f.replace("_", "-") for f in RESUMABLE_OVERRIDES)
        raise ConfigError(
            f"--resume keeps the run's configuration; only {allowed} may change (got --{fixed[0].replace('_', '-')})"
        )
    cfg = dataclasses.replace(cfg, **changes)
    cfg.validate()
    state = load_checkpoint(ckpt_path, family=cfg.family_name)
    done = state.get("iteration")
    if isinstance(done, int) and cfg.meta_iters < done:
        raise ConfigError(
            f"--meta-iters {cfg.meta_iters} is below the {done} iterations {run_dir} has done; give a larger total"
        )
    return cfg, run_dir, state


def _prepare(args: argparse.Namespace) -> tuple[TrainConfig, Path, dict[str, Any] | None, dict[str, Any]]:
    """The run's configuration, folder, checkpoint (None: a new run) and preset; raises on bad input."""
    if args.resume is not None:
        if args.run_dir is not None:
            raise ConfigError("give either --resume RUN_DIR or --run-dir, not both")
        cfg, run_dir, state = _resume_run(args)
        return cfg, run_dir, state, {}
    cfg, overrides, run_dir = _new_run(args)
    return cfg, run_dir, None, overrides


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        # Everything that can refuse the request runs before anything is written or started: the flags, the
        # run folder, the checkpoint, then CPUs and memory (metarl/resources.py).
        cfg, run_dir, state, overrides = _prepare(args)
        if state is not None and state.get("iteration") == cfg.meta_iters:
            print(
                f"metarl.train: {run_dir} is complete ({cfg.meta_iters} iterations); nothing to do. "
                f"To train further: --resume {run_dir} --meta-iters N with N > {cfg.meta_iters}"
            )
            return 0
        check_resources(cfg)
        lock = FolderLock(run_dir, "--run-dir" if state is None else "").acquire()
    except (ConfigError, CheckpointError, FolderInUse) as e:
        return _fail(str(e))
    except KeyError as e:
        return _fail(str(e.args[0]))
    except OSError as e:  # the folder cannot be created or read
        return _fail(f"cannot use {e.filename or 'the run folder'} ({e.strerror or e}); choose another --run-dir")
    with lock:  # one writer per run folder until this process ends (the kernel releases it on a crash)
        try:  # again under the lock: another process may have started or extended the run meanwhile
            if state is None:
                _check_free(run_dir)
            else:
                cfg, run_dir, state = _resume_run(args)
        except (ConfigError, CheckpointError) as e:
            return _fail(str(e))
        if state is not None and state.get("iteration") == cfg.meta_iters:
            return _fail(f"{run_dir} was completed by another process meanwhile ({cfg.meta_iters} iterations)")
        from .runner import run

        return run(cfg, run_dir, state, overrides, quiet=args.quiet)


if __name__ == "__main__":
    sys.exit(main())
