"""MAML and first-order MAML (Finn et al. 2017): the meta-gradient through the inner VPG steps, a TRPO outer step.

The agent samples, adapts and records every batch (``adapt(..., record=True)``, in worker processes or Ray
actors like Reptile's); this module then rebuilds the adaptation as a differentiable function of θ from the
recorded batches, for every task at once (θ expanded along a task dimension, as the native agent stacks it):

    θ'_t(θ) = θ − α ∇_θ L_t(θ)            L_t: VPG loss of task t's batch k (agents/vpg.py), K times
    J(θ)    = mean_t  E[ π_{θ'_t(θ)}(a|s) / π_{θ'_t(θ_old)}(a|s) · A ]     on the post-adaptation batch

and takes a TRPO step on J: conjugate gradient on Hessian-vector products of the mean KL between the
post-adaptation policies at θ_old and at θ (the Fisher through the adaptation), the step scaled to
``outer_kl``, then a backtracking line search that keeps J improving and the KL within ``outer_kl``
(pytorch-maml-rl's outer step: damping 1e-5, 15 halvings). ``first_order=True`` (FO-MAML) drops the second
derivatives: the inner gradients are constants, so ∇J is the gradient at the adapted parameters.

The inner step's advantages come from the batch alone (the linear feature baseline fitted on it, MAML's
choice; ``--baseline linear`` in the preset), so they are constants of the meta-objective; the value net is
not used. The adaptation rebuilt here is the one the agent ran (same loss, same clipping), up to float
rounding of the two computations.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

import torch

from .agents.inner_loop import InnerLoop
from .agents.networks import Params, gaussian_log_prob, mlp
from .agents.trpo import conjugate_gradient, dot, line_search
from .agents.update import UpdateBatch, step_size
from .agents.vpg import vpg_loss

#: Damping of the outer Hessian-vector products and the line search's halvings (pytorch-maml-rl's values).
CG_DAMPING = 1e-5
CG_ITERS = 10
LINE_SEARCH_STEPS = 15


def _as(batch: UpdateBatch, dtype: torch.dtype) -> UpdateBatch:
    return UpdateBatch(*(getattr(batch, f.name).to(dtype) for f in dataclasses.fields(UpdateBatch)))


def _policy_names(theta: Params) -> list[str]:
    return [k for k in theta if not k.startswith("vf.")]


def adapt_differentiably(
    theta: Params, batches: Sequence[UpdateBatch], inner: InnerLoop, steps: int, second_order: bool = True
) -> Params:
    """θ'(θ) after ``steps`` VPG steps on the recorded batches, stacked over tasks ``(T, ...)``.

    Args:
        theta: the meta-parameters (leaf tensors; gradients flow to them).
        batches: the recorded batches; ``batches[k]`` is what inner step ``k`` consumed.
        inner: the VPG inner loop (``inner_lr``, ``max_grad_norm``, ``ent_coef``).
        steps: inner steps K.
        second_order: keep the inner gradients in the graph (MAML); False: constants (FO-MAML).
    """
    dtype = next(iter(theta.values())).dtype
    tasks = batches[0].obs.shape[0]
    # the inner step needs gradients even where θ does not require them (evaluating a candidate θ)
    theta = {k: v if v.requires_grad else v.detach().requires_grad_(True) for k, v in theta.items()}
    p = {k: v.unsqueeze(0).expand(tasks, *v.shape) for k, v in theta.items()}
    names = _policy_names(theta)
    for k in range(steps):
        loss = vpg_loss(p, _as(batches[k], dtype), inner).sum()
        grads = torch.autograd.grad(loss, [p[n] for n in names], create_graph=second_order)
        if inner.max_grad_norm > 0:  # the agent's per-task clip, as a function
            sq = sum(g.flatten(1).pow(2).sum(1) for g in grads)
            factor = (inner.max_grad_norm / (sq.sqrt() + 1e-6)).clamp(max=1.0)
            grads = [g * factor.view(-1, *([1] * (g.dim() - 1))) for g in grads]
        lr = step_size(inner.inner_lr, inner, k)
        p = {**p, **{n: p[n] - lr * g for n, g in zip(names, grads)}}
    return p


def _per_task_mean(x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    return (x * alive).sum(1) / alive.sum(1).clamp_min(1.0)


def surrogate(adapted: Params, batch: UpdateBatch, logp_old: torch.Tensor) -> torch.Tensor:
    """The post-adaptation surrogate ``mean_t E[ratio · A]`` (a scalar; higher is better)."""
    b = _as(batch, logp_old.dtype)
    return _per_task_mean(torch.exp(_log_probs(adapted, b) - logp_old) * b.advantages, b.alive).mean()


def mean_kl(old: tuple[torch.Tensor, torch.Tensor], adapted: Params, batch: UpdateBatch) -> torch.Tensor:
    """Mean over tasks and live samples of KL(π_old ‖ π_adapted), ``old`` = (mean, log_std) detached."""
    mean_old, log_std_old = old
    b = _as(batch, mean_old.dtype)
    mean, log_std = mlp(adapted, "pi", b.obs), adapted["log_std"].unsqueeze(1)
    d = log_std - log_std_old + (torch.exp(2 * log_std_old) + (mean_old - mean).pow(2)) / (2 * torch.exp(2 * log_std))
    return _per_task_mean((d - 0.5).sum(-1), b.alive).mean()


def meta_gradient(
    theta: Params, batches: Sequence[UpdateBatch], inner: InnerLoop, steps: int, second_order: bool = True
) -> Params:
    """∇_θ J at θ (the meta-gradient MAML steps along; FO-MAML's with ``second_order=False``)."""
    leaf = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    adapted = adapt_differentiably(leaf, batches, inner, steps, second_order)
    logp_old = _log_probs(adapted, batches[steps]).detach()
    names = _policy_names(leaf)
    grads = torch.autograd.grad(surrogate(adapted, batches[steps], logp_old), [leaf[n] for n in names])
    return {**{k: torch.zeros_like(v) for k, v in leaf.items()}, **dict(zip(names, grads))}


def _log_probs(adapted: Params, batch: UpdateBatch) -> torch.Tensor:
    b = _as(batch, next(iter(adapted.values())).dtype)
    return gaussian_log_prob(mlp(adapted, "pi", b.obs), adapted["log_std"].unsqueeze(1), b.actions)


@dataclasses.dataclass
class OuterStep:
    """A TRPO outer step's result and what TensorBoard shows of it."""

    theta: Params
    meta_grad_norm: float
    kl: float  # mean KL of the adapted policies between θ_old and the accepted θ
    fraction: float  # of the full trust-region step the line search kept (0: none)
    backtracks: int
    surrogate_gain: float


def trpo_outer_step(
    theta: Params,
    batches: Sequence[UpdateBatch],
    inner: InnerLoop,
    steps: int,
    max_kl: float,
    second_order: bool = True,
) -> OuterStep:
    """One TRPO step of θ on the post-adaptation surrogate (see the module docstring)."""
    leaf = {k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}
    names = _policy_names(leaf)
    pi = [leaf[n] for n in names]
    valid = batches[steps]
    adapted = adapt_differentiably(leaf, batches, inner, steps, second_order)
    with torch.no_grad():
        old = (mlp(adapted, "pi", _as(valid, pi[0].dtype).obs), adapted["log_std"].unsqueeze(1).clone())
    logp_old = _log_probs(adapted, valid).detach()
    surr0 = surrogate(adapted, valid, logp_old)
    g = torch.autograd.grad(surr0, pi, retain_graph=True)
    grad_kl = torch.autograd.grad(mean_kl(old, adapted, valid), pi, create_graph=True)

    def hvp(v: list[torch.Tensor]) -> list[torch.Tensor]:  # vectors with a leading task dim of 1
        hv = torch.autograd.grad(dot([x.unsqueeze(0) for x in grad_kl], v).sum(), pi, retain_graph=True)
        return [h.unsqueeze(0).detach() + CG_DAMPING * x for h, x in zip(hv, v)]

    g1 = [x.unsqueeze(0).detach() for x in g]
    x = conjugate_gradient(hvp, g1, CG_ITERS)
    shs = float(dot(x, hvp(x)).clamp_min(1e-12))
    full = [xi * math.sqrt(2 * max_kl / shs) for xi in x]
    start = [t.detach().clone() for t in pi]
    surr0 = float(surr0.detach())
    last: dict[str, float] = {"kl": 0.0, "surr": surr0}

    def set_fraction(frac: torch.Tensor | float) -> None:
        f = float(frac) if not isinstance(frac, torch.Tensor) else float(frac[0])
        with torch.no_grad():
            for t, t0, s in zip(pi, start, full):
                t.copy_(t0 + f * s[0])

    def accept() -> torch.Tensor:
        with torch.enable_grad():
            candidate = {k: v.detach() for k, v in leaf.items()}
            adapted_new = adapt_differentiably(candidate, batches, inner, steps, second_order=False)
        with torch.no_grad():
            kl = float(mean_kl(old, adapted_new, valid))
            surr = float(surrogate(adapted_new, valid, logp_old))
        last.update(kl=kl, surr=surr)
        return torch.tensor([surr > surr0 and kl <= max_kl])

    chosen = float(line_search(set_fraction, accept, 1, LINE_SEARCH_STEPS)[0])  # last: the accepted step's values
    backtracks = round(math.log2(1 / chosen)) if chosen > 0 else LINE_SEARCH_STEPS
    return OuterStep(
        theta={k: v.detach().clone() for k, v in leaf.items()},
        meta_grad_norm=float(torch.sqrt(sum((t**2).sum() for t in g))),
        kl=last["kl"] if chosen > 0 else 0.0,
        fraction=chosen,
        backtracks=backtracks,
        surrogate_gain=(last["surr"] - surr0) if chosen > 0 else 0.0,
    )
