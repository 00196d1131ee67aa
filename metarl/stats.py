"""Bootstrap confidence intervals for adaptation curves ``x[seed, k, task]`` (plain numpy)."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(
    returns: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and bootstrap confidence band of ``returns[seed, k, task]`` over seeds and tasks.

    Resamples seeds with replacement, then tasks within each drawn seed (hierarchical), so the band
    covers the variation between meta-training seeds as well as between tasks.

    Returns:
        ``(mean, low, high)``, each of shape ``(K + 1,)``.
    """
    rng = np.random.default_rng(seed)
    n_seeds, _, n_tasks = returns.shape
    s_idx = rng.integers(0, n_seeds, size=(resamples, n_seeds))
    t_idx = rng.integers(0, n_tasks, size=(resamples, n_seeds, n_tasks))
    # draws[b, s, k, t] = returns[s_idx[b, s], k, t_idx[b, s, t]]
    draws = returns[s_idx[:, :, None, None], np.arange(returns.shape[1])[None, None, :, None], t_idx[:, :, None, :]]
    means = draws.mean(axis=(1, 3))
    alpha = (1.0 - level) / 2.0
    return returns.mean(axis=(0, 2)), np.quantile(means, alpha, axis=0), np.quantile(means, 1 - alpha, axis=0)


def paired_difference_ci(
    a: np.ndarray, b: np.ndarray, resamples: int = 2000, seed: int = 0, level: float = 0.95
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean and bootstrap band of ``mean(a) - mean(b)`` for curves on the same tasks, ``x[seed, k, task]``.

    The tasks are shared, so each resample draws one set of task indices for both (paired), and the
    seeds of each side independently: the band covers seed-to-seed variation on both sides and task
    sampling, without counting the spread between easy and hard tasks twice.

    Returns:
        ``(difference, low, high)``, each of shape ``(K + 1,)``.
    """
    rng = np.random.default_rng(seed)
    n_tasks = a.shape[2]
    t_idx = rng.integers(0, n_tasks, size=(resamples, n_tasks))
    sa = rng.integers(0, a.shape[0], size=(resamples, a.shape[0]))
    sb = rng.integers(0, b.shape[0], size=(resamples, b.shape[0]))
    ks = np.arange(a.shape[1])[None, None, :, None]

    def means(x: np.ndarray, s_idx: np.ndarray) -> np.ndarray:  # (resamples, K + 1)
        return x[s_idx[:, :, None, None], ks, t_idx[:, None, None, :]].mean(axis=(1, 3))

    diffs = means(a, sa) - means(b, sb)
    alpha = (1.0 - level) / 2.0
    return (
        a.mean(axis=(0, 2)) - b.mean(axis=(0, 2)),
        np.quantile(diffs, alpha, axis=0),
        np.quantile(diffs, 1 - alpha, axis=0),
    )
