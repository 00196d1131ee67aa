"""MAML and FO-MAML: the meta-gradient against finite differences, FO-MAML as MAML without the second-order
term, the outer step, the CLI (bad input, resume, workers), and learning on Navigation2D."""

import json

import numpy as np
import pytest
import torch
from conftest import same_theta, scalar, theta

from metarl.agents import InnerLoop, NativeAgent, RunningNorm
from metarl.checkpoint import load_checkpoint
from metarl.envs import Navigation2DEnv
from metarl.maml import adapt_differentiably, meta_gradient, surrogate, trpo_outer_step
from metarl.train import main

INNER = InnerLoop(agent="vpg", inner_lr=0.5, baseline="linear", gae_lambda=1.0, max_grad_norm=0.0)


@pytest.fixture(scope="module")
def recorded():
    """Navigation2D, 3 tasks, 2 inner steps of 6 episodes, recorded by the agent; θ in double precision."""
    agent = NativeAgent(Navigation2DEnv, (8,), -0.5, threads=1)
    theta = agent.init_params(0)
    tasks = Navigation2DEnv.sample_tasks(3, np.random.default_rng(0))
    res = agent.adapt(theta, tasks, INNER, 2, 6, RunningNorm(2), [(1, t) for t in range(3)], record=True)
    agent.close()
    return {k: v.double() for k, v in theta.items()}, res


def _objective(theta, res, logp_old, steps=2):
    return surrogate(adapt_differentiably(theta, res.batches, INNER, steps), res.batches[steps], logp_old)


def test_the_recorded_adaptation_is_the_one_the_agent_ran(recorded):
    theta, res = recorded
    rebuilt = adapt_differentiably({k: v.float() for k, v in theta.items()}, res.batches, INNER, 2)
    for t, params in enumerate(res.params):
        for k in params:
            torch.testing.assert_close(rebuilt[k][t].detach(), params[k], rtol=1e-5, atol=1e-6)


def test_second_order_meta_gradient_equals_finite_differences(recorded):
    theta, res = recorded
    leaf = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
    from metarl.maml import _log_probs

    logp_old = _log_probs(adapt_differentiably(leaf, res.batches, INNER, 2), res.batches[2]).detach()
    grad = meta_gradient(theta, res.batches, INNER, 2)
    rng = torch.Generator().manual_seed(0)
    eps = 1e-5
    for _ in range(4):  # directional derivatives along random directions of the policy's parameters
        v = {k: (torch.randn(x.shape, generator=rng, dtype=x.dtype) if not k.startswith("vf.") else 0 * x)
             for k, x in theta.items()}  # fmt: skip
        plus = _objective({k: theta[k] + eps * v[k] for k in theta}, res, logp_old)
        minus = _objective({k: theta[k] - eps * v[k] for k in theta}, res, logp_old)
        fd = float((plus - minus) / (2 * eps))
        analytic = float(sum((grad[k] * v[k]).sum() for k in theta))
        assert analytic == pytest.approx(fd, rel=1e-5, abs=1e-8)
    fo = meta_gradient(theta, res.batches, INNER, 2, second_order=False)
    assert max(float((fo[k] - grad[k]).abs().max()) for k in theta) > 1e-4  # the second-order term matters here


def test_fomaml_is_maml_without_the_second_order_term(recorded):
    """K = 1, one task: ∇J_MAML = (I − α ∇²L(θ)) ∇J_FO, with the Hessian-vector product computed independently."""
    theta, res = recorded
    one = [type(b)(*(getattr(b, f)[:1] for f in b.__dataclass_fields__)) for b in res.batches]
    full = meta_gradient(theta, one, INNER, 1)
    fo = meta_gradient(theta, one, INNER, 1, second_order=False)
    names = [k for k in theta if not k.startswith("vf.")]
    from metarl.agents.vpg import vpg_loss

    def inner_loss(*flat):
        p = {**{k: v.unsqueeze(0) for k, v in theta.items()}, **{n: x.unsqueeze(0) for n, x in zip(names, flat)}}
        return vpg_loss(
            p, type(one[0])(*(getattr(one[0], f).double() for f in one[0].__dataclass_fields__)), INNER
        ).sum()

    _, hv = torch.autograd.functional.hvp(inner_loss, tuple(theta[n] for n in names), tuple(fo[n] for n in names))
    for n, h in zip(names, hv):
        torch.testing.assert_close(full[n], fo[n] - INNER.inner_lr * h, rtol=1e-7, atol=1e-10)


def test_the_outer_step_stays_in_its_trust_region_and_improves_the_surrogate(recorded):
    theta, res = recorded
    out = trpo_outer_step({k: v.float() for k, v in theta.items()}, res.batches, INNER, 2, max_kl=0.01)
    assert 0 < out.fraction <= 1 and out.backtracks >= 0
    assert 0 < out.kl <= 0.01 and out.surrogate_gain > 0 and out.meta_grad_norm > 0
    assert all(torch.equal(out.theta[k], theta[k].float()) for k in theta if k.startswith("vf."))  # no meta-gradient


# ---- the command line ---------------------------------------------------------------------------
TINY = ["--env", "Navigation2D", "--meta-learner", "maml", "--meta-iters", "2", "--meta-batch", "4"]
TINY += ["--episodes-per-step", "4", "--eval-every", "2", "--eval-tasks", "2", "--eval-steps", "1", "--hidden", "16"]
TINY += ["--quiet"]


@pytest.fixture(scope="module")
def maml_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("maml") / "run"
    assert main([*TINY, "--workers", "1", "--run-dir", str(run)]) == 0
    return run


def test_maml_run_records_its_meta_learner_and_logs_its_scalars(maml_run):
    doc = json.loads((maml_run / "config.json").read_text())
    assert doc["config"]["meta_learner"] == "maml" and doc["config"]["inner"]["agent"] == "vpg"
    assert doc["preset"]["baseline"] == "linear"  # MAML's preset applied
    state = load_checkpoint(maml_run / "checkpoints" / "latest.pt")
    assert state["config"]["meta_learner"] == "maml" and state["iteration"] == 2
    for tag in ("maml/outer_kl", "maml/line_search_backtracks", "meta/grad_norm", "eval/return_step1"):
        assert scalar(maml_run, tag), tag
    assert all(0 <= v <= 0.01 for _, v in scalar(maml_run, "maml/outer_kl"))


def test_maml_gives_the_same_parameters_for_any_number_of_workers_and_resumes_bit_exactly(maml_run, tmp_path):
    two = tmp_path / "two"
    assert main([*TINY, "--workers", "2", "--run-dir", str(two)]) == 0
    assert same_theta(theta(two), theta(maml_run))
    resumed = tmp_path / "resumed"
    assert main([*TINY, "--workers", "1", "--meta-iters", "1", "--run-dir", str(resumed)]) == 0
    assert main(["--resume", str(resumed), "--meta-iters", "2", "--quiet"]) == 0
    assert same_theta(theta(resumed), theta(maml_run))


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--meta-learner", "maml", "--agent", "ppo"],
            "--meta-learner maml differentiates through VPG inner steps only",
        ),
        (["--meta-learner", "fomaml", "--agent", "sb3-ppo"], "(stable-baselines3 takes its steps inside SB3)"),
        (
            ["--meta-learner", "maml", "--baseline", "value"],
            "--meta-learner maml needs advantages fitted on each batch",
        ),
        (["--meta-learner", "reptiles"], "argument --meta-learner: invalid choice: 'reptiles'"),
    ],
)
def test_bad_meta_learner_requests_are_one_line_errors(tmp_path, capsys, flags, message):
    run = tmp_path / "run"
    try:
        code = main(["--env", "Navigation2D", *flags, "--run-dir", str(run)])
    except SystemExit as e:  # argparse's own checks
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not run.exists()


def test_resume_with_another_meta_learner_is_refused(maml_run, capsys):
    before = {p: p.read_bytes() for p in maml_run.rglob("*") if p.is_file()}
    assert main(["--resume", str(maml_run), "--meta-learner", "reptile"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--resume keeps the run's configuration" in err and "(got --meta-learner)" in err and "\n" not in err
    assert {p: p.read_bytes() for p in maml_run.rglob("*") if p.is_file()} == before


@pytest.mark.slow
def test_maml_improves_post_adaptation_return_on_navigation(tmp_path):
    run = tmp_path / "run"
    args = ["--env", "Navigation2D", "--meta-learner", "maml", "--meta-iters", "15", "--meta-batch", "20"]
    args += ["--episodes-per-step", "20", "--eval-every", "15", "--eval-tasks", "20", "--workers", "1", "--quiet"]
    assert main([*args, "--run-dir", str(run)]) == 0
    post = [v for _, v in scalar(run, "eval/return_step1")]
    assert post[-1] > post[0] + 5, post
