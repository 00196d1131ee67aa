"""The inner-loop pieces on their own: GAE, masking after termination, conjugate gradient, per-task gradient
clipping, the inner-loop configuration (flags an algorithm does not read, checkpoint migration)."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from metarl.agents import InnerLoop, NativeAgent, RunningNorm
from metarl.agents.advantage import gae
from metarl.agents.networks import stack
from metarl.agents.sampler import Rollout, collect
from metarl.agents.trpo import conjugate_gradient
from metarl.agents.update import clip_grad_per_task
from metarl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from metarl.config import CONFIG_VERSION, ConfigError, TrainConfig, migrate
from metarl.envs import HopperRandParamsEnv
from metarl.policy import MetaPolicy
from metarl.train import main as train_main


def _rollout(rewards, values, terminated):
    r = torch.tensor([[rewards]], dtype=torch.float32)
    term = torch.tensor([[terminated]], dtype=torch.float32)
    alive = torch.ones_like(r)
    for h in range(1, r.shape[-1]):  # steps after a termination did not happen
        alive[..., h] = alive[..., h - 1] * (1 - term[..., h - 1])
    z = torch.zeros_like(r)
    v = torch.tensor([[values]], dtype=torch.float32)
    return Rollout(z, z, z, r * alive, v, alive, term * alive, z, z, 0)


def test_gae_bootstraps_at_the_time_limit_and_not_at_a_terminal_state():
    """One-step returns by hand (gamma 0.5, lambda 0: the TD target r + gamma V(s'))."""
    rewards, values = [1.0, 2.0, 3.0], [10.0, 20.0, 30.0, 40.0]  # V(s_0..s_3); s_3 is where the horizon cuts
    adv, ret = gae(_rollout(rewards, values, [0, 0, 0]), gamma=0.5, lam=0.0)
    assert ret[0, 0].tolist() == [1 + 0.5 * 20, 2 + 0.5 * 30, 3 + 0.5 * 40]  # time limit: bootstrap from V(s_3)
    adv, ret = gae(_rollout(rewards, values, [0, 1, 0]), gamma=0.5, lam=0.0)
    assert ret[0, 0, :2].tolist() == [1 + 0.5 * 20, 2.0]  # terminal at step 1: no value after it
    assert adv[0, 0, 2] == 0  # the step after termination carries no advantage
    # lambda 1: the discounted return to the end, still cut at the terminal state
    adv, ret = gae(_rollout(rewards, values, [0, 1, 0]), gamma=0.5, lam=1.0)
    assert ret[0, 0, 0].item() == pytest.approx(1 + 0.5 * 2)


def test_sampler_masks_every_step_after_an_episode_terminates():
    """Hopper falls under large actions: after the terminating step, alive is 0 and nothing is counted."""
    agent = NativeAgent(HopperRandParamsEnv, (8,), 1.5, threads=1)  # std e^1.5: it falls within the horizon
    theta = agent.init_params(0)
    env = agent._env(4)
    env.set_tasks(HopperRandParamsEnv.sample_tasks(2, np.random.default_rng(0)) * 2)
    gens = [torch.Generator().manual_seed(i) for i in range(2)]
    ro = collect(
        stack(theta, 2), RunningNorm(agent.obs_dim), env, 2, [np.random.default_rng(i) for i in range(4)], gens
    )
    alive, term = ro.alive.reshape(4, -1), ro.terminated.reshape(4, -1)
    ends = term.argmax(1)
    assert (term.sum(1) == 1).all(), "every episode should have fallen exactly once"
    for i, end in enumerate(ends.tolist()):
        assert alive[i, : end + 1].eq(1).all() and alive[i, end + 1 :].eq(0).all()
        assert ro.rewards.reshape(4, -1)[i, end + 1 :].eq(0).all()
    assert ro.env_steps == ro.obs_count == int((ends + 1).sum())
    assert ro.episode_returns.shape == (2, 2)
    agent.close()


def test_conjugate_gradient_matches_a_dense_solve_per_task():
    torch.manual_seed(0)
    T, n = 3, 6
    m = torch.randn(T, n, n, dtype=torch.float64)
    a = m @ m.transpose(1, 2) + n * torch.eye(n, dtype=torch.float64)  # SPD, one matrix per task
    g = [torch.randn(T, 2, 2, dtype=torch.float64), torch.randn(T, 2, dtype=torch.float64)]  # parameter-shaped

    def flat(v):
        return torch.cat([x.reshape(T, -1) for x in v], 1)

    def matvec(v):
        y = (a @ flat(v).unsqueeze(-1)).squeeze(-1)
        return [y[:, :4].reshape(T, 2, 2), y[:, 4:]]

    x = conjugate_gradient(matvec, g, iters=n)
    expected = torch.linalg.solve(a, flat(g).unsqueeze(-1)).squeeze(-1)
    torch.testing.assert_close(flat(x), expected, rtol=1e-8, atol=1e-10)
    # fewer iterations: an approximation, not the solution
    assert not torch.allclose(flat(conjugate_gradient(matvec, g, iters=2)), expected, atol=1e-6)


def test_gradient_clipping_scales_only_the_tasks_above_the_norm():
    w = torch.zeros(3, 2, 2, requires_grad=True)
    b = torch.zeros(3, 2, requires_grad=True)
    w.grad = torch.tensor([[[3.0, 0.0], [0.0, 0.0]], [[0.1, 0.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]]])
    b.grad = torch.tensor([[0.0, 4.0], [0.0, 0.1], [0.0, 0.0]])  # task 0: norm 5; task 1: norm ~0.14; task 2: 0
    clip_grad_per_task([w, b], max_norm=1.0)
    norms = (w.grad.flatten(1).pow(2).sum(1) + b.grad.pow(2).sum(1)).sqrt()
    assert norms[0].item() == pytest.approx(1.0, abs=1e-5)  # clipped to the norm, direction kept
    assert w.grad[0, 0, 0].item() / b.grad[0, 1].item() == pytest.approx(3 / 4)
    assert w.grad[1, 0, 0].item() == pytest.approx(0.1) and b.grad[1, 1].item() == pytest.approx(0.1)  # untouched
    assert norms[2].item() == 0


# ---- flags that the chosen algorithm does not read ------------------------------------------------
TINY = ["--env", "Navigation2D", "--meta-iters", "1", "--meta-batch", "2", "--episodes-per-step", "2"]
TINY += ["--eval-every", "0", "--eval-tasks", "1", "--workers", "1", "--quiet"]


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--agent", "ppo", "--value-lr", "0.1"], "--value-lr is not used by --agent ppo; it applies to vpg, trpo"),
        (["--agent", "sb3-ppo", "--target-kl", "0.1"], "--target-kl is not used by --agent sb3-ppo"),
        (["--agent", "trpo", "--inner-lr", "0.1"], "--inner-lr is not used by --agent trpo"),
        (["--agent", "ppo", "--adapt-target-kl", "0.5"], "--adapt-target-kl is not used by --agent ppo"),
    ],
)
def test_a_flag_the_algorithm_does_not_read_is_a_one_line_error(tmp_path, capsys, flags, message):
    run = tmp_path / "run"
    assert train_main([*TINY, *flags, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not run.exists()


def test_a_flag_read_only_by_the_meta_test_loop_is_accepted(tmp_path):
    """--target-kl with ppo training and trpo adaptation sets the adaptation's trust region."""
    run = tmp_path / "run"
    flags = ["--agent", "ppo", "--adapt-agent", "trpo", "--target-kl", "0.2", "--run-dir", str(run)]
    assert train_main([*TINY, *flags]) == 0
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
    assert cfg.inner.agent == "ppo" and cfg.adapt == InnerLoop(agent="trpo", target_kl=0.2, inner_lr=1e-2)


def test_sb3_trpo_reads_target_kl():
    """Before the redesign --target-kl was silently ignored by sb3-trpo; now a larger region moves θ further."""
    from metarl.agents import make_agent
    from metarl.envs import Navigation2DEnv

    tasks = Navigation2DEnv.sample_tasks(1, np.random.default_rng(0))
    moved = []
    for kl in (0.001, 0.1):
        inner = InnerLoop(agent="sb3-trpo", target_kl=kl)
        agent = make_agent(Navigation2DEnv, inner, (16,), -0.5, threads=1)
        theta = agent.init_params(0)
        res = agent.adapt(theta, tasks, inner, 1, 4, RunningNorm(2), [0])
        moved.append(float(sum((res.params[0][k] - theta[k]).pow(2).sum() for k in theta if "action" in k)))
        agent.close()
    assert moved[1] > 2 * moved[0] > 0, moved


# ---- configurations of older formats ----------------------------------------------------------------
#: A format-1 file: HalfCheetahVel.pt as shipped until the zoo re-saved it (git show c55a6b1:metarl/pretrained/...).
FORMAT_1 = Path(__file__).parent / "data" / "HalfCheetahVel_format1.pt"


def _v1_config(**drop):
    """A format-1 configuration, as the shipped HalfCheetahVel.pt held it."""
    state = torch.load(FORMAT_1, weights_only=True)
    assert state["format_version"] == 1
    return {k: v for k, v in state["config"].items() if k not in drop}


def test_a_format_1_config_is_migrated_with_the_values_its_run_had():
    old = _v1_config()
    assert {"backend", "ray_address", "target_kl"} - set(old) == {"backend", "ray_address", "target_kl"}
    cfg = TrainConfig.from_dict(migrate(old, 1))
    assert cfg.backend == "processes" and cfg.ray_address == "" and cfg.inner.target_kl == 0.01
    assert cfg.inner.agent == "ppo" and cfg.adapt.agent == "trpo" and cfg.adapt.target_kl == 1.0
    assert cfg.inner.inner_lr == cfg.adapt.inner_lr == old["inner_lr"] and cfg.workers == old["workers"]
    # a key the first format always had cannot be invented
    with pytest.raises(ConfigError, match=r"format 1 with missing keys \['gamma'\]"):
        migrate(_v1_config(gamma=None), 1)
    with pytest.raises(ConfigError, match=r"format 1 with unknown keys \['colour'\]"):
        migrate({**old, "colour": "red"}, 1)


def test_a_config_of_this_format_with_a_missing_key_is_refused_not_filled(tmp_path):
    cfg = TrainConfig.from_dict(migrate(_v1_config(), 1)).to_dict()
    del cfg["eval_seed"]
    with pytest.raises(ConfigError, match=rf"version {CONFIG_VERSION} with missing keys \['eval_seed'\]"):
        TrainConfig.from_dict(cfg)
    state = torch.load(FORMAT_1, weights_only=True)
    path = tmp_path / "old.pt"
    save_checkpoint(path, {**{k: v for k, v in state.items() if k not in ("checksum", "format_version")}})
    # a format-1 config saved as if it were of this format
    with pytest.raises(CheckpointError, match=rf"version {CONFIG_VERSION} with unknown keys \['adapt_agent'"):
        MetaPolicy.load(path)


def test_a_format_1_checkpoint_loads_migrated():
    assert torch.load(FORMAT_1, weights_only=True)["format_version"] == 1
    state = load_checkpoint(FORMAT_1)
    assert state["format_version"] == CONFIG_VERSION and state["config"]["adapt"]["target_kl"] == 1.0
    meta = MetaPolicy.load(FORMAT_1)
    assert meta.config.adapt.agent == "trpo" and meta.config.eval_steps == 3 and meta.config.episodes_per_step == 20


def test_adapt_and_evaluate_refuse_a_setting_their_inner_loop_does_not_read(tmp_path, capsys):
    from metarl.adapt import main as adapt_main
    from metarl.evaluate import main as evaluate_main

    assert adapt_main(["--env", "HalfCheetahVel", "--agent", "ppo", "--target-kl", "0.1", "--steps", "0"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err
        == "metarl.adapt: error: --target-kl is not used by --agent ppo; it applies to trpo, sb3-trpo (drop the flag)"
    )
    out = tmp_path / "eval"
    assert evaluate_main(["--env", "HalfCheetahVel", "--inner-lr", "0.1", "--out", str(out)]) == 2  # adapts by trpo
    err = capsys.readouterr().err.strip()
    assert err.startswith("metarl.evaluate: error: --inner-lr is not used by --agent trpo") and not out.exists()


# ---- meta-test step options: step_decay and holdout (issue 15) ---------------------------------------
def _navigation_batch(inner, steps=1, episodes=6, tasks=3):
    from metarl.envs import Navigation2DEnv

    agent = NativeAgent(Navigation2DEnv, (8,), -0.5, threads=1)
    theta = agent.init_params(0)
    task_list = Navigation2DEnv.sample_tasks(tasks, np.random.default_rng(0))
    res = agent.adapt(theta, task_list, inner, steps, episodes, RunningNorm(2), list(range(tasks)), record=True)
    agent.close()
    return theta, res


def test_step_decay_shrinks_each_vpg_step_by_its_factor():
    """θ₂ = θ₁ − 0.5·lr·∇L₁(θ₁) with step_decay 0.5, recomputed by hand from the batches the agent recorded."""
    from metarl.agents.vpg import vpg_loss

    inner = InnerLoop(agent="vpg", inner_lr=0.3, step_decay=0.5, baseline="linear", max_grad_norm=0.0)
    theta, res = _navigation_batch(inner, steps=2)
    p = {k: v.detach().clone() for k, v in stack(theta, 3).items()}
    for k, lr in enumerate((0.3, 0.15)):
        leaves = {n: v.clone().requires_grad_(True) for n, v in p.items()}
        names = [n for n in leaves if not n.startswith("vf.")]
        grads = torch.autograd.grad(vpg_loss(leaves, res.batches[k], inner).sum(), [leaves[n] for n in names])
        p = {**p, **{n: p[n] - lr * g for n, g in zip(names, grads)}}
    for t, params in enumerate(res.params):
        for name in params:
            if not name.startswith("vf."):
                torch.testing.assert_close(params[name], p[name][t], rtol=1e-5, atol=1e-6)
    _, constant = _navigation_batch(InnerLoop(**{**inner.to_dict(), "step_decay": 1.0}), steps=2)
    assert not torch.equal(constant.params[0]["pi.0.w"], res.params[0]["pi.0.w"])


def _mean_kl(before, after, obs, alive):
    from metarl.agents.networks import mlp

    mu0, mu1 = mlp(before, "pi", obs), mlp(after, "pi", obs)
    s0, s1 = before["log_std"].unsqueeze(1), after["log_std"].unsqueeze(1)
    d = (s1 - s0 + (torch.exp(2 * s0) + (mu0 - mu1).pow(2)) / (2 * torch.exp(2 * s1)) - 0.5).sum(-1)
    return (d * alive).sum(1) / alive.sum(1)


def test_step_decay_shrinks_each_trpo_trust_region():
    """With target_kl 0.05 and step_decay 0.01 the second step's KL is within 1.5 x 0.0005 (the first: 0.075)."""
    inner = InnerLoop(agent="trpo", target_kl=0.05, step_decay=0.01)
    theta, one = _navigation_batch(inner, steps=1)
    _, two = _navigation_batch(inner, steps=2)  # the same seeds: the same first batch and first step
    theta1 = {k: torch.stack([p[k] for p in one.params]) for k in theta}
    theta2 = {k: torch.stack([p[k] for p in two.params]) for k in theta}
    batch = two.batches[1]  # sampled with θ₁, the batch of the second step
    with torch.no_grad():
        kl2 = _mean_kl(theta1, theta2, batch.obs, batch.alive)
        kl1 = _mean_kl(stack(theta, 3), theta1, one.batches[0].obs, one.batches[0].alive)
    assert (kl2 <= 1.5 * 0.05 * 0.01 + 1e-7).all() and (kl2 > 0).any(), kl2
    assert (kl1 > 1.5 * 0.05 * 0.01).all(), kl1


def _surrogate(params, batch, mask):
    """TRPO's surrogate per task, recomputed by hand: the mean over ``mask`` of the probability ratio times the
    advantage."""
    from metarl.agents.networks import gaussian_log_prob, mlp

    logp = gaussian_log_prob(mlp(params, "pi", batch.obs), params["log_std"].unsqueeze(1), batch.actions)
    return (torch.exp(logp - batch.log_probs) * batch.advantages * mask).sum(1) / mask.sum(1)


def test_holdout_keeps_only_a_step_that_raises_the_surrogate_on_the_held_out_episodes():
    from metarl.agents.trpo import TRPO

    inner = InnerLoop(agent="trpo", target_kl=0.5, holdout=0.5)
    theta, res = _navigation_batch(inner, steps=0, tasks=8, episodes=4)  # without the check 5 of 8 tasks lose
    batch = res.batches[0]
    held = batch.held_out.reshape(8, 4, -1)
    assert held[:, 2:].eq(1).all() and held[:, :2].eq(0).all()

    def held_out_surrogate(params):
        return _surrogate(params, batch, batch.alive * batch.held_out)

    results = {}
    for holdout in (0.0, 0.5):
        params = stack(theta, 8)
        _, _, stats = TRPO(InnerLoop(**{**inner.to_dict(), "holdout": holdout}), params).update(batch, [])
        with torch.no_grad():
            results[holdout] = (held_out_surrogate(params), {k: v.clone() for k, v in params.items()})
    with torch.no_grad():
        before = held_out_surrogate(stack(theta, 8))
    gain, moved = results[0.5][0] - before, results[0.5][1]["pi.0.w"] != stack(theta, 8)["pi.0.w"]
    stepped = moved.flatten(1).any(1)
    assert (gain[stepped] > 0).all() and (gain[~stepped] == 0).all() and stepped.any() and not stepped.all(), gain
    # the step is computed on the other episodes: not the step of the whole batch
    assert not torch.equal(results[0.0][1]["pi.0.w"], results[0.5][1]["pi.0.w"])


def test_a_large_cg_damping_turns_the_trpo_step_into_the_gradient_sized_to_the_trust_region():
    """(F + λI)⁻¹g tends to g/λ: with λ = 1e6 the step is the plain gradient's direction, with TRPO's 0.1 it is not;
    either way the line search keeps its measured KL within 1.5 x target_kl (issue 15's meta-test damping)."""
    from metarl.agents.trpo import TRPO

    inner = InnerLoop(agent="trpo", target_kl=0.05)
    theta, res = _navigation_batch(inner, steps=0, tasks=4, episodes=6)
    batch = res.batches[0]
    start = {k: v.detach().clone().requires_grad_(not k.startswith("vf.")) for k, v in stack(theta, 4).items()}
    names = [k for k in start if not k.startswith("vf.")]
    surrogate = _surrogate(start, batch, batch.alive)
    grad = torch.cat([g.flatten(1) for g in torch.autograd.grad(surrogate.sum(), [start[k] for k in names])], 1)
    cosine = {}
    for damping in (0.1, 1e6):
        params = stack(theta, 4)
        TRPO(InnerLoop(**{**inner.to_dict(), "cg_damping": damping}), params).update(batch, [])
        step = torch.cat([(params[k] - start[k].detach()).flatten(1) for k in names], 1)
        cosine[damping] = torch.nn.functional.cosine_similarity(step, grad, dim=1)
        with torch.no_grad():
            kl = _mean_kl(stack(theta, 4), params, batch.obs, batch.alive)
        assert (kl <= 1.5 * 0.05 + 1e-6).all() and (kl > 0).all(), (damping, kl)
    assert (cosine[1e6] > 0.999).all() and (cosine[0.1] < 0.95).all(), cosine


def test_describe_names_the_step_and_what_differs_from_the_defaults():
    assert InnerLoop().describe() == "ppo (Adam 0.003)"
    assert InnerLoop(agent="vpg", inner_lr=0.1, baseline="linear").describe() == "vpg (lr 0.1, linear baseline)"
    trpo = InnerLoop(agent="trpo", target_kl=2.0, step_decay=0.5, baseline="linear", cg_damping=10.0, holdout=0.25)
    assert trpo.describe() == "trpo (KL 2, x0.5 per step, linear baseline, damping 10, holdout 0.25)"
    assert InnerLoop(agent="trpo", target_kl=1.0).describe() == "trpo (KL 1, value baseline)"  # damping 0.1 unsaid
    maml = InnerLoop(agent="vpg", inner_lr=0.1, baseline="linear", gae_lambda=1.0, ent_coef=0.01)
    assert maml.describe() == "vpg (lr 0.1, linear baseline, GAE lambda 1, entropy 0.01)"
    assert InnerLoop(agent="sb3-ppo").describe() == "sb3-ppo"


def test_a_format_2_config_is_migrated_with_both_options_off():
    cfg = TrainConfig()
    old = cfg.to_dict()
    for loop in ("inner", "adapt"):
        del old[loop]["step_decay"], old[loop]["holdout"]
    assert TrainConfig.from_dict(migrate(old, 2)) == cfg
    with pytest.raises(ConfigError, match="format 2 with a bad 'inner' inner loop"):
        migrate(cfg.to_dict(), 2)  # format 2 never had the keys


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--agent", "ppo", "--holdout", "0.25"], "--holdout is not used by --agent ppo; it applies to trpo"),
        (["--agent", "trpo", "--holdout", "1.0"], "--holdout must be in [0, 1) (0: off), got 1.0"),
        (["--step-decay", "0"], "--step-decay must be positive (1: constant steps), got 0.0"),
        (["--adapt-holdout", "-0.1"], "--adapt-holdout must be >= 0 (0: --holdout), got -0.1"),
        (["--adapt-agent", "ppo", "--adapt-baseline", "linear"], "--adapt-baseline is not used by --agent ppo"),
        (["--adapt-agent", "ppo", "--adapt-cg-damping", "10"], "--adapt-cg-damping is not used by --agent ppo"),
        (["--adapt-cg-damping", "-1"], "--adapt-cg-damping must be >= 0 (0: --cg-damping), got -1.0"),
        (["--agent", "ppo", "--baseline", "linear"], "--baseline is not used by --agent ppo"),
        (["--gae-lambda", "1.5"], "--gae-lambda must be in [0, 1], got 1.5"),
        (["--ent-coef", "-0.1"], "--ent-coef must be >= 0, got -0.1"),
    ],
)
def test_bad_step_options_are_one_line_errors(tmp_path, capsys, flags, message):
    run = tmp_path / "run"
    assert train_main([*TINY, *flags, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err
    assert not run.exists()


def test_adapt_baseline_and_damping_set_the_meta_test_loop_only(tmp_path):
    """--adapt-baseline linear, --adapt-cg-damping 10 (issue 15's meta-test preset): the training loop keeps its own,
    the meta-test loop's are replaced, and the run's config.json says so."""
    run = tmp_path / "run"
    flags = ["--agent", "ppo", "--adapt-agent", "trpo", "--adapt-target-kl", "0.5", "--adapt-baseline", "linear"]
    assert train_main([*TINY, *flags, "--adapt-cg-damping", "10", "--run-dir", str(run)]) == 0
    cfg = TrainConfig.from_dict(json.loads((run / "config.json").read_text())["config"])
    assert (cfg.inner.agent, cfg.inner.baseline, cfg.inner.cg_damping) == ("ppo", "value", 0.1)
    assert (cfg.adapt.agent, cfg.adapt.baseline, cfg.adapt.target_kl, cfg.adapt.cg_damping) == (
        "trpo",
        "linear",
        0.5,
        10,
    )


def test_a_baseline_left_on_a_ppo_loop_changes_nothing():
    """ppo does not read ``baseline`` (its value net trains with the policy): a preset's meta-test baseline left on a
    ppo loop (--adapt-agent ppo over the HalfCheetah presets' linear one) adapts exactly as the value net does."""
    value = InnerLoop(agent="ppo")
    _, a = _navigation_batch(value, steps=2)
    _, b = _navigation_batch(InnerLoop(**{**value.to_dict(), "baseline": "linear"}), steps=2)
    assert torch.equal(a.batches[0].advantages, b.batches[0].advantages)
    assert all(torch.equal(pa[k], pb[k]) for pa, pb in zip(a.params, b.params) for k in pa)


def test_the_half_cheetah_presets_their_agents_and_mamls_own():
    """The HalfCheetah presets step by TRPO KL 2.0 over a linear baseline, damping 10, halving (issue 15), at
    meta-training and at meta-test; another --agent starts the training loop from that agent's defaults and keeps the
    preset's meta-test loop, another --adapt-agent drops the preset's meta-test settings; MAML's preset steps by its
    own VPG step in both loops, none of the family's settings carried over."""
    from metarl.config import resolve_flags

    cfg, _ = resolve_flags({"env": "HalfCheetahVel"})
    for loop in (cfg.inner, cfg.adapt):
        assert (loop.agent, loop.target_kl, loop.baseline, loop.step_decay, loop.cg_damping) == (
            "trpo",
            2.0,
            "linear",
            0.5,
            10.0,
        )
    assert cfg.meta_iters == 100 and cfg.inner.describe() == "trpo (KL 2, x0.5 per step, linear baseline, damping 10)"
    ppo, _ = resolve_flags({"env": "HalfCheetahDir", "agent": "ppo"})
    assert ppo.inner == InnerLoop(agent="ppo") and ppo.adapt == cfg.adapt  # PPO's own step; the preset's meta-test
    both, _ = resolve_flags({"env": "HalfCheetahVel", "agent": "ppo", "adapt_agent": "ppo"})
    assert both.inner == both.adapt == InnerLoop(agent="ppo")
    same, _ = resolve_flags({"env": "HalfCheetahVel", "agent": "trpo"})  # the preset's own agent: its settings
    assert same.inner == cfg.inner
    # SB3's parameters are not the native TRPO loop's to adapt: the docs' `--env HalfCheetahVel --agent sb3-ppo` runs
    sb3, _ = resolve_flags({"env": "HalfCheetahVel", "agent": "sb3-ppo"})
    assert sb3.inner == sb3.adapt == InnerLoop(agent="sb3-ppo")
    # a plain flag given alone sets the meta-test loop's too, over the preset's (was silently overridden by it)
    given, _ = resolve_flags({"env": "HalfCheetahVel", "cg_damping": 1.0, "target_kl": 0.5})
    assert (given.adapt.cg_damping, given.adapt.target_kl, given.adapt.step_decay) == (1.0, 0.5, 0.5)
    assert (given.inner.cg_damping, given.inner.target_kl) == (1.0, 0.5)
    two, _ = resolve_flags({"env": "HalfCheetahVel", "cg_damping": 1.0, "adapt_cg_damping": 30.0})
    assert (two.inner.cg_damping, two.adapt.cg_damping) == (1.0, 30.0)
    maml, _ = resolve_flags({"env": "HalfCheetahDir", "meta_learner": "maml"})
    assert maml.adapt == maml.inner and (maml.inner.agent, maml.inner.step_decay, maml.inner.cg_damping) == (
        "vpg",
        1.0,
        0.1,
    )
