import json
import pickle

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import metarl  # noqa: F401  (registers the ids)
from metarl.envs import (
    FAMILIES,
    HAS_NATIVE_BATCH,
    DirectionTask,
    GoalTask,
    HalfCheetahDirEnv,
    HalfCheetahVelEnv,
    MujocoBatchEnv,
    NativeMujocoBatchEnv,
    Navigation2DEnv,
    TaskError,
    VelocityTask,
    env_id,
    get_family,
    load_mujoco_model,
)

NAMES = list(FAMILIES)


@pytest.mark.parametrize("name", NAMES)
def test_check_env_passes_for_every_registered_id(name):
    env = gym.make(env_id(name))
    assert env.spec.max_episode_steps == FAMILIES[name].horizon
    check_env(env.unwrapped, skip_render_check=True)


def test_module_prefixed_id_imports_and_registers():
    env = gym.make("metarl.envs:metarl/HalfCheetahVel-v0")
    assert isinstance(env.unwrapped, HalfCheetahVelEnv)


@pytest.mark.parametrize("name, horizon", [("HalfCheetahVel", 200), ("HalfCheetahDir", 200), ("Navigation2D", 100)])
def test_episodes_end_at_the_literature_horizon(name, horizon):
    """gym.make's time limit cuts the episode at the horizon the meta-RL literature uses, and not before."""
    env = gym.make(env_id(name))
    env.reset(seed=0)
    ends = [t for t in range(1, 2 * horizon + 1) if any(env.step(np.zeros(env.action_space.shape))[2:4])]
    assert ends[0] == horizon and FAMILIES[name].make_batch(1).horizon == horizon


@pytest.mark.parametrize("task", [VelocityTask(1.25), DirectionTask(-1), GoalTask((0.1, -0.3))])
def test_tasks_round_trip_through_json(task):
    back = type(task).from_dict(json.loads(json.dumps(task.to_dict())))
    assert back == task


@pytest.mark.parametrize(
    "cls, values, message",
    [
        (VelocityTask, {"velocity": float("nan")}, "finite"),
        (VelocityTask, {"speed": 1.0}, "unknown task field 'speed'"),
        (VelocityTask, {"velocity": "fast"}, "must be a number"),
        (DirectionTask, {"direction": 0.5}, "+1 or -1"),
        (GoalTask, {"goal": [1.0]}, "two numbers"),
        (GoalTask, {}, "missing task field 'goal'"),
    ],
)
def test_bad_tasks_give_clear_errors(cls, values, message):
    with pytest.raises(TaskError, match=message.replace("+", r"\+")):
        cls.from_dict(values)


def _step_fixed(env, action, n=20):
    env.reset(seed=3)
    out = []
    for _ in range(n):
        _, r, _, _, info = env.step(action)
        out.append((r, info))
    return out


def test_half_cheetah_vel_reward_follows_its_formula():
    env = gym.make("metarl/HalfCheetahVel-v0", task=VelocityTask(1.5))
    a = np.full(6, 0.5)
    for r, info in _step_fixed(env, a):
        assert info["task"] == VelocityTask(1.5)
        assert r == pytest.approx(-abs(info["x_velocity"] - 1.5) - 0.05 * np.sum(a**2))
    env.unwrapped.set_task(VelocityTask(0.0))
    r0 = _step_fixed(env, a)
    assert r0[-1][0] == pytest.approx(-abs(r0[-1][1]["x_velocity"]) - 0.05 * np.sum(a**2))


def test_half_cheetah_actions_are_clipped_before_the_control_cost():
    env = gym.make("metarl/HalfCheetahVel-v0", task=VelocityTask(1.0))
    (r, info), *_ = _step_fixed(env, np.full(6, 3.0), n=1)
    assert info["reward_ctrl"] == pytest.approx(-0.05 * 6)  # |a| clipped to 1


def test_half_cheetah_dir_reward_flips_with_the_direction():
    env = gym.make("metarl/HalfCheetahDir-v0", task=DirectionTask(1))
    a = np.linspace(-1, 1, 6)
    fwd = _step_fixed(env, a)
    env.unwrapped.set_task(DirectionTask(-1))
    bwd = _step_fixed(env, a)
    ctrl = 0.05 * np.sum(a**2)
    for (rf, i_f), (rb, i_b) in zip(fwd, bwd):
        assert i_f["x_velocity"] == i_b["x_velocity"]  # same physics
        assert rf == pytest.approx(i_f["x_velocity"] - ctrl)
        assert rb == pytest.approx(-i_b["x_velocity"] - ctrl)


def test_navigation_reward_is_negative_distance_and_actions_clip():
    env = gym.make("metarl/Navigation2D-v0", task=GoalTask((0.3, -0.2)))
    obs, _ = env.reset(seed=0)
    assert np.allclose(obs, 0.0)
    obs, r, *_ = env.step(np.array([1.0, -1.0]))
    assert np.allclose(obs, [0.1, -0.1])
    assert r == pytest.approx(-np.hypot(0.2, 0.1))


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_tasks_and_same_rollout(name):
    fam = get_family(name)
    t1 = fam.sample_tasks(5, np.random.default_rng(7))
    t2 = fam.sample_tasks(5, np.random.default_rng(7))
    assert t1 == t2

    def rollout():
        env = gym.make(env_id(name), task=t1[0])
        obs, _ = env.reset(seed=11)
        env.action_space.seed(11)
        trace = [obs]
        for _ in range(30):
            obs, r, *_ = env.step(env.action_space.sample())
            trace.append(np.append(obs, r))
        return np.concatenate(trace)

    assert np.array_equal(rollout(), rollout())


@pytest.mark.parametrize("name", NAMES)
def test_pickling_keeps_the_current_task(name):
    fam = get_family(name)
    env = gym.make(env_id(name)).unwrapped
    task = fam.sample_tasks(3, np.random.default_rng(1))[2]
    env.set_task(task)
    assert pickle.loads(pickle.dumps(env)).get_task() == task


@pytest.mark.parametrize("name", NAMES)
def test_meta_test_set_is_fixed_and_disjoint_from_training_draws(name):
    fam = get_family(name)
    test = fam.meta_test_tasks()
    assert len(test) == 40
    assert test == fam.meta_test_tasks()
    if not fam.discrete_tasks:
        assert test == fam._draw_tasks(40, np.random.default_rng(fam.meta_test_seed))
        train = fam.sample_tasks(2000, np.random.default_rng(0))
        assert not set(train) & set(test)
        assert len(set(test)) == 40
    else:
        assert {t.direction for t in test} == {-1, 1}


def test_unknown_family_lists_the_known_ones_and_suggests():
    with pytest.raises(KeyError, match="did you mean 'HalfCheetahVel'.*Known families"):
        get_family("HalfCheetahVell")
    assert get_family("metarl/HalfCheetahDir-v0") is HalfCheetahDirEnv


def test_quiet_model_loader_compiles_the_same_model():
    env = gym.make("metarl/HalfCheetahVel-v0").unwrapped
    reference = mujoco.MjModel.from_xml_path(env.fullpath)
    ours = load_mujoco_model(env.fullpath)
    for field in ["body_mass", "body_inertia", "dof_invweight0", "actuator_acc0", "geom_size", "dof_damping"]:
        assert np.array_equal(getattr(ours, field), getattr(reference, field)), field


def test_model_loader_leaves_the_working_directory_alone(tmp_path, monkeypatch):
    """A model with settotalmass and a relative include loads from anywhere, even a removed working folder."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "body.xml").write_text(
        '<mujoco><body name="b"><freejoint/><geom type="box" size=".1 .1 .1"/></body></mujoco>'
    )
    xml = tmp_path / "model" / "main.xml"
    xml.write_text('<mujoco><compiler settotalmass="5"/><worldbody><include file="body.xml"/></worldbody></mujoco>')
    gone = tmp_path / "gone"
    gone.mkdir()
    monkeypatch.chdir(gone)
    gone.rmdir()  # os.getcwd() now raises: a loader that changes folder and back cannot work here
    model = load_mujoco_model(str(xml))
    assert model.body_mass.sum() == pytest.approx(5.0)


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ["HalfCheetahVel", "HalfCheetahDir"])
def test_batched_stepping_reproduces_plain_gymnasium_stepping(name, threads, mujoco_stepper):
    """The fast path must give the exact trajectory of the Gymnasium env for the same actions (both steppers)."""
    fam = get_family(name)
    n = 16
    tasks = fam.sample_tasks(n, np.random.default_rng(0))
    batch = fam.make_batch(n, threads=threads)
    assert isinstance(batch, NativeMujocoBatchEnv if mujoco_stepper == "batch" else MujocoBatchEnv)
    batch.set_tasks(tasks)
    obs_b = batch.reset([np.random.default_rng(i) for i in range(n)])
    actions = np.random.default_rng(1).uniform(-1.2, 1.2, size=(200, n, batch.act_dim))
    plain = [gym.make(env_id(name), task=t).unwrapped for t in tasks]
    for i, env in enumerate(plain):
        env.reset(seed=0)
        env.set_state(batch.get_data(i).qpos.copy(), batch.get_data(i).qvel.copy())
        assert np.array_equal(env._get_obs(), obs_b[i])
    for h in range(200):
        obs_b, rew_b, term_b = batch.step(actions[h])
        for i, env in enumerate(plain):
            obs, r, term, *_ = env.step(actions[h, i])
            assert np.array_equal(obs, obs_b[i]), (h, i)
            assert r == pytest.approx(rew_b[i], abs=1e-12)
            assert not term and not term_b[i]
    batch.close()


def test_batched_navigation_matches_single_env():
    tasks = Navigation2DEnv.sample_tasks(4, np.random.default_rng(0))
    batch = Navigation2DEnv.make_batch(4)
    batch.set_tasks(tasks)
    batch.reset([np.random.default_rng(0)] * 4)
    envs = [Navigation2DEnv(task=t) for t in tasks]
    for e in envs:
        e.reset(seed=0)
    acts = np.random.default_rng(0).normal(0, 0.2, size=(100, 4, 2))
    for h in range(100):
        obs_b, rew_b, _ = batch.step(acts[h])
        for i, e in enumerate(envs):
            obs, r, *_ = e.step(acts[h, i])
            assert np.allclose(obs, obs_b[i], atol=1e-6)
            assert r == pytest.approx(rew_b[i])


def test_mujoco_families_step_on_mujocos_batch_where_it_exists(monkeypatch):
    """MuJoCo >= 4: mujoco.batch (Ant: per copy); METARL_MUJOCO_STEPPER forces either path; bad values are errors."""
    from metarl.envs import make_mujoco_batch

    monkeypatch.delenv("METARL_MUJOCO_STEPPER", raising=False)
    expected = NativeMujocoBatchEnv if HAS_NATIVE_BATCH else MujocoBatchEnv
    for name in ["HalfCheetahVel", "HalfCheetahDir", "HopperRandParams", "Walker2dRandParams"]:
        assert type(get_family(name).make_batch(2, threads=1)) is expected, name
    assert type(get_family("Hopper-v5", "body_mass=0.5:2").make_batch(2, threads=1)) is expected
    assert type(get_family("AntDir").make_batch(2, threads=1)) is MujocoBatchEnv  # faster per copy (measured)
    if HAS_NATIVE_BATCH:
        monkeypatch.setenv("METARL_MUJOCO_STEPPER", "batch")
        assert type(get_family("AntDir").make_batch(2, threads=1)) is NativeMujocoBatchEnv  # exact too (tested)
    monkeypatch.setenv("METARL_MUJOCO_STEPPER", "per-copy")
    assert type(HalfCheetahVelEnv.make_batch(2, threads=1)) is MujocoBatchEnv
    monkeypatch.setenv("METARL_MUJOCO_STEPPER", "fast")
    with pytest.raises(ValueError, match="METARL_MUJOCO_STEPPER must be one of auto, batch, per-copy"):
        make_mujoco_batch(HalfCheetahVelEnv(), 2)


@pytest.mark.skipif(not HAS_NATIVE_BATCH, reason="mujoco.batch needs MuJoCo >= 4.0")
def test_batch_threads_follow_the_threads_argument():
    assert HalfCheetahVelEnv.make_batch(8, threads=2).batch.nthread == 2
    assert HalfCheetahVelEnv.make_batch(8, threads=1).batch.nthread == 1
    assert HalfCheetahVelEnv.make_batch(1, threads=2).batch.nthread == 1  # at most one per copy


@pytest.mark.parametrize("name", NAMES)
def test_reset_copies_restarts_those_copies_exactly_and_leaves_the_others(name, mujoco_stepper):
    """Copy 1 restarted mid-episode steps as a fresh reset from the same generator would (physics state and
    warm start included); copies 0 and 2 carry on as in a batch that was not touched."""
    fam = get_family(name)
    n, steps = 3, 8
    tasks = fam.sample_tasks(n, np.random.default_rng(0))
    touched, untouched, fresh = (fam.make_batch(n, threads=1) for _ in range(3))
    for b in (touched, untouched, fresh):
        b.set_tasks(tasks)
    acts = np.random.default_rng(1).uniform(-0.3, 0.3, size=(2 * steps, n, touched.act_dim))
    start = touched.reset([np.random.default_rng(i) for i in range(n)])
    assert np.array_equal(start, untouched.reset([np.random.default_rng(i) for i in range(n)]))
    for a in acts[:steps]:
        touched.step(a)
        untouched.step(a)
    obs1 = touched.reset_copies([1], [np.random.default_rng(7)])
    obs_fresh = fresh.reset([np.random.default_rng(i) for i in (0, 7, 2)])
    assert obs1.shape == (1, touched.obs_dim) and np.array_equal(obs1[0], obs_fresh[1])
    assert touched.reset_copies([], []).shape == (0, touched.obs_dim)
    with pytest.raises(ValueError, match="distinct copies in 0..2"):
        touched.reset_copies([1, 1], [np.random.default_rng(0)] * 2)
    for a in acts[steps:]:
        o_t, r_t, d_t = touched.step(a)
        o_u, r_u, d_u = untouched.step(a)
        o_f, r_f, d_f = fresh.step(a)
        assert np.array_equal(o_t[[0, 2]], o_u[[0, 2]]) and np.array_equal(r_t[[0, 2]], r_u[[0, 2]])
        assert np.array_equal(o_t[1], o_f[1]) and r_t[1] == r_f[1] and d_t[1] == d_f[1]
    for b in (touched, untouched, fresh):
        b.close()
