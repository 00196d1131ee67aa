"""``python -m metarl.train``: meta-train a meta-policy on a task family (a thin layer over metarl.algorithm's API).

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
import functools
import sys
from collections.abc import Callable
from pathlib import Path

from .algorithm import AUTO, MetaAlgorithm
from .checkpoint import CheckpointError, load_checkpoint, write_text_atomic
from .cli import Parser, fail
from .config import ConfigError, TrainConfig, add_config_arguments, given_flags
from .lock import FolderInUse
from .runner import FAULTS, StartError, signals_finish_the_iteration
from .trainer import DivergenceError

_fail = functools.partial(fail, "metarl.train")


def build_parser() -> Parser:
    p = Parser(
        prog="python -m metarl.train",
        description="Meta-train a meta-policy (Reptile, MAML or FO-MAML) over a task family (preset per family, "
        "printed at start). Flags not given take the family's preset, then the defaults shown. The same run from "
        "Python: metarl.Reptile(env, **flags).learn() (docs/usage.md).",
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


def _prepare(args: argparse.Namespace) -> MetaAlgorithm:
    """The run the flags describe (a new one, or ``--resume``); raises on bad input, writes nothing."""
    given = given_flags(args)
    if args.resume is None:
        env = given.pop("env", TrainConfig.env)
        return MetaAlgorithm(env, run_dir=AUTO if args.run_dir is None else args.run_dir, **given)
    if args.run_dir is not None:
        raise ConfigError("give either --resume RUN_DIR or --run-dir, not both")
    if not args.resume.is_dir():
        raise ConfigError(f"{args.resume} is not a metarl run (needs config.json and checkpoints/latest.pt)")
    return MetaAlgorithm.load(args.resume, **given)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        algo = _prepare(args)
    except (ConfigError, CheckpointError) as e:
        return _fail(str(e))
    except KeyError as e:
        return _fail(str(e.args[0]))
    if args.resume is not None and algo.iteration == algo.config.meta_iters:
        n = algo.config.meta_iters
        print(
            f"metarl.train: {args.resume} is complete ({n} iterations); nothing to do. "
            f"To train further: --resume {args.resume} --meta-iters N with N > {n}"
        )
        return 0
    with signals_finish_the_iteration() as stop:
        try:
            # Everything that can refuse the request runs before anything is written or started: the flags and
            # the run folder (above), then CPUs and memory (metarl/resources.py), the folder's lock, the workers.
            try:
                algo._open()
            except (ConfigError, CheckpointError, FolderInUse, StartError) as e:
                return _fail(str(e))
            except KeyboardInterrupt:
                return _fail("stopped by a second signal while starting; no file was written", code=130)
            except OSError as e:  # the folder cannot be created or read
                what = e.filename or "the run folder"
                return _fail(f"cannot use {what} ({e.strerror or e}); choose another --run-dir")
            return _status(algo, lambda: algo._run(stop, None, quiet=args.quiet))
        finally:
            stop["closing"] = True  # a signal now cannot interrupt the flush and the workers' shutdown
            algo.close()


def _status(algo: MetaAlgorithm, learn: Callable[[], int]) -> int:
    """``learn()``'s exit status, with faults, write errors and a second signal turned into one line and a status."""
    run_dir = algo.run_dir
    kept = run_dir / "checkpoints" / "latest.pt"

    def saved() -> int | str:
        try:
            return int(load_checkpoint(kept)["iteration"])
        except (CheckpointError, KeyError, TypeError, ValueError):
            return "?"

    try:
        return learn()
    except FAULTS as e:
        what = "diverged" if isinstance(e, DivergenceError) else f"fault in meta-iteration {algo.iteration + 1}"
        msg = str(e).replace("\n", " ")
        detail = getattr(e, "worker_traceback", "")
        if detail:  # keep the worker's traceback for a bug report, out of the one-line message
            try:
                write_text_atomic(run_dir / "worker_error.txt", detail)
                msg += f" (the worker's traceback is in {run_dir / 'worker_error.txt'})"
            except OSError:
                pass
        return _fail(f"{what}: {msg}; stopped, the last good checkpoint (iteration {saved()}) is kept in {kept}", 1)
    except OSError as e:  # disk full, folder removed or read-only: the atomic writes kept the last checkpoint
        return _fail(
            f"cannot write {e.filename or run_dir} ({e.strerror or e}); stopped, the checkpoint of iteration "
            f"{saved()} is kept. Free space or fix permissions, then: python -m metarl.train --resume {run_dir}",
            code=1,
        )
    except KeyboardInterrupt as e:
        name = str(e) or "SIGINT"
        return _fail(
            f"stopped at once by a second {name}; the checkpoint of iteration {saved()} is kept. "
            f"Resume with: python -m metarl.train --resume {run_dir}",
            code=130 if name == "SIGINT" else 143,
        )


if __name__ == "__main__":
    sys.exit(main())
