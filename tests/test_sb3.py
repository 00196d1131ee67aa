"""stable-baselines3 agents (sb3-ppo, sb3-a2c, sb3-trpo) as Reptile's inner loop: Navigation2D, and the walkers
whose episodes end early (HopperRandParams, AntDir) through the VecEnv adapter's per-copy auto-reset."""

import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from conftest import scalar
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.agents import InnerLoop, RunningNorm, make_agent
from metarl.agents.sb3 import algorithm_class, get_params, sb3_seed
from metarl.agents.vec_env import BatchVecEnv
from metarl.checkpoint import load_checkpoint
from metarl.config import TrainConfig
from metarl.envs import GoalTask, HalfCheetahVelEnv, HopperRandParamsEnv, Navigation2DEnv, env_id, get_family
from metarl.envs.gym_batch import GymBatchEnv
from metarl.export import export_sb3_zip
from metarl.train import main

ALGOS = ["ppo", "a2c", "trpo"]
ITERS, BATCH, EPISODES, K = 3, 2, 3, 1
TINY = [
    "--env",
    "Navigation2D",
    "--hidden",
    "16",
    "--meta-iters",
    str(ITERS),
    "--meta-batch",
    str(BATCH),
    "--episodes-per-step",
    str(EPISODES),
    "--inner-steps",
    str(K),
    "--eval-tasks",
    "2",
    "--eval-steps",
    "2",
    "--eval-every",
    str(ITERS),
    "--workers",
    "1",
    "--quiet",
]


def tiny_agent(algo, family=Navigation2DEnv, **kw):
    """An SB3 agent with a 16-unit network and its inner loop (learning rate 1e-2, ``kw`` overrides)."""
    inner = InnerLoop(agent=f"sb3-{algo}", inner_lr=1e-2, **kw)
    return make_agent(family, inner, (16,), -0.5, threads=1), inner


def run_agent(cfg):
    """The in-process agent of a run's configuration."""
    return make_agent(cfg.family, cfg.inner, cfg.hidden, cfg.log_std_init, threads=1)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One tiny meta-training run per SB3 algorithm, through the train CLI."""
    out = {}
    for algo in ALGOS:
        run = tmp_path_factory.mktemp(f"sb3-{algo}") / "run"
        assert main([*TINY, "--agent", f"sb3-{algo}", "--run-dir", str(run)]) == 0
        out[algo] = run
    return out


@pytest.mark.parametrize("algo", ALGOS)
def test_meta_training_moves_the_sb3_policy_and_logs_sb3_scalars(runs, algo):
    run = runs[algo]
    state = load_checkpoint(run / "checkpoints" / "latest.pt", family="Navigation2D")
    cfg = TrainConfig.from_dict(state["config"])
    assert cfg.inner.agent == f"sb3-{algo}"
    theta0 = run_agent(cfg).init_params(cfg.seed)
    theta = state["theta"]
    assert set(theta) == set(theta0) and "action_net.weight" in theta  # the SB3 policy's own layout
    moved = torch.sqrt(sum(((theta[k] - theta0[k]) ** 2).sum() for k in theta))
    assert moved > 1e-3, "Reptile did not move the meta-parameters"
    assert torch.equal(state["normalizer"]["mean"], torch.zeros(2))  # SB3 agents see raw observations
    # one SB3 logger for the run: no extra TensorBoard folder, SB3's scalars next to metarl's tags
    assert sorted(p.name for p in run.iterdir() if p.is_dir()) == ["checkpoints"]
    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    for tag in ["adapt/return_pre", "adapt/return_post", "eval/return_step2", "sb3/train/value_loss"]:
        assert tag in tags, tag
    assert [e.value for e in acc.Scalars("sb3/timesteps_per_task")] == [(K + 1) * EPISODES * 100] * ITERS
    assert [e.value for e in acc.Scalars("sb3/updates_per_task")] == [K] * ITERS
    total = acc.Scalars("time/env_steps_total")[-1].value
    assert total == ITERS * BATCH * (K + 1) * EPISODES * 100  # exact: no rounding up of total_timesteps


def test_budget_is_exact_and_returns_follow_the_maml_protocol():
    """returns[k] is sampled after k updates: the first k+1 rollouts do not depend on later ones."""
    agent, inner = tiny_agent("ppo", ppo_epochs=2, minibatches=2)
    theta = agent.init_params(0)
    tasks = Navigation2DEnv.sample_tasks(2, np.random.default_rng(1))
    seeds = [(7, t) for t in range(2)]
    r0 = agent.adapt(theta, tasks, inner, 0, 2, RunningNorm(2), seeds)
    r1 = agent.adapt(theta, tasks, inner, 1, 2, RunningNorm(2), seeds)
    r2 = agent.adapt(theta, tasks, inner, 2, 2, RunningNorm(2), seeds)
    assert [r.env_steps for r in (r0, r1, r2)] == [2 * (k + 1) * 2 * 100 for k in range(3)]
    assert r2.returns.shape == (3, 2)
    assert torch.equal(r0.returns, r2.returns[:1]) and torch.equal(r1.returns, r2.returns[:2])
    assert all(torch.equal(p[k], theta[k]) for p in r0.params for k in theta)  # no update after the last rollout
    assert all(any(not torch.equal(p[k], theta[k]) for k in theta) for p in r1.params)
    # the measured rollout holds whole episodes: compare with an independent count of steps
    assert r2.stats["sb3/timesteps_per_task"] == 3 * 2 * 100 and r2.stats["sb3/updates_per_task"] == 2


@pytest.mark.parametrize(
    "algo, family", [(a, Navigation2DEnv) for a in ALGOS] + [("ppo", HalfCheetahVelEnv), ("ppo", HopperRandParamsEnv)]
)
def test_each_task_starts_from_theta_with_a_fresh_optimiser_and_env(algo, family):
    """Same task and seed give the same adaptation whatever was adapted before (no carried state:
    optimiser moments, episode in progress, initial-state generators)."""
    agent, inner = tiny_agent(algo, family)
    theta = agent.init_params(0)
    tasks = family.sample_tasks(3, np.random.default_rng(2))
    seeds = [(3, t) for t in range(3)]
    norm = RunningNorm(agent.obs_dim)
    together = agent.adapt(theta, tasks, inner, 2, 2, norm, seeds)
    alone = tiny_agent(algo, family)[0].adapt(theta, tasks[2:], inner, 2, 2, norm, seeds[2:])
    assert all(torch.equal(together.params[2][k], alone.params[0][k]) for k in theta)
    assert torch.equal(together.returns[:, 2], alone.returns[:, 0])
    assert not torch.equal(together.params[0]["action_net.weight"], together.params[1]["action_net.weight"])


@pytest.mark.parametrize("env", ["HopperRandParams", pytest.param("Navigation2D", marks=pytest.mark.slow)])
def test_two_worker_processes_give_the_same_sb3_meta_parameters_as_one(tmp_path, env):
    """Bit-identical θ for 1 and 2 workers where episodes end early and copies restart at different steps (by
    default; fixed-length Navigation2D, the same mechanism without the per-copy resets, under ``-m slow``)."""
    base = [*TINY[: TINY.index("--workers")], "--quiet", "--agent", "sb3-ppo", "--eval-every", "0", "--env", env]
    if env == "HopperRandParams":
        base += ["--episodes-per-step", "2"]
    assert main([*base, "--meta-iters", "2", "--workers", "1", "--run-dir", str(tmp_path / "w1")]) == 0
    assert main([*base, "--meta-iters", "2", "--workers", "2", "--run-dir", str(tmp_path / "w2")]) == 0
    a = torch.load(tmp_path / "w1" / "checkpoints" / "latest.pt", weights_only=True)["theta"]
    b = torch.load(tmp_path / "w2" / "checkpoints" / "latest.pt", weights_only=True)["theta"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_vec_env_keeps_the_contract_of_dummy_vec_env_over_gym_make():
    """Same actions, same observations, rewards, dones and end-of-episode infos as plain SB3's env."""
    task = GoalTask((0.3, -0.2))
    ours = BatchVecEnv(Navigation2DEnv.make_batch(2), *_spaces())
    ours.set_tasks([task, task])
    plain = DummyVecEnv([lambda: __import__("gymnasium").make(env_id("Navigation2D"), task=task)] * 2)
    o1, o2 = ours.reset(), plain.reset()
    assert o1.dtype == o2.dtype and np.array_equal(o1, o2)
    actions = np.random.default_rng(0).uniform(-0.2, 0.2, size=(2 * 100 + 5, 2, 2)).astype(np.float32)
    ep_return = np.zeros(2)
    for h, a in enumerate(actions):
        (o1, r1, d1, i1), (o2, r2, d2, i2) = ours.step(a), plain.step(a)
        assert np.array_equal(o1, o2) and np.array_equal(r1, r2) and np.array_equal(d1, d2), h
        ep_return += r1
        if d1.any():
            assert h + 1 in (100, 200) and d1.all()
            for j, (x, y) in enumerate(zip(i1, i2)):
                assert np.array_equal(x["terminal_observation"], y["terminal_observation"])
                assert x["TimeLimit.truncated"] is True and y["TimeLimit.truncated"] is True
                assert x["episode"]["l"] == 100 and x["episode"]["r"] == pytest.approx(ep_return[j], rel=1e-5)
            ep_return[:] = 0
        else:
            assert i1 == [{}, {}]


class _ReseedEveryReset(gym.Wrapper):
    """Seeds each reset from a generator, as :class:`GymBatchEnv` seeds its copies' resets."""

    def __init__(self, env, rng):
        super().__init__(env)
        self.rng = rng

    def reset(self, *, seed=None, options=None):
        return self.env.reset(seed=int(self.rng.integers(2**31)))


@pytest.mark.parametrize(
    "name, stepper",
    [("HopperRandParams", s) for s in ("batch", "per-copy", "gym")] + [("AntDir", s) for s in ("per-copy", "batch")],
)
def test_vec_env_auto_resets_each_copy_as_dummy_vec_env_over_gym_make_does(name, stepper, monkeypatch):
    """Episodes that end early: each copy restarts alone, the step it ends, exactly as in plain SB3's
    DummyVecEnv over Monitor(gym.make(...)) with the same initial-state generators: same observations
    (the next episode's first after a reset), rewards, dones, terminal observations, TimeLimit.truncated
    (False for a fall, True at the horizon), episode lengths and returns; on all three batched envs."""
    if stepper != "gym":
        monkeypatch.setenv("METARL_MUJOCO_STEPPER", stepper)
    fam, n, seed = get_family(name), 3, 5
    tasks = fam.sample_tasks(n, np.random.default_rng(0))
    batch = GymBatchEnv(fam, n) if stepper == "gym" else fam.make_batch(n, threads=2)
    probe = fam()
    ours = BatchVecEnv(batch, probe.observation_space, probe.action_space)
    ours.set_tasks(tasks)
    ours.seed(seed)
    rngs = [np.random.default_rng(c) for c in np.random.SeedSequence(seed).spawn(n)]  # BatchVecEnv.seed's

    def make(task, rng):
        def env():
            env = gym.make(env_id(name), task=task)
            if stepper == "gym":
                return Monitor(_ReseedEveryReset(env, rng))
            env.unwrapped._np_random = rng  # the MuJoCo batched envs draw initial states from the generator itself
            return Monitor(env)

        return env

    plain = DummyVecEnv([make(t, r) for t, r in zip(tasks, rngs)])
    o1, o2 = ours.reset(), plain.reset()
    assert o1.dtype == o2.dtype and np.array_equal(o1, o2)
    horizon = fam.horizon
    actions = np.random.default_rng(0).uniform(-1, 1, size=(2 * horizon + 50, n, batch.act_dim)).astype(np.float32)
    ends, partial = [], 0
    for h, a in enumerate(actions):
        (o1, r1, d1, i1), (o2, r2, d2, i2) = ours.step(a), plain.step(a)
        assert np.array_equal(d1, d2) and np.array_equal(o1, o2), h
        np.testing.assert_allclose(r1, r2, rtol=1e-6)
        assert r1.dtype == r2.dtype == np.float32
        partial += 0 < d1.sum() < n
        for j in range(n):
            if not d1[j]:
                assert i1[j] == {}
                continue
            x, y = i1[j], i2[j]
            assert np.array_equal(x["terminal_observation"], y["terminal_observation"])
            assert x["TimeLimit.truncated"] is y["TimeLimit.truncated"]
            assert x["episode"]["l"] == y["episode"]["l"] and x["episode"]["r"] == pytest.approx(y["episode"]["r"])
            ends.append((x["episode"]["l"], x["TimeLimit.truncated"]))
    batch.close()
    assert partial > 0  # copies restarted alone, at different steps
    assert any(length < horizon and not cut for length, cut in ends)  # falls: terminated, not truncated
    if name == "AntDir":  # the ant also survives to the horizon: truncated, its value bootstrapped
        assert (horizon, True) in ends


def _spaces():
    env = Navigation2DEnv()
    return env.observation_space, env.action_space


EARLY = ["--hidden", "16", "--meta-iters", "1", "--meta-batch", "1", "--episodes-per-step", "2", "--inner-steps", "1"]
EARLY += ["--eval-every", "0", "--eval-tasks", "1", "--eval-steps", "1", "--workers", "1", "--quiet"]


@pytest.mark.parametrize("env", ["HopperRandParams", "AntDir"])
@pytest.mark.parametrize("algo", ALGOS)
def test_sb3_agents_meta_train_the_families_whose_episodes_end_early(tmp_path, algo, env):
    """Through the train CLI: the exact budget ((K+1)·E·horizon env steps per task) with more episodes than E."""
    run = tmp_path / "run"
    extra = ["--log-std-init", "0.5"] if env == "AntDir" else []  # a wide policy topples the ant within 200 steps
    assert main(["--env", env, "--agent", f"sb3-{algo}", *EARLY, *extra, "--run-dir", str(run)]) == 0
    state = load_checkpoint(run / "checkpoints" / "latest.pt")
    cfg = TrainConfig.from_dict(state["config"])
    theta0 = run_agent(cfg).init_params(cfg.seed)
    assert any(not torch.equal(state["theta"][k], theta0[k]) for k in theta0)
    assert [v for _, v in scalar(run, "sb3/timesteps_per_task")] == [2 * 2 * 200]
    assert [v for _, v in scalar(run, "time/env_steps_total")] == [2 * 2 * 200]
    assert [v for _, v in scalar(run, "sb3/updates_per_task")] == [1]
    assert scalar(run, "sb3/episodes_per_rollout")[0][1] > 2  # some episodes ended before the horizon
    returns = [scalar(run, tag)[0][1] for tag in ("adapt/return_pre", "adapt/return_post", "eval/return_step1")]
    assert all(np.isfinite(returns))


def test_returns_are_means_over_the_episodes_that_end_in_each_rollout(monkeypatch):
    """With episodes of different lengths, returns[k] is the mean return of the episodes that end during rollout k
    (steps k·H .. (k+1)·H - 1 of every copy), as the env's own Monitor-style infos count them; the budget stays
    (K+1)·E·H env steps, and the first rollouts do not depend on how many follow."""
    ended: list[list[float]] = []
    step_wait = BatchVecEnv.step_wait

    def recording(self):
        out = step_wait(self)
        ended.append([info["episode"]["r"] for info in out[3] if "episode" in info])
        return out

    monkeypatch.setattr(BatchVecEnv, "step_wait", recording)
    agent, inner = tiny_agent("ppo", HopperRandParamsEnv, ppo_epochs=2, minibatches=2)
    theta = agent.init_params(0)
    tasks = HopperRandParamsEnv.sample_tasks(1, np.random.default_rng(1))
    E, H, K = 2, HopperRandParamsEnv.horizon, 2
    r1 = agent.adapt(theta, tasks, inner, 1, E, RunningNorm(agent.obs_dim), [(7, 0)])
    ended.clear()
    r2 = agent.adapt(theta, tasks, inner, K, E, RunningNorm(agent.obs_dim), [(7, 0)])
    assert len(ended) == (K + 1) * H and r2.env_steps == (K + 1) * E * H  # every copy stepped every step
    per_rollout = [sum(ended[k * H : (k + 1) * H], []) for k in range(K + 1)]
    assert all(len(eps) >= E for eps in per_rollout) and sum(map(len, per_rollout)) > (K + 1) * E
    expected = [np.mean(eps) for eps in per_rollout]
    np.testing.assert_allclose(r2.returns[:, 0].numpy(), expected, rtol=1e-5)
    assert r2.stats["sb3/episodes_per_rollout"] == np.mean([len(eps) for eps in per_rollout])
    assert torch.equal(r1.returns, r2.returns[:2])


_PLAIN_SB3 = r"""
import json, sys
sys.modules["metarl"] = None  # plain SB3: importing metarl would fail
import numpy as np
from stable_baselines3 import A2C, PPO
from sb3_contrib import TRPO
paths, obs = json.loads(sys.argv[1]), np.array(json.loads(sys.argv[2]), dtype=np.float32)
out = {}
for algo, path in paths.items():
    model = {"ppo": PPO, "a2c": A2C, "trpo": TRPO}[algo].load(path, device="cpu")
    out[algo] = model.predict(obs, deterministic=True)[0].tolist()
print(json.dumps(out))
"""


def test_exported_zip_loads_in_plain_sb3_and_predicts_the_same_actions(runs, tmp_path):
    obs = np.random.default_rng(0).uniform(-1, 1, size=(5, 2)).astype(np.float32)
    paths, expected = {}, {}
    for algo in ALGOS:
        state = load_checkpoint(runs[algo] / "checkpoints" / "latest.pt")
        theta, cfg = state["theta"], TrainConfig.from_dict(state["config"])
        paths[algo] = str(export_sb3_zip(theta, cfg, tmp_path / f"meta-{algo}"))
        assert paths[algo].endswith(".zip")
        # reference: the mean action computed from the parameter set by hand, clipped to the bounds
        x = torch.from_numpy(obs)
        h = torch.tanh(x @ theta["mlp_extractor.policy_net.0.weight"].T + theta["mlp_extractor.policy_net.0.bias"])
        mean = h @ theta["action_net.weight"].T + theta["action_net.bias"]
        expected[algo] = np.clip(mean.numpy(), -0.1, 0.1)
    proc = subprocess.run(
        [sys.executable, "-c", _PLAIN_SB3, json.dumps(paths), json.dumps(obs.tolist())],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    for algo in ALGOS:
        np.testing.assert_allclose(np.array(got[algo]), expected[algo], rtol=1e-5, atol=1e-7, err_msg=algo)
        assert not np.allclose(expected[algo], expected[algo][0])  # actions depend on the observation


@pytest.mark.parametrize("algo", ALGOS)
def test_plain_sb3_adaptation_of_the_export_equals_metarl_adaptation(runs, tmp_path, algo):
    """`learn()` in plain SB3 on the exported model is the meta-test adaptation, bit for bit."""
    state = load_checkpoint(runs[algo] / "checkpoints" / "latest.pt")
    theta, cfg = state["theta"], TrainConfig.from_dict(state["config"])
    path = export_sb3_zip(theta, cfg, tmp_path / "meta.zip")
    task, seed, steps = Navigation2DEnv.meta_test_tasks()[0], (11, 0), 2
    ours = run_agent(cfg).adapt(theta, [task], cfg.inner, steps, EPISODES, RunningNorm(2), [seed])
    env = make_vec_env(env_id("Navigation2D"), n_envs=EPISODES, env_kwargs={"task": task})
    model = algorithm_class(algo).load(path, env=env, device="cpu")
    model.set_random_seed(sb3_seed(seed))
    model.learn(total_timesteps=steps * EPISODES * 100)
    assert model.num_timesteps == steps * EPISODES * 100
    adapted = get_params(model)
    assert all(torch.equal(adapted[k], ours.params[0][k]) for k in theta), algo
    assert any(not torch.equal(adapted[k], theta[k]) for k in theta)
