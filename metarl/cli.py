"""What the command-line tools share."""

from __future__ import annotations

import argparse
import sys
from typing import NoReturn


def fail(prog: str, msg: str, code: int = 2) -> int:
    """Print ``prog: error: msg`` (one line) to stderr and return the exit status ``code``."""
    print(f"{prog}: error: {msg}", file=sys.stderr)
    return code


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors (unknown flag, invalid choice, bad type) are one line, exit status 2."""

    def error(self, message: str) -> NoReturn:
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(2)


def add_budget_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    """``--steps`` and ``--episodes-per-step``, defaulting to ``whose`` meta-policy's own evaluation."""
    parser.add_argument("--steps", type=int, default=None, help=f"adaptation steps (default: {whose} --eval-steps)")
    parser.add_argument(
        "--episodes-per-step",
        type=int,
        default=None,
        help=f"episodes sampled per step (default: {whose} --episodes-per-step)",
    )


def budget_error(args: argparse.Namespace) -> str | None:
    """The one-line problem with ``--steps`` / ``--episodes-per-step`` if any (None: fine or not given)."""
    if args.steps is not None and args.steps < 0:
        return f"--steps must be >= 0, got {args.steps}"
    if args.episodes_per_step is not None and args.episodes_per_step <= 0:
        return f"--episodes-per-step must be positive, got {args.episodes_per_step}"
    return None


#: The meta-test inner-loop settings that metarl.adapt and metarl.evaluate can replace (InnerLoop fields).
INNER_LOOP_OVERRIDES = (
    "agent",
    "inner_lr",
    "target_kl",
    "step_decay",
    "holdout",
    "ent_coef",
    "baseline",
    "gae_lambda",
    "cg_damping",
)


def add_inner_loop_arguments(parser: argparse.ArgumentParser, whose: str) -> None:
    """``--agent``, ``--inner-lr``, ``--target-kl``, ``--step-decay``, ``--holdout``, ``--ent-coef``, ``--baseline``,
    ``--gae-lambda``, ``--cg-damping``: replace ``whose`` meta-test inner loop's (default: keep it); help and choices
    from :class:`~metarl.agents.inner_loop.InnerLoop`."""
    import dataclasses

    from .agents.inner_loop import InnerLoop

    fields = {f.name: f for f in dataclasses.fields(InnerLoop)}
    for name in INNER_LOOP_OVERRIDES:
        f = fields[name]
        choices = f.metadata.get("choices")
        extra = {"choices": choices} if choices else {"type": float}
        parser.add_argument(
            "--" + name.replace("_", "-"),
            default=None,
            help=f"{f.metadata['help']} (default: {whose} meta-test inner loop's)",
            **extra,
        )


def inner_loop_overrides(args: argparse.Namespace) -> dict[str, object]:
    """The inner-loop settings given on the command line (field -> value), for ``MetaPolicy.with_inner_loop``."""
    return {k: getattr(args, k) for k in INNER_LOOP_OVERRIDES if getattr(args, k) is not None}
