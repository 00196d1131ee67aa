"""Callbacks of meta-training, as stable-baselines3 users know them: called after every meta-iteration, able to stop.

.. code-block:: python

    import metarl
    from metarl.callbacks import EvaluateEvery, StopOnNoImprovement

    model = metarl.Reptile("Navigation2D", eval_every=5)
    model.learn(100, callback=[EvaluateEvery(10, tasks=40), StopOnNoImprovement(patience=3)])

A callback is a :class:`Callback` (override :meth:`Callback.on_iteration`) or a plain function
``f(metrics, trainer)``; a list runs in order. ``metrics`` holds the iteration's scalars as TensorBoard gets them
(``adapt/return_post``, ``meta/step_size``, ..., and ``eval/return_step{k}`` in the iterations that evaluated);
keys a callback adds are logged too. Returning False stops the run after this iteration, with a numbered
checkpoint of it (``--resume`` / ``load`` continues it); anything else (None included) goes on.
``trainer`` is the :class:`~metarl.trainer.MetaTrainer`: ``iteration``, ``theta``, ``config``, ``evaluate()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Union

if TYPE_CHECKING:
    from .trainer import MetaTrainer


class Callback:
    """Called after every meta-iteration; return False from :meth:`on_iteration` to stop training."""

    def on_iteration(self, metrics: dict[str, float], trainer: MetaTrainer) -> bool | None:
        """The iteration's scalars (add keys to log more) and the trainer; False stops the run after it."""
        return None


CallbackLike = Union[Callback, Callable[[dict[str, float], Any], Any], Sequence[Any], None]  # noqa: UP007 (3.10)


class _Function(Callback):
    def __init__(self, fn: Callable[[dict[str, float], Any], Any]) -> None:
        self.fn = fn

    def on_iteration(self, metrics: dict[str, float], trainer: MetaTrainer) -> bool | None:
        return self.fn(metrics, trainer)


class CallbackList(Callback):
    """Several callbacks in order; every one runs, and the run stops if any returns False."""

    def __init__(self, callbacks: Sequence[CallbackLike]) -> None:
        self.callbacks = [as_callback(c) for c in callbacks]

    def on_iteration(self, metrics: dict[str, float], trainer: MetaTrainer) -> bool | None:
        answers = [c.on_iteration(metrics, trainer) for c in self.callbacks]
        return False if any(a is False for a in answers) else None


def as_callback(callback: CallbackLike) -> Callback:
    """A :class:`Callback` from a callback, a function ``f(metrics, trainer)``, a list of those, or None."""
    if callback is None:
        return Callback()
    if isinstance(callback, Callback):
        return callback
    if isinstance(callback, (list, tuple)):
        return CallbackList(callback)
    if callable(callback):
        return _Function(callback)
    raise TypeError(f"callback must be a Callback, a function (metrics, trainer) or a list of them, got {callback!r}")


class EvaluateEvery(Callback):
    """An extra evaluation on held-out tasks every ``every`` iterations, logged as ``{prefix}/return_step{k}``.

    Args:
        every: evaluate after every ``every``-th iteration.
        tasks: held-out tasks (the first of the family's meta-test set; default the run's ``eval_tasks``).
        steps: adaptation steps (default the run's ``eval_steps``).
        episodes: episodes per step (default the run's ``episodes_per_step``).
        seed: evaluation seed (default the run's ``eval_seed``).
        prefix: the TensorBoard tag namespace (``eval_extra``; the periodic evaluation's is ``eval``).
    """

    def __init__(
        self,
        every: int,
        tasks: int | None = None,
        steps: int | None = None,
        episodes: int | None = None,
        seed: int | None = None,
        prefix: str = "eval_extra",
    ) -> None:
        if every <= 0:
            raise ValueError(f"EvaluateEvery: every must be positive, got {every}")
        self.every, self.tasks, self.steps, self.episodes, self.seed, self.prefix = (
            every,
            tasks,
            steps,
            episodes,
            seed,
            prefix,
        )

    def on_iteration(self, metrics: dict[str, float], trainer: MetaTrainer) -> bool | None:
        if trainer.iteration % self.every:
            return None
        held_out = trainer.family.meta_test_tasks()
        tasks = None if self.tasks is None else held_out[: self.tasks]
        ev = trainer.evaluate(tasks=tasks, steps=self.steps, episodes=self.episodes, seed=self.seed)
        metrics.update({f"{self.prefix}/return_step{k}": float(r) for k, r in enumerate(ev.mean)})
        return None


class StopOnNoImprovement(Callback):
    """Stop when a held-out return has not improved for ``patience`` evaluations in a row (early stopping).

    Args:
        patience: evaluations without improvement that stop the run.
        key: the scalar watched (default ``eval/return_step{K}`` with K the run's ``eval_steps``: the return after
            the last adaptation step of the periodic evaluation, every ``eval_every`` iterations).
        min_delta: how much above the best so far counts as an improvement.
    """

    def __init__(self, patience: int, key: str | None = None, min_delta: float = 0.0) -> None:
        if patience <= 0:
            raise ValueError(f"StopOnNoImprovement: patience must be positive, got {patience}")
        self.patience, self.key, self.min_delta = patience, key, min_delta
        self.best = -math.inf
        self.since_best = 0

    def on_iteration(self, metrics: dict[str, float], trainer: MetaTrainer) -> bool | None:
        key = self.key or f"eval/return_step{trainer.config.eval_steps}"
        if key not in metrics:
            return None
        if metrics[key] > self.best + self.min_delta:
            self.best, self.since_best = metrics[key], 0
            return None
        self.since_best += 1
        return False if self.since_best >= self.patience else None
