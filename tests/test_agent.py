import numpy as np
import pytest
import torch

from metarl.agents import InnerLoop, NativeAgent, RunningNorm
from metarl.agents.networks import init_params, mlp, stack, unstack
from metarl.envs import HalfCheetahVelEnv, Navigation2DEnv


def test_stacked_mlp_equals_each_task_evaluated_alone():
    p = init_params(5, 2, (8, 8), -0.5, seed=0)
    s = stack(p, 3)
    with torch.no_grad():
        s["pi.0.w"][1] += 0.5  # make task 1 differ
    x = torch.randn(3, 4, 5)
    out = mlp(s, "pi", x)
    for t, single in enumerate(unstack(s)):
        assert torch.allclose(out[t], mlp(single, "pi", x[t]), atol=1e-6)


def test_running_norm_matches_numpy_moments():
    data = np.random.default_rng(0).normal(3.0, 2.0, size=(1000, 4))
    norm = RunningNorm(4)
    for chunk in np.array_split(data, 7):
        t = torch.from_numpy(chunk)
        norm.update(t.sum(0), t.pow(2).sum(0), len(chunk))
    assert np.allclose(norm.mean.numpy(), data.mean(0), atol=1e-3)
    assert np.allclose(norm.var.numpy(), data.var(0), rtol=1e-3)


@pytest.mark.parametrize("family", [Navigation2DEnv, HalfCheetahVelEnv])
def test_adaptation_does_not_depend_on_how_tasks_are_batched(family):
    agent = NativeAgent(family, (64, 64), -0.5, threads=1)
    inner = InnerLoop(ppo_epochs=2, minibatches=2)
    theta = agent.init_params(0)
    norm = RunningNorm(agent.obs_dim)
    tasks = family.sample_tasks(4, np.random.default_rng(0))
    seeds = [(5, t) for t in range(4)]
    together = agent.adapt(theta, tasks, inner, 2, 2, norm, seeds)
    first = agent.adapt(theta, tasks[:2], inner, 2, 2, norm, seeds[:2])
    second = agent.adapt(theta, tasks[2:], inner, 2, 2, norm, seeds[2:])
    alone = agent.adapt(theta, tasks[3:], inner, 2, 2, norm, seeds[3:])  # a batch of one takes other kernels
    for a, b in zip(together.params, first.params + second.params):
        assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(torch.equal(together.params[3][k], alone.params[0][k]) for k in theta)
    assert torch.equal(together.returns, torch.cat([first.returns, second.returns], 1))
    assert together.env_steps == 4 * 2 * 3 * family.horizon


def test_adapt_leaves_theta_unchanged_and_moves_the_copies():
    agent = NativeAgent(Navigation2DEnv, (64, 64), -0.5)
    theta = agent.init_params(0)
    before = {k: v.clone() for k, v in theta.items()}
    tasks = Navigation2DEnv.sample_tasks(2, np.random.default_rng(0))
    res = agent.adapt(theta, tasks, InnerLoop(), 1, 5, RunningNorm(2), [0, 1])
    assert all(torch.equal(theta[k], before[k]) for k in theta)
    assert any(not torch.equal(res.params[0][k], theta[k]) for k in theta)
    assert res.returns.shape == (2, 2)


@pytest.mark.parametrize("algo, lr", [("ppo", 1e-2), ("vpg", 0.05), ("trpo", 1e-2)])
def test_inner_loop_learns_navigation(algo, lr):
    """Navigation2D from scratch: a few updates of 20 episodes reliably raise the return."""
    agent = NativeAgent(Navigation2DEnv, (64, 64), -0.5)
    theta = agent.init_params(0)
    tasks = Navigation2DEnv.sample_tasks(8, np.random.default_rng(3))
    inner = InnerLoop(agent=algo, inner_lr=lr, target_kl=0.05)
    res = agent.adapt(theta, tasks, inner, 4, 20, RunningNorm(2), [(9, t) for t in range(8)])
    curve = res.returns.mean(1)
    assert curve[-1] > curve[0] + 10, curve.tolist()


@pytest.mark.parametrize("max_kl", [0.01, 0.1])
def test_trpo_step_stays_in_its_trust_region_per_task(max_kl):
    """Each task's step has mean KL(old || new) within 1.5 max_kl (the line search's bound), and a larger
    region moves the policy further."""
    from metarl.agents.sampler import collect

    agent = NativeAgent(HalfCheetahVelEnv, (16,), -0.5, threads=1)
    theta = agent.init_params(0)
    norm = RunningNorm(agent.obs_dim)
    tasks = HalfCheetahVelEnv.sample_tasks(3, np.random.default_rng(1))
    res = agent.adapt(theta, tasks, InnerLoop(agent="trpo", target_kl=max_kl), 1, 2, norm, [(4, t) for t in range(3)])
    assert 0 < res.stats["adapt/trpo_step_fraction"] <= 1
    # the KL on fresh states from the old policy, which the step was bounded on in expectation
    env = agent._env(3 * 2)
    env.set_tasks([t for t in tasks for _ in range(2)])
    rngs = [np.random.default_rng(i) for i in range(6)]
    gens = [torch.Generator().manual_seed(i) for i in range(3)]
    ro = collect(stack(theta, 3), norm, env, 2, rngs, gens)
    obs = ro.obs.reshape(3, -1, agent.obs_dim)
    with torch.no_grad():
        old = stack(theta, 3)
        new = {k: torch.stack([p[k] for p in res.params]) for k in theta}
        m0, m1 = mlp(old, "pi", obs), mlp(new, "pi", obs)
        s0, s1 = old["log_std"].unsqueeze(1), new["log_std"].unsqueeze(1)
        kl = (s1 - s0 + (torch.exp(2 * s0) + (m0 - m1) ** 2) / (2 * torch.exp(2 * s1)) - 0.5).sum(-1).mean(1)
    assert (kl > 0.1 * max_kl).all() and (kl < 3 * max_kl).all(), kl.tolist()
