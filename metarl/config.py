"""Meta-training configuration: one dataclass, per-family presets, and the argparse built from both.

The defaults live once, in :class:`TrainConfig`; a family's preset overrides some of them; flags given
on the command line override the preset. ``--help`` is generated from the field docs below.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import importlib.util
import math
from typing import Any

from .agents.agent import AgentSpec
from .agents.inner_loop import AGENTS, BASELINES, FIELDS, SB3_AGENTS, InnerLoop, InnerLoopError, check_used, option
from .envs import FAMILIES, RandomizeError, TaskFamily, get_family

#: The outer loops (metarl/meta_learner.py).
META_LEARNERS = ("reptile", "maml", "fomaml")
#: Where the adapting workers run: spawned processes or Ray actors (agents/pool.py, agents/ray_transport.py).
BACKENDS = ("processes", "ray")
#: The version of the configuration's dict form (config.json, checkpoints); :func:`migrate` reads older ones.
CONFIG_VERSION = 3


class ConfigError(ValueError):
    """A configuration value that cannot work (the message names the flag and the fix)."""


#: Flags of the meta-test inner loop: it is the training one with these replaced (when given).
ADAPT_FLAGS: dict[str, tuple[Any, str]] = {
    "adapt_agent": (
        "",
        "inner-loop agent at meta-test time: the periodic evaluation, metarl.adapt, metarl.evaluate and "
        "MetaPolicy.adapt (empty: --agent). E.g. meta-train with ppo, adapt with trpo",
    ),
    "adapt_target_kl": (0.0, "trpo's --target-kl at meta-test time (0: --target-kl)"),
    "adapt_step_decay": (0.0, "--step-decay at meta-test time (0: --step-decay)"),
    "adapt_holdout": (0.0, "trpo's --holdout at meta-test time (0: --holdout)"),
    "adapt_baseline": (
        "",
        "vpg, trpo: --baseline at meta-test time (empty: --baseline). E.g. meta-train with ppo's value net, adapt "
        "with trpo over a linear baseline fitted on each batch",
    ),
    "adapt_cg_damping": (0.0, "trpo's --cg-damping at meta-test time (0: --cg-damping)"),
}
#: The meta-test inner loop's field each of :data:`ADAPT_FLAGS` replaces.
ADAPT_FIELDS = {name: name.removeprefix("adapt_") for name in ADAPT_FLAGS}


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a meta-training run (saved as ``config.json`` in the run folder).

    ``inner`` is the inner loop of meta-training, ``adapt`` the one of meta-test adaptation (the periodic
    evaluation, ``metarl.adapt``, ``metarl.evaluate``, ``MetaPolicy.adapt``). On the command line their
    fields are the flags ``--agent``, ``--inner-lr``, ... (both loops) and ``--adapt-agent``,
    ``--adapt-target-kl`` (the meta-test loop only): see :meth:`from_flags`.
    """

    env: str = option(
        "HalfCheetahVel",
        "task family name, registered id (metarl/<Name>-v0), or package.module:Name for your own family (the module "
        "is imported first; Name is its registered family name or class name; docs/families.md)",
    )
    randomize: str = option(
        "",
        "with a Gymnasium MuJoCo --env (e.g. Hopper-v5): model fields and multiplicative ranges to randomise per "
        "task, e.g. body_mass=0.5:2.0,geom_friction=0.5:1.5 (docs/families.md)",
    )
    meta_iters: int = option(300, "meta-iterations (Reptile updates) in the run")
    meta_batch: int = option(10, "tasks adapted per meta-iteration")
    inner_steps: int = option(3, "inner adaptation updates K per task")
    episodes_per_step: int = option(20, "episodes collected per inner update (and per evaluation step)")
    meta_learner: str = option(
        "reptile",
        "the outer loop: 'reptile' (θ moves toward the adapted parameters), 'maml' (the meta-gradient through the "
        "inner VPG steps, TRPO outer step) or 'fomaml' (the same, first order); maml/fomaml apply their own preset "
        "(printed at start; docs/maml.md)",
        choices=META_LEARNERS,
    )
    meta_step: float = option(1.0, "Reptile outer step size ε at the first iteration")
    meta_step_final: float = option(0.0, "ε at the last iteration (linear annealing)")
    outer_kl: float = option(0.01, "maml, fomaml: the TRPO outer step's trust region (mean KL of the adapted policies)")
    inner: InnerLoop = dataclasses.field(default_factory=InnerLoop)
    adapt: InnerLoop = dataclasses.field(default_factory=InnerLoop)
    hidden: tuple[int, ...] = option((64, 64), "hidden layer widths, comma separated (e.g. 64,64)")
    log_std_init: float = option(-0.5, "initial log standard deviation of the Gaussian policy")
    seed: int = option(0, "meta-training seed (task draws, initial states, action noise, initialisation)")
    eval_every: int = option(25, "evaluate on held-out meta-test tasks every N iterations (0: only at the end)")
    eval_tasks: int = option(40, "held-out tasks used by the periodic evaluation (at most the family's 40)")
    eval_steps: int = option(3, "adaptation steps in the evaluation (returns after k = 0..N steps)")
    eval_seed: int = option(1000, "evaluation seed, separate from the training seed")
    video_every: int = option(
        4,
        "every N-th periodic evaluation (and the last) logs eval/video to TensorBoard: one deterministic episode of "
        "the first held-out task before and after the --eval-steps adaptation steps, rendered headless (EGL); "
        "0: no videos. Changes no result (docs/usage.md, 'Videos')",
    )
    checkpoint_every: int = option(
        50, "keep a numbered checkpoint every N iterations (latest.pt is rewritten after every iteration)"
    )
    workers: int = option(
        0,
        "worker processes adapting the meta-batch's tasks in parallel (0: one per CPU core, at most one per task; "
        "1: in this process); results are identical for any number. More than the CPUs available or than the "
        "larger of --meta-batch and --eval-tasks is refused before anything starts, as is a run whose memory "
        "estimate exceeds the memory available (docs/usage.md)",
    )
    threads: int = option(0, "threads stepping the simulator in each worker (0: all cores with --workers 1, else 1)")
    backend: str = option(
        "processes",
        "where the workers run: 'processes' on this machine, or 'ray': Ray actors, locally or on a cluster "
        '(pip install "metarl[ray]", docs/ray.md); results are identical',
        choices=BACKENDS,
    )
    ray_address: str = option(
        "", "with --backend ray: empty starts Ray on this machine; 'auto' or HOST:PORT joins a running cluster"
    )

    # ---- the flat flag form ------------------------------------------------------------------
    @classmethod
    def from_flags(cls, values: dict[str, Any]) -> TrainConfig:
        """The config that flag values (``flag_name -> value``; absent: default) describe.

        Inner-loop flags (``agent``, ``inner_lr``, ...) set both inner loops; the ``adapt_*`` flags
        (:data:`ADAPT_FLAGS`) then replace the meta-test loop's agent, trust region, ... (empty / 0: unchanged).
        """
        unknown = set(values) - set(FLAG_NAMES)
        if unknown:
            raise ConfigError(f"unknown configuration keys {sorted(unknown)}")
        for name, field in ADAPT_FIELDS.items():
            if isinstance(ADAPT_FLAGS[name][0], float) and values.get(name, 0.0) < 0:
                flag, base = name.replace("_", "-"), field.replace("_", "-")
                raise ConfigError(f"--{flag} must be >= 0 (0: --{base}), got {values[name]}")
        inner = InnerLoop(**{k: v for k, v in values.items() if k in INNER_FIELDS})
        adapt = dataclasses.replace(
            inner, **{field: values.get(name) or getattr(inner, field) for name, field in ADAPT_FIELDS.items()}
        )
        rest = {k: v for k, v in values.items() if k in TOP_FIELDS}
        if "hidden" in rest:
            rest["hidden"] = tuple(int(h) for h in rest["hidden"])
        return cls(inner=inner, adapt=adapt, **rest)

    def validate(self) -> None:
        """Raise :class:`ConfigError` on values that cannot work."""
        try:
            get_family(self.env, self.randomize)  # KeyError with the known families
        except RandomizeError as e:
            raise ConfigError(str(e)) from None
        for name in ["meta_iters", "meta_batch", "episodes_per_step", "eval_tasks"]:
            if getattr(self, name) <= 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be positive, got {getattr(self, name)}")
        for name in [
            "inner_steps",
            "eval_every",
            "eval_steps",
            "video_every",
            "checkpoint_every",
            "threads",
            "workers",
        ]:
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if isinstance(v, float) and not math.isfinite(v):
                raise ConfigError(f"--{f.name.replace('_', '-')} must be finite, got {v}")
        try:
            self.inner.validate()
            self.adapt.validate("--adapt-")
        except InnerLoopError as e:
            raise ConfigError(str(e)) from None
        if self.inner_steps == 0:
            raise ConfigError("--inner-steps must be positive: with 0 adaptation steps Reptile cannot move θ")
        for name in ("seed", "eval_seed"):  # numpy seeds are non-negative
            if getattr(self, name) < 0:
                raise ConfigError(f"--{name.replace('_', '-')} must be >= 0, got {getattr(self, name)}")
        held_out = self.family.num_meta_test_tasks
        if self.eval_tasks > held_out:
            raise ConfigError(f"--eval-tasks must be at most {held_out} (the held-out tasks), got {self.eval_tasks}")
        if self.meta_learner not in META_LEARNERS:
            raise ConfigError(f"--meta-learner must be one of {', '.join(META_LEARNERS)}, got {self.meta_learner!r}")
        if self.meta_learner != "reptile":
            why = " (stable-baselines3 takes its steps inside SB3)" if self.inner.is_sb3 else ""
            if self.inner.agent != "vpg":
                raise ConfigError(
                    f"--meta-learner {self.meta_learner} differentiates through VPG inner steps only: use --agent vpg "
                    f"(got --agent {self.inner.agent}{why})"
                )
            if self.inner.baseline != "linear":
                raise ConfigError(
                    f"--meta-learner {self.meta_learner} needs advantages fitted on each batch: use --baseline linear "
                    "(the value net would get no meta-gradient)"
                )
            if self.outer_kl <= 0:
                raise ConfigError(f"--outer-kl must be positive, got {self.outer_kl}")
        if self.adapt.is_sb3 != self.inner.is_sb3:
            raise ConfigError(
                f"--adapt-agent {self.adapt.agent} cannot adapt parameters trained by --agent {self.inner.agent}: "
                "native (ppo, vpg, trpo) and stable-baselines3 (sb3-*) agents have different parameter layouts"
            )
        if not self.hidden or any(h <= 0 for h in self.hidden):
            raise ConfigError(f"--hidden needs positive widths such as 64,64, got {self.hidden}")
        if self.backend not in BACKENDS:
            raise ConfigError(f"--backend must be one of {', '.join(BACKENDS)}, got {self.backend!r}")
        if self.backend == "ray" and importlib.util.find_spec("ray") is None:  # checked without importing ray
            raise ConfigError('--backend ray needs Ray: pip install "metarl[ray]"')

    @property
    def family(self) -> type[TaskFamily]:
        """The task family class (``--env``, randomised by ``--randomize`` if given)."""
        return get_family(self.env, self.randomize)

    @property
    def family_name(self) -> str:
        return self.family.family_name

    def agent_spec(self, inner: InnerLoop | None = None) -> AgentSpec:
        """The agent that runs this config's inner loops (its layout is ``inner``'s, default the training one)."""
        return AgentSpec(
            self.env, self.randomize, inner or self.inner, tuple(self.hidden), self.log_std_init, self.threads or None
        )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainConfig:
        """The config of a :meth:`to_dict` output of this version (older ones: :func:`migrate` first)."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown, missing = set(d) - names, names - set(d)
        if unknown or missing:
            what = f"unknown keys {sorted(unknown)}" if unknown else f"missing keys {sorted(missing)}"
            raise ConfigError(f"configuration of version {CONFIG_VERSION} with {what}")
        d = dict(d)
        d["hidden"] = tuple(int(h) for h in d["hidden"])
        try:
            d["inner"], d["adapt"] = InnerLoop.from_dict(d["inner"]), InnerLoop.from_dict(d["adapt"])
        except (InnerLoopError, TypeError) as e:
            raise ConfigError(f"configuration with a bad inner loop ({e})") from None
        return cls(**d)


#: Top-level keys format 3 added, at the values older runs had in effect (no videos).
_V2_ADDED: dict[str, Any] = {"video_every": 0}

INNER_FIELDS = FIELDS
TOP_FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig) if f.name not in ("inner", "adapt"))
#: Every flag of ``python -m metarl.train`` that sets the config, in ``--help`` order.
FLAG_NAMES = (*TOP_FIELDS[:10], *INNER_FIELDS, *ADAPT_FLAGS, *TOP_FIELDS[10:])

#: Format-1 configurations (flat flag names) lacked the keys added after the first release; these are the
#: values those runs had in effect (not today's defaults): one process, no randomisation, no TRPO, no Ray, the
#: meta-test inner loop equal to the training one.
_V1_ADDED_LATER = {
    "workers": 1,
    "randomize": "",
    "target_kl": 0.01,
    "adapt_agent": "",
    "adapt_target_kl": 0.0,
    "backend": "processes",
    "ray_address": "",
    **_V2_ADDED,
}
#: The inner-loop options format 3 added (issue 15), at the values format 2's runs had in effect: off.
_V2_INNER_ADDED = {"step_decay": 1.0, "holdout": 0.0}
#: Settings format 1 had no key for, at the values its code had them (constants then, options now).
_V1_IMPLICIT = {
    "cg_iters": 10,
    "cg_damping": 0.1,
    "line_search_steps": 10,
    "baseline": "value",
    "meta_learner": "reptile",
    "outer_kl": 0.01,
    **{name: 0.0 for name in ("adapt_step_decay", "adapt_holdout", "adapt_cg_damping")},
    "adapt_baseline": "",
    **_V2_INNER_ADDED,
}
_V1_KEYS = set(FLAG_NAMES) - set(_V1_IMPLICIT)


def migrate(d: dict[str, Any], version: int) -> dict[str, Any]:
    """A configuration dict of format ``version`` as this version's :meth:`TrainConfig.to_dict` would write it.

    Raises:
        ConfigError: a key that version never had, or one it always had that is missing.
    """
    if version == CONFIG_VERSION:
        return d
    if version == 2:  # format 3 added videos and two inner-loop options; format 2's runs had them off
        loops = {}
        for key in ("inner", "adapt"):
            loop = d.get(key)
            if not isinstance(loop, dict) or set(loop) & set(_V2_INNER_ADDED):
                raise ConfigError(f"configuration of format 2 with a bad {key!r} inner loop")
            loops[key] = {**loop, **_V2_INNER_ADDED}
        return {**_V2_ADDED, **d, **loops}
    if version != 1:
        raise ConfigError(f"configuration format {version} is not one this metarl reads (1 to {CONFIG_VERSION})")
    unknown = set(d) - _V1_KEYS
    missing = _V1_KEYS - set(d) - set(_V1_ADDED_LATER)
    if unknown or missing:
        what = f"unknown keys {sorted(unknown)}" if unknown else f"missing keys {sorted(missing)}"
        raise ConfigError(f"configuration of format 1 with {what}")
    return TrainConfig.from_flags({**_V1_ADDED_LATER, **d, **_V1_IMPLICIT}).to_dict()


#: The HalfCheetah presets' inner step, at meta-training and at meta-test (issue 15).
_HALFCHEETAH_STEP = dict(agent="trpo", target_kl=2.0, baseline="linear", step_decay=0.5, cg_damping=10.0)

#: Per-family overrides of the defaults, printed at the start of a run.
PRESETS: dict[str, dict[str, Any]] = {
    # Meta-batch 10, K=3 inner steps of 20 episodes (the MAML/ProMP protocol), 100 iterations (16M env steps, ~18 min
    # on 2 cores). Each inner step, at meta-training and at meta-test alike, is a TRPO step over a linear baseline
    # fitted on its batch, with a damping of 10 on the Fisher matrix (the step leans to the plain gradient's
    # direction, a 20-episode batch's natural gradient being mostly noise), of mean KL 2.0 halving at each step:
    # chosen for meta-test on training draws (issue 15, scripts/adapt_tune.sh), then Reptile over the same loop beat
    # Reptile over PPO steps at a third of PPO's 48M env steps (scripts/train_screen.sh, scripts/ablation.sh;
    # docs/results.md, "Adaptability: what moved the plateau"). Another --agent keeps the meta-test loop.
    **{
        name: dict(
            meta_iters=100,
            meta_batch=10,
            inner_steps=3,
            episodes_per_step=20,
            **{prefix + k: v for prefix in ("", "adapt_") for k, v in _HALFCHEETAH_STEP.items()},
        )
        for name in ("HalfCheetahVel", "HalfCheetahDir")
    },
    # Cheap point robot: 100-step episodes, larger steps.
    "Navigation2D": dict(
        meta_iters=100, meta_batch=10, inner_steps=3, episodes_per_step=20, inner_lr=1e-2, eval_every=20
    ),
    # Ant and the randomised-dynamics walkers: each iteration the MAML/ProMP protocol, as for HalfCheetah
    # (docs/families.md), for as many iterations as the pretrained zoo could afford on 2 cores (issue 18: 7-11 min a
    # run here, 3-4 M env steps; scripts/pretrain.sh, docs/results.md "Pretrained"). Not tuned; they learn to move,
    # and adapt little at this budget.
    **{
        name: dict(meta_iters=iters, meta_batch=10, inner_steps=3, episodes_per_step=20, inner_lr=3e-3)
        for name, iters in (
            ("AntDir", 20),
            ("AntDirAngle", 20),
            ("AntGoal", 20),
            ("HopperRandParams", 40),
            ("Walker2dRandParams", 40),
        )
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


#: What ``--meta-learner maml`` / ``fomaml`` set on top of the family's preset: MAML's own protocol (Finn et al.
#: 2017 and its reference code): one VPG inner step of learning rate 0.1 on 10 episodes per task, advantages from
#: the linear feature baseline fitted on the batch (GAE λ = 1: returns minus baseline), no gradient clipping, 40
#: tasks per meta-batch, and adaptation at meta-test by the same VPG step. 100 iterations are 16 M env steps, the
#: Reptile HalfCheetah preset's budget.
MAML_PRESET: dict[str, Any] = dict(
    agent="vpg",
    adapt_agent="vpg",
    adapt_target_kl=0.0,
    inner_lr=0.1,
    baseline="linear",
    gae_lambda=1.0,
    max_grad_norm=0.0,
    meta_batch=40,
    episodes_per_step=10,
    inner_steps=1,
)


def preset(env: str, randomize: str = "", meta_learner: str = "reptile") -> dict[str, Any]:
    """The preset overrides of the family named by ``env`` (and ``randomize``), with MAML's for ``maml``/``fomaml``."""
    try:
        family = get_family(env, randomize)
        out = dict(PRESETS.get(family.family_name, PRESETS.get(getattr(family, "preset_name", ""), {})))
        if meta_learner in ("maml", "fomaml"):  # MAML steps by its own VPG: no family inner-loop setting, either loop
            return {**{k: v for k, v in out.items() if k not in ADAPT_FLAGS and k not in INNER_FIELDS}, **MAML_PRESET}
        return out
    except RandomizeError as e:
        raise ConfigError(str(e)) from None


def _parse_hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers such as 64,64, got {text!r}") from None


def flag_meta() -> dict[str, tuple[Any, str, dict[str, Any]]]:
    """Flag name -> (default, help, extra argparse options), for every flag of :data:`FLAG_NAMES`."""
    out: dict[str, tuple[Any, str, dict[str, Any]]] = {}
    for f in (*dataclasses.fields(TrainConfig), *dataclasses.fields(InnerLoop)):
        if f.name not in ("inner", "adapt"):
            extra = {"choices": f.metadata["choices"]} if "choices" in f.metadata else {}
            out[f.name] = (f.default, f.metadata["help"], extra)
    for name, (default, text) in ADAPT_FLAGS.items():
        choices = {"adapt_agent": AGENTS, "adapt_baseline": BASELINES}.get(name)
        out[name] = (default, text, {"choices": ("", *choices)} if choices else {})
    return out


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per name of :data:`FLAG_NAMES`, defaulting to None (= use the preset or default)."""
    meta = flag_meta()
    for name in FLAG_NAMES:
        default, text, extra = meta[name]
        kind = _parse_hidden if name == "hidden" else type(default)
        shown = ",".join(map(str, default)) if name == "hidden" else default
        if name == "env":
            text = f"{text}; one of {', '.join(FAMILIES)}"
        parser.add_argument(
            "--" + name.replace("_", "-"), type=kind, default=None, help=f"{text} (default: {shown})", **extra
        )


def given_flags(args: argparse.Namespace) -> dict[str, Any]:
    """The config flags given on the command line (name -> value)."""
    return {name: getattr(args, name) for name in FLAG_NAMES if getattr(args, name, None) is not None}


def resolve(args: argparse.Namespace) -> tuple[TrainConfig, dict[str, Any]]:
    """:func:`resolve_flags` of the config flags given on the command line."""
    return resolve_flags(given_flags(args))


def check_types(given: dict[str, Any]) -> None:
    """Refuse a value of the wrong type (argparse converts the command line's; Python callers may pass anything)."""
    meta = flag_meta()
    for name, value in given.items():
        default = meta[name][0]
        if name == "hidden":
            ok = isinstance(value, (tuple, list)) and all(isinstance(h, int) and not isinstance(h, bool) for h in value)
        elif isinstance(default, float):
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        else:
            ok = isinstance(value, type(default)) and (isinstance(default, bool) or not isinstance(value, bool))
        if not ok:
            want = "a tuple of ints such as (64, 64)" if name == "hidden" else type(default).__name__
            raise ConfigError(f"{name} must be {want}, got {value!r}")


def resolve_flags(given: dict[str, Any]) -> tuple[TrainConfig, dict[str, Any]]:
    """Defaults ← family preset ← flags given (``flag_name -> value``, as the command line's and the Python API's
    keywords). Returns the validated config and the preset that was applied.

    A flag that neither inner loop's algorithm reads is refused (one line), not silently ignored. A plain inner-loop
    flag (``target_kl``, ``step_decay``, ...) given without its ``adapt_`` twin sets both loops, over the preset's
    meta-test value. A preset's inner-loop settings are its agents': an ``agent`` other than the preset's drops its
    meta-training settings (not its meta-test ones, unless its parameters are another kind's: native or SB3), an
    ``adapt_agent`` other than the preset's its meta-test ones.

    Raises:
        ConfigError: an unknown flag, a value that cannot work, or a flag the chosen algorithms do not read.
        KeyError: an unknown family (the message lists the known ones).
    """
    unknown = sorted(set(given) - set(FLAG_NAMES))
    if unknown:
        close = difflib.get_close_matches(unknown[0], FLAG_NAMES, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else " (the options are the flags of python -m metarl.train)"
        raise ConfigError(f"unknown option {unknown[0]!r}{hint}")
    check_types(given)
    env = given.get("env", TrainConfig.env)
    overrides = preset(env, given.get("randomize", ""), given.get("meta_learner", "reptile"))
    # a plain inner-loop flag given without its --adapt- twin (e.g. --cg-damping) sets the meta-test loop's too: the
    # preset's meta-test value for it yields (the agent aside: --agent alone keeps the preset's meta-test agent)
    overrides = {
        k: v
        for k, v in overrides.items()
        if not (k in ADAPT_FIELDS and k != "adapt_agent" and ADAPT_FIELDS[k] in given and k not in given)
    }
    # a preset's inner-loop settings are its agents': another --agent starts the meta-training loop from that agent's
    # defaults, another --adapt-agent the meta-test loop (--agent alone keeps the preset's meta-test loop)
    for agent, fields in (("agent", INNER_FIELDS), ("adapt_agent", tuple(ADAPT_FIELDS))):
        if agent in given and agent in overrides and given[agent] != overrides[agent]:
            overrides = {k: v for k, v in overrides.items() if k not in fields}
    # nor can a preset's native meta-test loop adapt an --agent sb3-* policy (another parameter layout)
    if "adapt_agent" in overrides and "adapt_agent" not in given and "agent" in given:
        if (given["agent"] in SB3_AGENTS) != (overrides["adapt_agent"] in SB3_AGENTS):
            overrides = {k: v for k, v in overrides.items() if k not in ADAPT_FIELDS}
    cfg = TrainConfig.from_flags({**overrides, **given})
    cfg.validate()
    try:
        check_used(given, (cfg.inner, cfg.adapt))
        for name, field in ADAPT_FIELDS.items():
            if name in given and name != "adapt_agent":
                check_used({field: 0}, (cfg.adapt,), prefix="--adapt-")
    except InnerLoopError as e:
        raise ConfigError(str(e)) from None
    return cfg, overrides
