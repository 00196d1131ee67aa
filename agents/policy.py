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
    hidden: Sequence[int] = (64, 64),
    log_std_init: float = -0.5,
    seed: int = 0,
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


class RunningNorm:
    """Running mean/variance of observations (Chan et al. parallel update), in float64.

    It is meta-level state: updated by the trainer from every observation of a meta-iteration, and
    frozen while adapting (inner updates see a fixed input transform, so adaptation at meta-test time
    is the same function of the meta-parameters as at meta-training time). Not interpolated by Reptile.
    """

    def __init__(self, dim: int, clip: float = 10.0) -> None:
        self.mean = torch.zeros(dim, dtype=torch.float64)
        self.var = torch.ones(dim, dtype=torch.float64)
        self.count = torch.tensor(1e-4, dtype=torch.float64)
        self.clip = clip

    def update(self, total: torch.Tensor, total_sq: torch.Tensor, count: float) -> None:
        """Merge a batch given by its sum, sum of squares and count."""
        if count <= 0:
            return
        b_mean = total / count
        b_var = (total_sq / count - b_mean.pow(2)).clamp_min(0.0)
        delta = b_mean - self.mean
        tot = self.count + count
        self.mean = self.mean + delta * count / tot
        m2 = self.var * self.count + b_var * count + delta.pow(2) * self.count * count / tot
        self.var = m2 / tot
        self.count = tot

    def __call__(self, obs: torch.Tensor) -> torch.Tensor:
        mean, std = self.mean.to(obs.dtype), torch.sqrt(self.var + 1e-8).to(obs.dtype)
        return ((obs - mean) / std).clamp(-self.clip, self.clip)

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "var": self.var.clone(), "count": self.count.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean = state["mean"].to(torch.float64).clone()
        self.var = state["var"].to(torch.float64).clone()
        self.count = state["count"].to(torch.float64).clone()
