"""Meta-training configuration: one dataclass, per-family presets, and the argparse built from both.

The defaults live once, in :class:`TrainConfig`; a family's preset overrides some of them; flags given
on the command line override the preset. ``--help`` is generated from the field docs below.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import math
from typing import Any

from .envs import FAMILIES, RandomizeError, TaskFamily, get_family

#: Inner-loop agents: the native ones, then stable-baselines3's (agents/sb3.py).
AGENTS = ("ppo", "vpg", "trpo", "sb3-ppo", "sb3-a2c", "sb3-trpo")
#: Where the adapting workers run: spawned processes (agents/parallel.py) or Ray actors (agents/ray_agent.py).
BACKENDS = ("processes", "ray")


class ConfigError(ValueError):
    """A configuration value that cannot work (the message names the flag and the fix)."""


def _f(default: Any, help: str, **kw: Any) -> Any:  # noqa: A002
    return dataclasses.field(default=default, metadata={"help": help, **kw})


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a meta-training run (saved as ``config.json`` in the run folder)."""

    env: str = _f("HalfCheetahVel", "task family name or registered id (metarl/<Name>-v0)")
    randomize: str = _f(
        "",
        "with a Gymnasium MuJoCo --env (e.g. Hopper-v5): model fields and multiplicative ranges to randomise per "
        "task, e.g. body_mass=0.5:2.0,geom_friction=0.5:1.5 (docs/families.md)",
    )
    agent: str = _f(
        "ppo",
        "inner-loop agent: native 'ppo' (clipped objective, GAE), 'vpg' (one plain PG step) or 'trpo' (one "
        "natural-gradient step of KL size --target-kl); or "
        "stable-baselines3's 'sb3-ppo', 'sb3-a2c', sb3-contrib's 'sb3-trpo' (docs/sb3.md)",
        choices=AGENTS,
    )
    meta_iters: int = _f(300, "meta-iterations (Reptile updates) in the run")
    meta_batch: int = _f(10, "tasks adapted per meta-iteration")
    inner_steps: int = _f(3, "inner adaptation updates K per task")
    episodes_per_step: int = _f(20, "episodes collected per inner update (and per evaluation step)")
    meta_step: float = _f(1.0, "Reptile outer step size ε at the first iteration")
    meta_step_final: float = _f(0.0, "ε at the last iteration (linear annealing)")
    inner_lr: float = _f(3e-3, "inner-loop learning rate (Adam for ppo, SGD for vpg; unused by trpo's policy step)")
    target_kl: float = _f(0.01, "trpo: trust region of one inner step, the mean KL between old and new policy")
    adapt_agent: str = _f(
        "",
        "inner-loop agent at meta-test time: the periodic evaluation, metarl.adapt, metarl.evaluate and "
        "MetaPolicy.adapt (empty: --agent). E.g. meta-train with ppo, adapt with trpo",
        choices=("", *AGENTS),
    )
    adapt_target_kl: float = _f(0.0, "trpo's --target-kl at meta-test time (0: --target-kl)")
    ppo_epochs: int = _f(5, "ppo: passes over each batch")
    minibatches: int = _f(4, "ppo: minibatches per pass")
    clip_range: float = _f(0.2, "ppo: clipping range of the probability ratio")
    gamma: float = _f(0.99, "discount factor")
    gae_lambda: float = _f(0.95, "GAE lambda")
    max_grad_norm: float = _f(0.5, "per-task gradient norm clip (0 disables)")
    vf_coef: float = _f(0.5, "ppo: value loss coefficient")
    ent_coef: float = _f(0.0, "entropy bonus coefficient")
    value_lr: float = _f(1e-2, "vpg, trpo: Adam learning rate of the value baseline fit")
    value_epochs: int = _f(5, "vpg, trpo: Adam steps of the value baseline fit per batch")
    hidden: tuple[int, ...] = _f((64, 64), "hidden layer widths, comma separated (e.g. 64,64)")
    log_std_init: float = _f(-0.5, "initial log standard deviation of the Gaussian policy")
    seed: int = _f(0, "meta-training seed (task draws, initial states, action noise, initialisation)")
    eval_every: int = _f(25, "evaluate on held-out meta-test tasks every N iterations (0: only at the end)")
    eval_tasks: int = _f(40, "held-out tasks used by the periodic evaluation (at most the family's 40)")
    eval_steps: int = _f(3, "adaptation steps in the evaluation (returns after k = 0..N steps)")
    eval_seed: int = _f(1000, "evaluation seed, separate from the training seed")
    checkpoint_every: int = _f(
        50, "keep a numbered checkpoint every N iterations (latest.pt is rewritten after every iteration)"
    )
    workers: int = _f(
        0,
        "worker processes adapting the meta-batch's tasks in parallel (0: one per CPU core; "
        "1: in this process); results are identical for any number",
    )
    threads: int = _f(0, "threads stepping the simulator in each worker (0: all cores with --workers 1, else 1)")
    backend: str = _f(
        "processes",
        "where the workers run: 'processes' on this machine, or 'ray': Ray actors, locally or on a cluster "
        '(pip install "metarl[ray]", docs/ray.md); results are identical',
        choices=BACKENDS,
    )
    ray_address: str = _f(
        "", "with --backend ray: empty starts Ray on this machine; 'auto' or HOST:PORT joins a running cluster"
    )

    def validate(self) -> None:
        """Raise :class:`ConfigError` on values that cannot work."""
        try:
            get_family(self.env, self.randomize)  # KeyError with the known families
        except RandomizeError as e:
            raise ConfigError(str(e)) from None
        positive = ["meta_iters", "meta_batch", "episodes_per_step", "ppo_epochs", "minibatches", "eval_tasks"]
        for name in positive:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in [
            "inner_steps",
            "eval_every",
            "eval_steps",
            "checkpoint_every",
            "threads",
            "value_epochs",
            "workers",
        ]:
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be finite, got {v}")
        if self.inner_steps == 0:
            raise ConfigError("--inner-steps must be positive: with 0 adaptation steps Reptile cannot move θ")
        for name in ("seed", "eval_seed"):  # numpy seeds are non-negative
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        held_out = self.family.num_meta_test_tasks
        if self.eval_tasks > held_out:
            raise ConfigError(f"--eval-tasks must be at most {held_out} (the held-out tasks), got {self.eval_tasks}")
        if self.inner_lr <= 0:
            raise ConfigError(f"--inner-lr must be positive, got {self.inner_lr}")
        if self.target_kl <= 0:
            raise ConfigError(f"--target-kl must be positive, got {self.target_kl}")
        if self.adapt_target_kl < 0:
            raise ConfigError(f"--adapt-target-kl must be >= 0 (0: --target-kl), got {self.adapt_target_kl}")
        if self.adapt_agent not in ("", *AGENTS):
            raise ConfigError(f"--adapt-agent must be empty or one of {', '.join(AGENTS)}, got {self.adapt_agent!r}")
        if self.adapt_agent and self.adapt_agent.startswith("sb3-") != self.agent.startswith("sb3-"):
            raise ConfigError(
                f"--adapt-agent {self.adapt_agent} cannot adapt parameters trained by --agent {self.agent}: "
                "native (ppo, vpg, trpo) and stable-baselines3 (sb3-*) agents have different parameter layouts"
            )
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"--hidden needs positive widths such as 64,64, got {self.hidden}")
        if self.agent not in AGENTS:
            raise ConfigError(f"--agent must be one of {', '.join(AGENTS)}, got {self.agent!r}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:  # checked without importing ray
            raise ConfigError('--backend ray needs Ray: pip install "metarl[ray]"')

    def for_adaptation(self) -> TrainConfig:
        """This config with the meta-test inner loop (``adapt_agent``, ``adapt_target_kl``) as the inner loop."""
        return dataclasses.replace(
            self,
            agent=self.adapt_agent or self.agent,
            target_kl=self.adapt_target_kl or self.target_kl,
            adapt_agent="",
            adapt_target_kl=0.0,
        )

    @property
    def family(self) -> type[TaskFamily]:
        """The task family class (``--env``, randomised by ``--randomize`` if given)."""
        return get_family(self.env, self.randomize)

    def inner_loop_kwargs(self) -> dict[str, Any]:
        """The hyper-parameters every inner-loop agent shares, under the agents' own names."""
        return dict(
            lr=self.inner_lr,
            gamma=self.gamma,
            gae_lambda=self.gae_lambda,
            epochs=self.ppo_epochs,
            minibatches=self.minibatches,
            clip_range=self.clip_range,
            vf_coef=self.vf_coef,
            ent_coef=self.ent_coef,
            max_grad_norm=self.max_grad_norm,
            hidden=tuple(self.hidden),
            log_std_init=self.log_std_init,
        )

    @property
    def family_name(self) -> str:
        return self.family.family_name

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ConfigError(f"unknown configuration keys {sorted(unknown)}")
        d = dict(d)
        if "hidden" in d:
            d["hidden"] = tuple(int(h) for h in d["hidden"])
        return cls(**d)


#: Per-family overrides of the defaults, printed at the start of a run.
PRESETS: dict[str, dict[str, Any]] = {
    # Meta-batch 10, K=3 PPO updates of 20 episodes (the MAML/ProMP protocol), Adam 3e-3, 300 iterations (48M env
    # steps, ~28 min on 2 cores); adaptation at meta-test by TRPO steps of mean KL 1.0, which move the meta-policy
    # 2-3x further in 3 steps than PPO's (README, "Adaptability: what moved the plateau"; scripts/ablation.sh).
    **{
        name: dict(
            meta_iters=300,
            meta_batch=10,
            inner_steps=3,
            episodes_per_step=20,
            inner_lr=3e-3,
            adapt_agent="trpo",
            adapt_target_kl=1.0,
        )
        for name in ("HalfCheetahVel", "HalfCheetahDir")
    },
    # Cheap point robot: 100-step episodes, larger steps.
    "Navigation2D": dict(
        meta_iters=100, meta_batch=10, inner_steps=3, episodes_per_step=20, inner_lr=1e-2, eval_every=20
    ),
    # Ant and the randomised-dynamics walkers: the MAML/ProMP protocol, as for HalfCheetah (docs/families.md).
    **{
        name: dict(meta_iters=300, meta_batch=10, inner_steps=3, episodes_per_step=20, inner_lr=3e-3)
        for name in ("AntDir", "AntDirAngle", "AntGoal", "HopperRandParams", "Walker2dRandParams")
    },
    # Cheap pendulum (no contact): for quick checks.
    "PendulumRandParams": dict(
        meta_iters=100, meta_batch=10, inner_steps=3, episodes_per_step=10, inner_lr=1e-2, eval_every=20
    ),
    # Meta-World (pip install "metarl[metaworld]"), every ML1-<class> and ML10: 500-step episodes, ~3k steps/s a
    # core, so fewer episodes and a smaller evaluation than the MuJoCo families (docs/families.md). Not tuned yet.
    **dict.fromkeys(
        ("ML1", "ML10"),
        dict(meta_iters=300, meta_batch=10, inner_steps=2, episodes_per_step=10, eval_tasks=10, eval_steps=2),
    ),
}


def preset(env: str, randomize: str = "") -> dict[str, Any]:
    """The preset overrides of the family named by ``env`` (and ``randomize``)."""
    try:
        family = get_family(env, randomize)
        return dict(PRESETS.get(family.family_name, PRESETS.get(getattr(family, "preset_name", ""), {})))
    except RandomizeError as e:
        raise ConfigError(str(e)) from None


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,64, got {text!r}") from None


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`TrainConfig` field, defaulting to None (= use the preset or default)."""
    for f in dataclasses.fields(TrainConfig):
        flag = "--" + f.name.replace("_", "-")
        kind = _parse_hidden if f.name == "hidden" else type(f.default)
        default = ",".join(map(str, f.default)) if f.name == "hidden" else f.default
        kwargs: dict[str, Any] = dict(type=kind, default=None, help=f"{f.metadata['help']} (default: {default})")
        if "choices" in f.metadata:
            kwargs["choices"] = f.metadata["choices"]
        if f.name == "env":
            kwargs["help"] = f"{f.metadata['help']}; one of {', '.join(FAMILIES)} (default: {default})"
        parser.add_argument(flag, **kwargs)


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    """Defaults ← family preset ← flags given. Returns the config and the preset that was applied."""
    given = {
        f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if getattr(args, f.name) is not None
    }
    env = given.get("env", TrainConfig.env)
    overrides = preset(env, given.get("randomize", ""))
    cfg = TrainConfig(**{**overrides, **given})
    cfg.validate()
    return cfg, overrides
