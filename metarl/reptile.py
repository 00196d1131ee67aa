"""Batched Reptile (Nichol, Achiam & Schulman 2018) as pure parameter arithmetic.

    θ ← θ + ε · (mean_i θ'_i − θ)

where θ'_i are the parameters adapted to task i of a meta-batch. ε anneals linearly from
``meta_step`` to ``meta_step_final`` over the run. This module knows parameter sets
(``dict[str, Tensor]``), not environments or agents, and never writes anything.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

import torch

Params = dict[str, torch.Tensor]


def mean(param_sets: Sequence[Mapping[str, torch.Tensor]]) -> Params:
    """Element-wise mean of parameter sets with the same keys and shapes."""
    if not param_sets:
        raise ValueError("mean of no parameter sets")
    keys = list(param_sets[0])
    for p in param_sets[1:]:
        if list(p) != keys:
            raise ValueError("parameter sets have different keys")
    return {k: torch.stack([p[k].detach() for p in param_sets]).mean(0) for k in keys}


def interpolate(old: Mapping[str, torch.Tensor], new: Mapping[str, torch.Tensor], eps: float) -> Params:
    """``old + eps · (new − old)`` per tensor: eps=0 keeps ``old``, eps=1 gives ``new``."""
    if list(old) != list(new):
        raise ValueError("parameter sets have different keys")
    return {k: old[k].detach() + eps * (new[k].detach() - old[k].detach()) for k in old}


def global_norm(params: Mapping[str, torch.Tensor]) -> float:
    """Euclidean norm over all tensors."""
    return float(torch.sqrt(sum((v.detach().double() ** 2).sum() for v in params.values())))


def linear_schedule(start: float, final: float, iteration: int, total: int) -> float:
    """``start`` at iteration 0, moving linearly to ``final`` at iteration ``total`` (supervised-reptile)."""
    frac = min(max(iteration / max(total, 1), 0.0), 1.0)
    return (1.0 - frac) * start + frac * final


@dataclasses.dataclass(frozen=True)
class ReptileStats:
    step_size: float  # ε used
    update_norm: float  # ‖θ_new − θ‖
    adapted_distance: float  # ‖mean θ' − θ‖ (how far adaptation moved on average)


def reptile_step(
    theta: Mapping[str, torch.Tensor], adapted: Sequence[Mapping[str, torch.Tensor]], eps: float
) -> tuple[Params, ReptileStats]:
    """One batched Reptile update.

    Args:
        theta: current meta-parameters.
        adapted: parameters adapted from ``theta``, one set per task of the meta-batch.
        eps: outer step size ε.

    Returns:
        The new meta-parameters and the step's statistics.
    """
    target = mean(adapted)
    new = interpolate(theta, target, eps)
    direction = {k: target[k] - theta[k].detach() for k in theta}
    dist = global_norm(direction)
    return new, ReptileStats(step_size=float(eps), update_norm=abs(eps) * dist, adapted_distance=dist)
