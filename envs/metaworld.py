"""Meta-World's ML1 and ML10 benchmarks as task families (optional: ``pip install "metarl[metaworld]"``).

- ``ML1-<class>`` (e.g. ``ML1-reach-v3``, ``ML1-push-v3``, ``ML1-pick-place-v3``): one manipulation class,
  varied goal and object positions. Training tasks are the benchmark's 50 train goals; the meta-test set is
  its 50 test goals (drawn separately by Meta-World, so disjoint).
- ``ML10``: 10 training classes and 5 held-out test classes, 50 goals each.

A task is ``MetaWorldTask(env_name, split, index)``: goal ``index`` (0..49) of class ``env_name`` in the
benchmark's ``train`` or ``test`` list, built by Meta-World with the fixed seed :data:`BENCHMARK_SEED`, so the
same task always means the same goal. The goal is hidden from the observation (Meta-World's ML setting);
episodes are 500 steps; ``info["success"]`` marks the steps where the task is solved, and an episode counts as
a success if any of its steps does (``defines_success``). Rewards are Meta-World's own (v2 reward functions,
0..10 per step).

This module imports ``metaworld`` only inside functions: ``import metarl.envs`` never needs it. Families are
built on demand by :func:`metaworld_family` (``get_family("ML1-reach-v3")`` calls it) and then registered as
``metarl/<name>-v0``. Copies step one at a time through Meta-World's own ``step``
(:class:`~metarl.envs.gym_batch.GymBatchEnv`).
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import utils

from .family import Task, TaskError, TaskFamily

#: Seed of the Meta-World benchmark object whose goal lists tasks index into.
BENCHMARK_SEED = 0
#: Goals per class in each split (Meta-World's ``_N_GOALS``).
GOALS_PER_CLASS = 50
SPLITS = ("train", "test")
BENCHMARKS = ("ML1", "ML10")
INSTALL_HINT = 'Meta-World families need Meta-World: pip install "metarl[metaworld]" (it moves MuJoCo to 3.3.0)'


class MetaWorldUnavailable(KeyError):
    """A Meta-World family was asked for but ``metaworld`` is not installed (or the name is unknown)."""

    def __str__(self) -> str:
        return str(self.args[0])


def _metaworld() -> Any:
    try:
        import metaworld
    except ImportError:
        raise MetaWorldUnavailable(INSTALL_HINT) from None
    return metaworld


@dataclasses.dataclass(frozen=True)
class MetaWorldTask(Task):
    """Goal ``index`` (0..49) of Meta-World class ``env_name`` in the benchmark's ``split`` (train or test)."""

    env_name: str
    split: str
    index: int

    def __post_init__(self) -> None:
        if not isinstance(self.env_name, str) or not self.env_name:
            raise TaskError(f"task field 'env_name' must be a Meta-World class such as reach-v3, got {self.env_name!r}")
        if self.split not in SPLITS:
            raise TaskError(f"task field 'split' must be 'train' or 'test', got {self.split!r}")
        index = self.index
        if isinstance(index, float) and index.is_integer():  # JSON or key=value input
            index = int(index)
        if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < GOALS_PER_CLASS:
            raise TaskError(f"task field 'index' must be an integer in 0..{GOALS_PER_CLASS - 1}, got {self.index!r}")
        object.__setattr__(self, "index", int(index))

    def vector(self) -> np.ndarray:
        """The goal index as a float array (the goal itself lives in the benchmark)."""
        return np.array([float(self.index)])


@functools.cache
def _benchmark(benchmark: str, env_name: str) -> Any:
    """Meta-World's benchmark object (its goal lists), built once per process (ML10: ~8 s)."""
    mw = _metaworld()
    if benchmark == "ML1":
        return mw.ML1(env_name, seed=BENCHMARK_SEED)
    return mw.ML10(seed=BENCHMARK_SEED)


def _class_names(benchmark: str, env_name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(train classes, test classes) without building the goals."""
    if benchmark == "ML1":
        return (env_name,), (env_name,)
    _metaworld()
    from metaworld.env_dict import ML10_V3

    return tuple(ML10_V3["train"]), tuple(ML10_V3["test"])


class MetaWorldFamily(TaskFamily, gym.Env):
    """A Meta-World ML benchmark as a task family; the current task's Meta-World env does the stepping.

    Each instance keeps one Meta-World env per class it has met (ML10 switches between models) and forwards
    ``reset`` and ``step`` to the current task's. Actions are clipped to ``[-1, 1]`` before Meta-World sees them.
    Built by :func:`metaworld_family`; not used directly.

    Args:
        task: the initial task (default: the first draw of ``np.random.default_rng(0)``).
    """

    task_type: ClassVar[type[Task]] = MetaWorldTask
    horizon: ClassVar[int] = 500
    meta_test_seed: ClassVar[int] = BENCHMARK_SEED  # unused: the meta-test set is the benchmark's test goals
    defines_success: ClassVar[bool] = True
    benchmark: ClassVar[str]
    ml1_env_name: ClassVar[str]
    train_classes: ClassVar[tuple[str, ...]]
    test_classes: ClassVar[tuple[str, ...]]
    #: key of this family's settings in metarl.config.PRESETS (all ML1 classes share one)
    preset_name: ClassVar[str]
    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, task: Task | dict | None = None) -> None:
        utils.EzPickle.__init__(self, task=task)
        self._envs: dict[str, Any] = {}
        self._env: Any = None
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(39,), dtype=np.float64)
        self.action_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self._init_task(task)

    # ---- tasks ------------------------------------------------------------------------------
    @classmethod
    def _draw_tasks(cls, n: int, rng: np.random.Generator) -> list[Task]:
        total = len(cls.train_classes) * GOALS_PER_CLASS
        picks = rng.choice(total, size=n, replace=n > total)  # distinct goals within a meta-batch when possible
        return [
            MetaWorldTask(cls.train_classes[int(p) // GOALS_PER_CLASS], "train", int(p) % GOALS_PER_CLASS)
            for p in picks
        ]

    @classmethod
    def meta_test_tasks(cls) -> list[Task]:
        """The benchmark's test goals, class by class in turn (so any prefix covers every test class)."""
        return [MetaWorldTask(c, "test", i) for i in range(GOALS_PER_CLASS) for c in cls.test_classes]

    @classmethod
    def in_training_distribution(cls, task: Task) -> bool:
        return task.env_name in cls.train_classes  # type: ignore[attr-defined]  # ML1 test goals: same distribution

    def set_task(self, task: Task | dict) -> None:
        if isinstance(task, dict):
            task = MetaWorldTask.from_dict(task)
        if isinstance(task, MetaWorldTask):
            classes = self.train_classes if task.split == "train" else self.test_classes
            if task.env_name not in classes:
                raise TaskError(
                    f"{self.family_name} has no {task.split} class {task.env_name!r}; its {task.split} classes are "
                    f"{', '.join(classes)}"
                )
        super().set_task(task)
        task = self._task
        env = self._envs.get(task.env_name)  # type: ignore[attr-defined]
        if env is None:
            bench = _benchmark(self.benchmark, self.ml1_env_name)
            classes = bench.train_classes if task.split == "train" else bench.test_classes  # type: ignore[attr-defined]
            env = self._envs[task.env_name] = classes[task.env_name]()  # type: ignore[attr-defined]
        env.set_task(self.goal_of(task))
        self._env = env

    @classmethod
    def goal_of(cls, task: Task) -> Any:
        """The Meta-World ``Task`` (pickled goal data) that ``task`` names."""
        bench = _benchmark(cls.benchmark, cls.ml1_env_name)
        goals = bench.train_tasks if task.split == "train" else bench.test_tasks  # type: ignore[attr-defined]
        mine = [g for g in goals if g.env_name == task.env_name]  # type: ignore[attr-defined]
        return mine[task.index]  # type: ignore[attr-defined]

    # ---- Gymnasium ----------------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode. Meta-World's reset is deterministic given the task (the seed only seeds ``np_random``)."""
        super().reset(seed=seed)
        obs, info = self._env.reset()
        info["task"] = self._task
        return obs, info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self._env.step(action)
        info["task"] = self._task
        return obs, float(reward), bool(terminated), bool(truncated), info

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()


def _reduce(self: Any) -> tuple[Any, tuple[Any, ...]]:  # pickle by recipe: the class is built at run time
    cls = type(self)
    return _rebuild, (cls.benchmark, cls.ml1_env_name, dict(self._ezpickle_kwargs))


def _rebuild(benchmark: str, env_name: str, kwargs: dict[str, Any]) -> Any:
    return metaworld_family(benchmark, env_name)(**kwargs)


@functools.cache
def metaworld_family(benchmark: str, env_name: str = "") -> type[MetaWorldFamily]:
    """The family of Meta-World benchmark ``benchmark`` (``"ML1"`` with a class name, or ``"ML10"``).

    ``metaworld_family("ML1", "reach-v3")`` is the family named ``ML1-reach-v3``; it is registered as
    ``metarl/ML1-reach-v3-v0``. The same arguments return the same class.

    Raises:
        MetaWorldUnavailable: Meta-World is not installed, or the benchmark or class is unknown (one line).
    """
    if benchmark not in BENCHMARKS:
        raise MetaWorldUnavailable(f"unknown Meta-World benchmark {benchmark!r}; choose one of {', '.join(BENCHMARKS)}")
    mw = _metaworld()
    if benchmark == "ML1":
        names = list(mw.ML1.ENV_NAMES)
        if env_name not in names:
            close = difflib.get_close_matches(env_name, names, n=1, cutoff=0.5)
            hint = f"did you mean ML1-{close[0]}? " if close else ""
            raise MetaWorldUnavailable(
                f"unknown Meta-World class {env_name!r} for ML1; {hint}e.g. ML1-reach-v3, ML1-push-v3, "
                "ML1-pick-place-v3"
            )
        name = f"ML1-{env_name}"
    elif env_name:
        raise MetaWorldUnavailable(f"ML10 takes no class name (its classes are fixed), got {env_name!r}")
    else:
        name = "ML10"
    train, test = _class_names(benchmark, env_name)
    cls = type(
        f"MetaWorld{name.replace('-', '_')}",
        (MetaWorldFamily,),
        dict(
            family_name=name,
            benchmark=benchmark,
            ml1_env_name=env_name,
            train_classes=train,
            test_classes=test,
            num_meta_test_tasks=len(test) * GOALS_PER_CLASS,
            preset_name=benchmark,
            __reduce__=_reduce,
            __module__=__name__,
        ),
    )
    env_id = f"metarl/{name}-v0"
    if env_id not in gym.registry:
        gym.register(id=env_id, entry_point=cls, max_episode_steps=cls.horizon)
    return cls


def family_from_name(name: str) -> type[MetaWorldFamily] | None:
    """The Meta-World family named ``ML10`` or ``ML1-<class>`` (``ML1-reach`` means ``ML1-reach-v3``); else None.

    Raises:
        MetaWorldUnavailable: the name is a Meta-World one but Meta-World is missing or the class unknown.
    """
    if name == "ML10":
        return metaworld_family("ML10")
    if name.startswith("ML1-"):
        env_name = name[len("ML1-") :]
        if not env_name[-3:-1] == "-v":
            env_name += "-v3"
        return metaworld_family("ML1", env_name)
    return None
