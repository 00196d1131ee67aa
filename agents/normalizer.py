"""The observation normaliser: meta-level state, frozen while adapting."""

from __future__ import annotations

import torch


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
