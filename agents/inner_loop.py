"""The inner-loop configuration: which algorithm adapts θ to a task, and its hyper-parameters.

One frozen dataclass, the only home of these defaults. A training configuration holds two of them, one
for meta-training and one for meta-test adaptation; every agent reads the one it is handed with each
``adapt`` call, so one agent (or one pool of workers) serves both. Field names are the command-line
flags (``inner_lr`` is ``--inner-lr``); :data:`USED_BY` says which algorithm reads which field, so a
flag the chosen algorithm ignores can be refused instead of silently dropped.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

#: Native agents (agents/native.py), then stable-baselines3's (agents/sb3.py).
NATIVE_AGENTS = ("ppo", "vpg", "trpo")
SB3_AGENTS = ("sb3-ppo", "sb3-a2c", "sb3-trpo")
AGENTS = NATIVE_AGENTS + SB3_AGENTS
BASELINES = ("value", "linear")


class InnerLoopError(ValueError):
    """An inner-loop setting that cannot work; the message names the flag and the fix."""


def option(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002
    """A dataclass field whose metadata holds its command-line help (and e.g. ``choices``)."""
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class InnerLoop:
    """How θ is adapted to one task: the algorithm of the inner updates and its hyper-parameters."""

    agent: str = option(
        "ppo",
        "inner-loop agent: native 'ppo' (clipped objective, GAE), 'vpg' (one plain PG step) or 'trpo' (one "
        "natural-gradient step of KL size --target-kl); or "
        "stable-baselines3's 'sb3-ppo', 'sb3-a2c', sb3-contrib's 'sb3-trpo' (docs/sb3.md)",
        choices=AGENTS,
    )
    inner_lr: float = option(3e-3, "inner-loop learning rate (Adam for ppo, SGD for vpg; sb3-trpo: its critic's)")
    target_kl: float = option(
        0.01, "trpo, sb3-trpo: trust region of one inner step, the mean KL between old and new policies"
    )
    ppo_epochs: int = option(5, "ppo: passes over each batch")
    minibatches: int = option(4, "ppo: minibatches per pass (sb3-trpo: of its critic)")
    clip_range: float = option(0.2, "ppo: clipping range of the probability ratio")
    gamma: float = option(0.99, "discount factor")
    gae_lambda: float = option(0.95, "GAE lambda")
    max_grad_norm: float = option(0.5, "ppo, vpg, sb3-ppo, sb3-a2c: per-task gradient norm clip (0 disables)")
    vf_coef: float = option(0.5, "ppo: value loss coefficient")
    ent_coef: float = option(0.0, "entropy bonus coefficient")
    value_lr: float = option(1e-2, "vpg, trpo: Adam learning rate of the value baseline fit")
    value_epochs: int = option(5, "vpg, trpo: Adam steps of the value baseline fit per batch")
    baseline: str = option(
        "value",
        "vpg, trpo: the advantages' baseline: 'value' (the value net, fitted after each step) or 'linear' "
        "(rllab's linear feature baseline fitted on each batch itself, as MAML uses)",
        choices=BASELINES,
    )
    cg_iters: int = option(10, "trpo: conjugate-gradient iterations of the natural-gradient step")
    cg_damping: float = option(
        0.1,
        "trpo: damping added to the Fisher matrix's diagonal; a large one turns the step toward the plain "
        "gradient's direction, still sized to --target-kl (the HalfCheetah presets adapt with 10)",
    )
    line_search_steps: int = option(10, "trpo: backtracking halvings the line search tries")
    step_decay: float = option(
        1.0,
        "vpg, ppo, trpo: each inner step's size is the previous one's times this (vpg, ppo: --inner-lr; trpo: "
        "--target-kl); 1 keeps it constant (MAML's meta-test used 0.1 then 0.05: 0.5)",
    )
    holdout: float = option(
        0.0,
        "trpo: fraction of each step's episodes held out to check the step: it is computed on the others, and "
        "the line search keeps the largest fraction that also raises the surrogate on the held-out episodes "
        "(none: no step); costs no extra episodes (0: off)",
    )

    @property
    def is_sb3(self) -> bool:
        """Whether a stable-baselines3 agent runs this inner loop (its parameters have SB3's layout)."""
        return self.agent in SB3_AGENTS

    def validate(self, prefix: str = "--") -> None:
        """Raise :class:`InnerLoopError` on values that cannot work (``prefix`` starts the flag names)."""
        if self.agent not in AGENTS:
            raise InnerLoopError(f"{prefix}agent must be one of {', '.join(AGENTS)}, got {self.agent!r}")
        if self.baseline not in BASELINES:
            raise InnerLoopError(f"{prefix}baseline must be one of {', '.join(BASELINES)}, got {self.baseline!r}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise InnerLoopError(f"{prefix}{_flag(f.name)} must be finite, got {v}")
        for name in ("inner_lr", "target_kl", "ppo_epochs", "minibatches", "cg_iters", "line_search_steps"):
            if getattr(self, name) <= 0:
                raise InnerLoopError(f"{prefix}{_flag(name)} must be positive, got {getattr(self, name)}")
        for name in ("value_epochs", "cg_damping"):
            if getattr(self, name) < 0:
                raise InnerLoopError(f"{prefix}{_flag(name)} must be >= 0, got {getattr(self, name)}")
        if self.step_decay <= 0:
            raise InnerLoopError(f"{prefix}step-decay must be positive (1: constant steps), got {self.step_decay}")
        if not 0 <= self.gae_lambda <= 1:
            raise InnerLoopError(f"{prefix}gae-lambda must be in [0, 1], got {self.gae_lambda}")
        if self.ent_coef < 0:
            raise InnerLoopError(f"{prefix}ent-coef must be >= 0, got {self.ent_coef}")
        if not 0 <= self.holdout < 1:
            raise InnerLoopError(f"{prefix}holdout must be in [0, 1) (0: off), got {self.holdout}")

    def uses(self, name: str) -> bool:
        """Whether this inner loop's algorithm reads the field ``name``."""
        return name == "agent" or name in USED_BY[self.agent]

    def describe(self) -> str:
        """The step in a few words, e.g. ``trpo (KL 2, x0.5 per step, linear baseline, damping 10)``; the settings
        that shape the step, each named only where the agent reads it (damping, λ, entropy and holdout where they
        differ from the defaults)."""
        if self.is_sb3:
            return self.agent
        lr = f"Adam {self.inner_lr:g}" if self.agent == "ppo" else f"lr {self.inner_lr:g}"
        words = [f"KL {self.target_kl:g}" if self.agent == "trpo" else lr]
        if self.step_decay != 1.0:
            words.append(f"x{self.step_decay:g} per step")
        if self.uses("baseline"):
            words.append(f"{self.baseline} baseline")
        if self.agent == "trpo" and self.cg_damping != InnerLoop.cg_damping:
            words.append(f"damping {self.cg_damping:g}")
        if self.holdout > 0 and self.uses("holdout"):
            words.append(f"holdout {self.holdout:g}")
        if self.gae_lambda != InnerLoop.gae_lambda:
            words.append(f"GAE lambda {self.gae_lambda:g}")
        if self.ent_coef > 0 and self.uses("ent_coef"):
            words.append(f"entropy {self.ent_coef:g}")
        return f"{self.agent} ({', '.join(words)})"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> InnerLoop:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise InnerLoopError(f"unknown inner-loop keys {sorted(unknown)}")
        return cls(**d)


_COMMON = {"gamma", "gae_lambda"}
_PPO = _COMMON | {"inner_lr", "ppo_epochs", "minibatches", "clip_range", "vf_coef", "ent_coef", "max_grad_norm"}
#: The fields each algorithm reads (``agent`` itself aside).
USED_BY: dict[str, frozenset[str]] = {
    "ppo": frozenset(_PPO | {"step_decay"}),
    "vpg": frozenset(
        _COMMON | {"inner_lr", "ent_coef", "max_grad_norm", "value_lr", "value_epochs", "baseline", "step_decay"}
    ),
    "trpo": frozenset(
        _COMMON
        | {
            "ent_coef",
            "target_kl",
            "value_lr",
            "value_epochs",
            "baseline",
            "cg_iters",
            "cg_damping",
            "line_search_steps",
            "step_decay",
            "holdout",
        }
    ),
    "sb3-ppo": frozenset(_PPO),
    "sb3-a2c": frozenset(_COMMON | {"inner_lr", "vf_coef", "ent_coef", "max_grad_norm"}),
    "sb3-trpo": frozenset(_COMMON | {"inner_lr", "minibatches", "target_kl"}),
}
FIELDS = tuple(f.name for f in dataclasses.fields(InnerLoop))


def _flag(name: str) -> str:
    return name.replace("_", "-")


def check_used(given: dict[str, Any], loops: tuple[InnerLoop, ...], prefix: str = "--") -> None:
    """Refuse inner-loop settings in ``given`` (flag name -> value) that none of ``loops`` reads.

    Raises:
        InnerLoopError: one line naming the flag, the algorithms and which ones would read it.
    """
    for name in given:
        if name in FIELDS and not any(loop.uses(name) for loop in loops):
            readers = ", ".join(a for a in AGENTS if name in USED_BY[a])
            agents = " and ".join(sorted({loop.agent for loop in loops}))
            raise InnerLoopError(
                f"{prefix}{_flag(name)} is not used by --agent {agents}; it applies to {readers} (drop the flag)"
            )
