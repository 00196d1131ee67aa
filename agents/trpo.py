"""TRPO: one natural-gradient step per batch whose size is set by a KL trust region, per task.

Conjugate gradient on Fisher-vector products (the Hessian of the mean KL) solves ``F x = g``; the full
step ``x · sqrt(2 δ / xᵀFx)`` has mean KL ``δ = target_kl`` to second order; a backtracking line search
then halves it until the surrogate improves and the measured KL stays within the tolerance OpenAI
baselines' TRPO uses, ``1.5 δ`` (the quadratic model is only approximate). The step moves the policy a
fixed distance in KL whatever the gradient's scale. The value baseline is fitted after the step, as for
VPG. Every scalar of the solver is a vector over tasks: tasks are independent blocks of the stacked
parameters, so one autograd pass gives every task's gradient and Fisher-vector product at once.

``cg_damping`` adds ``λI`` to the Fisher matrix: TRPO's usual 0.1 gives the natural gradient, while a large
``λ`` turns the step toward the plain gradient's direction, still sized to ``δ`` (``(F + λI)⁻¹g → g/λ``). At
meta-test time, on a 20-episode batch, the natural gradient of a few thousand parameters is mostly noise in the
directions the batch barely constrains, which ``F⁻¹`` amplifies; the HalfCheetah presets adapt with ``λ = 10``.

Two meta-test options (issue 15): ``step_decay`` shrinks ``δ`` geometrically from one step to the next,
and ``holdout`` computes the step on part of the batch's episodes and lets the line search keep only a
fraction that also raises the surrogate on the held-out rest, a check against a step that overfits the
batch's noise (importance-weighted on episodes the step never saw; no extra episodes are sampled).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

from .inner_loop import InnerLoop
from .networks import Params, gaussian_log_prob, mlp
from .update import UpdateBatch, ValueFit, split_params, step_size

Vectors = list[torch.Tensor]  # one tensor per parameter, leading dim T (tasks)

#: The line search accepts a step whose measured mean KL is at most this multiple of ``target_kl``.
KL_TOLERANCE = 1.5


def dot(a: Sequence[torch.Tensor], b: Sequence[torch.Tensor]) -> torch.Tensor:
    """Per-task inner product of two parameter-shaped vectors, ``(T,)``."""
    return sum((x * y).flatten(1).sum(1) for x, y in zip(a, b))


def scale(v: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """``v`` ``(T,)`` times each task's slice of ``x``."""
    return v.view(-1, *([1] * (x.dim() - 1))) * x


def conjugate_gradient(matvec: Callable[[Vectors], Vectors], g: Vectors, iters: int) -> Vectors:
    """Approximate ``A⁻¹ g`` per task by ``iters`` conjugate-gradient iterations (``A`` symmetric positive definite).

    Args:
        matvec: ``v -> A v`` for parameter-shaped vectors.
        g: the right-hand side.
        iters: iterations (the exact solution after ``dim`` of them, in exact arithmetic).
    """
    x = [torch.zeros_like(t) for t in g]
    r = [t.clone() for t in g]
    d = [t.clone() for t in g]
    rr = dot(r, r)
    for _ in range(iters):
        fd = matvec(d)
        alpha = rr / dot(d, fd).clamp_min(1e-12)
        x = [xi + scale(alpha, di) for xi, di in zip(x, d)]
        r = [ri - scale(alpha, fi) for ri, fi in zip(r, fd)]
        rr_new = dot(r, r)
        d = [ri + scale(rr_new / rr.clamp_min(1e-20), di) for ri, di in zip(r, d)]
        rr = rr_new
    return x


def line_search(
    set_fraction: Callable[[torch.Tensor | float], None],
    accept: Callable[[], torch.Tensor],
    tasks: int,
    steps: int,
) -> torch.Tensor:
    """Backtracking per task: the largest fraction ``0.5**j``, ``j < steps``, that ``accept`` allows (0: none).

    Args:
        set_fraction: moves the parameters to ``old + fraction · full_step`` (fraction a float or ``(T,)``).
        accept: after ``set_fraction``, which tasks accept the current step, ``(T,)`` bool.
        tasks: ``T``.
        steps: halvings tried.

    Returns:
        The chosen fraction per task; the parameters are left at it.
    """
    chosen = torch.zeros(tasks)
    for j in range(steps):
        frac = 0.5**j
        set_fraction(frac)
        ok = accept() & (chosen == 0)
        chosen[ok] = frac
        if bool((chosen > 0).all()):
            break
    set_fraction(chosen)
    return chosen


class TRPO:
    """The KL-bounded natural-gradient policy step, then the value fit."""

    def __init__(self, inner: InnerLoop, params: Params) -> None:
        self.c, self.params = inner, params
        self.pi, vf = split_params(params)
        self.value = ValueFit(params, vf, inner)
        self.step = 0

    def update(self, batch: UpdateBatch, gens: Sequence[torch.Generator]) -> tuple[float, float, dict[str, float]]:
        c, p, pi = self.c, self.params, self.pi
        target_kl = step_size(c.target_kl, c, self.step)
        self.step += 1
        obs, act, alive = batch.obs, batch.actions, batch.alive
        # the step is computed on ``fit``; with --holdout the line search also checks it on the held-out episodes
        fit = alive if c.holdout == 0 else alive * (1.0 - batch.held_out)
        check = alive * batch.held_out
        n = alive.sum(1).clamp_min(1.0)
        with torch.no_grad():
            mean_old = mlp(p, "pi", obs)
            log_std_old = p["log_std"].detach().clone().unsqueeze(1)
        old = [t.detach().clone() for t in pi]

        def per_task(x: torch.Tensor, mask: torch.Tensor = alive) -> torch.Tensor:  # masked mean over samples
            return (x * mask).sum(1) / (n if mask is alive else mask.sum(1).clamp_min(1.0))

        def surrogate(mask: torch.Tensor = fit) -> torch.Tensor:
            logp = gaussian_log_prob(mlp(p, "pi", obs), p["log_std"].unsqueeze(1), act)
            entropy = (p["log_std"] + 0.5 * (1.0 + np.log(2 * np.pi))).sum(-1)
            return per_task(torch.exp(logp - batch.log_probs) * batch.advantages, mask) + c.ent_coef * entropy

        def kl(mask: torch.Tensor = alive) -> torch.Tensor:  # mean KL(old || new) per task
            mean, log_std = mlp(p, "pi", obs), p["log_std"].unsqueeze(1)
            d = (
                log_std
                - log_std_old
                + (torch.exp(2 * log_std_old) + (mean_old - mean).pow(2)) / (2 * torch.exp(2 * log_std))
            )
            return per_task((d - 0.5).sum(-1), mask)

        def fvp(v: Vectors) -> Vectors:
            grads = torch.autograd.grad(kl(fit).sum(), pi, create_graph=True)
            hv = torch.autograd.grad(dot(grads, v).sum(), pi)
            return [h.detach() + c.cg_damping * x for h, x in zip(hv, v)]

        surr0 = surrogate()
        g = [x.detach() for x in torch.autograd.grad(surr0.sum(), pi)]
        surr0 = surr0.detach()
        with torch.no_grad():
            held0 = surrogate(check) if c.holdout > 0 else None
        x = conjugate_gradient(fvp, g, c.cg_iters)
        shs = dot(x, fvp(x)).clamp_min(1e-12)
        full = [scale(torch.sqrt(2 * target_kl / shs), xi) for xi in x]

        def set_fraction(frac: torch.Tensor | float) -> None:
            for t, t0, s in zip(pi, old, full):
                t.copy_(t0 + (scale(frac, s) if isinstance(frac, torch.Tensor) else frac * s))

        def accept() -> torch.Tensor:
            ok = (kl() <= KL_TOLERANCE * target_kl) & (surrogate() > surr0)
            return ok & (surrogate(check) > held0) if c.holdout > 0 else ok

        with torch.no_grad():
            chosen = line_search(set_fraction, accept, obs.shape[0], c.line_search_steps)
        # the mean fraction of the full trust-region step the line search kept (0: no step)
        return float(-surr0.mean()), self.value.fit(batch), {"adapt/trpo_step_fraction": float(chosen.mean())}
