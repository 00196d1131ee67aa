"""Gaussian MLP policy and value baseline, as plain parameter dictionaries.

A parameter set is a ``dict[str, Tensor]``: what Reptile interpolates and what checkpoints store. The
agent adapts many tasks at once by *stacking* parameter sets along a leading task dimension ``T``:
every tensor gets shape ``(T, ...)`` and one batched matmul (``baddbmm``) evaluates all ``T`` policies
on their own observations. Gradients of a sum of per-task losses are per-task gradients, and Adam is
element-wise, so one optimiser over stacked tensors is exactly ``T`` independent optimisers.

Layout: ``pi.{i}.w`` / ``pi.{i}.b`` (policy mean MLP), ``log_std`` (state-independent), ``vf.{i}.w`` /
``vf.{i}.b`` (value MLP). Weights are stored ``(in, out)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

Params = dict[str, torch.Tensor]


def init_params(
    obs_dim: int,
    act_dim: int,
    hidden: Sequence[int],
    log_std_init: float,
    seed: int,
) -> Params:
    """Fresh meta-parameters: orthogonal init (gain √2 hidden, 0.01 policy head, 1 value head).

    Args:
        obs_dim: observation size.
        act_dim: action size.
        hidden: hidden layer widths, shared by the policy and the value MLP.
        log_std_init: initial log standard deviation of the Gaussian policy.
        seed: seed of the initialisation.
    """
    gen = torch.Generator().manual_seed(int(seed))
    params: Params = {}
    for prefix, out_dim, head_gain in (("pi", act_dim, 0.01), ("vf", 1, 1.0)):
        sizes = [obs_dim, *hidden, out_dim]
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            w = torch.empty(n_out, n_in)
            gain = head_gain if i == len(sizes) - 2 else math.sqrt(2.0)
            torch.nn.init.orthogonal_(w, gain=gain, generator=gen)
            params[f"{prefix}.{i}.w"] = w.t().contiguous()
            params[f"{prefix}.{i}.b"] = torch.zeros(n_out)
    params["log_std"] = torch.full((act_dim,), float(log_std_init))
    return params


def num_layers(params: Params, prefix: str) -> int:
    return sum(1 for k in params if k.startswith(prefix + ".") and k.endswith(".w"))


def mlp(params: Params, prefix: str, x: torch.Tensor) -> torch.Tensor:
    """Evaluate MLP ``prefix`` (tanh hidden layers); stacked if ``x`` is ``(T, B, in)``."""
    n = num_layers(params, prefix)
    for i in range(n):
        w, b = params[f"{prefix}.{i}.w"], params[f"{prefix}.{i}.b"]
        if x.dim() != 3:
            x = torch.addmm(b, x, w)
        elif w.shape[-1] == 1:
            # A one-column bmm takes a different (gemv) kernel when T == 1, whose rounding differs;
            # multiply-and-sum keeps each task's result independent of how many tasks share the batch.
            x = (x * w.transpose(-1, -2)).sum(-1, keepdim=True) + b.unsqueeze(-2)
        else:
            x = torch.baddbmm(b.unsqueeze(-2), x, w)
        if i < n - 1:
            x = torch.tanh(x)
    return x


def stack(params: Params, n: int) -> Params:
    """``n`` independent copies of ``params`` stacked along a new leading dim, requiring grad."""
    return {k: v.detach().unsqueeze(0).repeat(n, *([1] * v.dim())).requires_grad_(True) for k, v in params.items()}


def unstack(params: Params) -> list[Params]:
    """The inverse of :func:`stack`: one detached parameter set per task."""
    n = next(iter(params.values())).shape[0]
    return [{k: v[i].detach().clone() for k, v in params.items()} for i in range(n)]


LOG_2PI = math.log(2.0 * math.pi)


def gaussian_log_prob(mean: torch.Tensor, log_std: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Log-density of a diagonal Gaussian, summed over the last (action) dim."""
    z = (actions - mean) * torch.exp(-log_std)
    return (-0.5 * z.pow(2) - log_std - 0.5 * LOG_2PI).sum(-1)
