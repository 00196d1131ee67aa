"""The standard suite (Ant, RandParams walkers, Pendulum) and dynamics randomisation of any Gymnasium env.

The generic contract tests (check_env, same seed, pickling, meta-test set) run over every family in
tests/test_envs.py; here: each family's reward and task effect with numbers, the batched path against
plain Gymnasium stepping, exact restoration of randomised physics, and the ``--randomize`` CLI.
"""

import dataclasses
import json
import math
import pickle

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import utils
from gymnasium.envs.classic_control.pendulum import PendulumEnv
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv
from gymnasium.utils.env_checker import check_env

import metarl  # noqa: F401  (registers the ids)
from metarl import train
from metarl.envs import (
    DYNAMICS_FIELDS,
    FAMILIES,
    AngleTask,
    DirectionTask,
    DynamicsTask,
    GoalTask,
    HopperRandParamsEnv,
    PendulumRandParamsEnv,
    PendulumTask,
    RandomizeError,
    Task,
    TaskError,
    TaskFamily,
    Walker2dRandParamsEnv,
    env_id,
    get_family,
    parse_randomize,
    randomized,
    register_family,
)

ANT = ["AntDir", "AntDirAngle", "AntGoal"]
RAND_PARAMS = ["HopperRandParams", "Walker2dRandParams"]


def _run(env, actions, seed=3):
    env.reset(seed=seed)
    return [env.step(a) for a in actions]


# ---- Ant ----------------------------------------------------------------------------------------
def _contact(env):
    return 5e-4 * np.sum(np.square(np.clip(env.unwrapped.data.cfrc_ext, -1, 1)))


def test_ant_dir_reward_flips_with_the_direction_and_follows_its_formula():
    env = gym.make("metarl/AntDir-v0", task=DirectionTask(1)).unwrapped
    acts = np.random.default_rng(0).uniform(-1, 1, size=(15, 8))
    fwd, contacts = [], []
    env.reset(seed=3)
    for a in acts:
        fwd.append(env.step(a))
        contacts.append(_contact(env))
    env.set_task(DirectionTask(-1))
    bwd = _run(env, acts)
    for (_, rf, tf, _, i_f), (_, rb, _, _, i_b), c, a in zip(fwd, bwd, contacts, acts):
        assert i_f["x_velocity"] == i_b["x_velocity"]  # the task changes the reward, not the physics
        assert c > 0 or i_f["reward_contact"] == 0
        base = 1.0 - 0.5 * np.sum(a**2) - c
        assert rf == pytest.approx(i_f["x_velocity"] + base, abs=1e-9)
        assert rb == pytest.approx(-i_b["x_velocity"] + base, abs=1e-9)
        assert i_f["task"] == DirectionTask(1) and i_b["task"] == DirectionTask(-1)
        assert not tf


def test_ant_dir_angle_projects_the_planar_velocity():
    env = gym.make("metarl/AntDirAngle-v0", task=AngleTask(math.pi / 2)).unwrapped
    acts = np.random.default_rng(1).uniform(-1, 1, size=(10, 8))
    out = _run(env, acts)
    env.set_task(AngleTask(0.0))
    out0 = _run(env, acts)
    for (_, r, *_, info), (_, r0, *_, info0), _a in zip(out, out0, acts):
        assert info["reward_task"] == pytest.approx(info["y_velocity"], abs=1e-12)
        assert info0["reward_task"] == pytest.approx(info0["x_velocity"], abs=1e-12)
        assert r - r0 == pytest.approx(info["y_velocity"] - info["x_velocity"], abs=1e-9)


def test_ant_goal_reward_is_the_l1_distance_and_never_terminates():
    env = gym.make("metarl/AntGoal-v0", task=GoalTask((2.0, -1.0))).unwrapped
    env.reset(seed=0)
    env.unwrapped.data.qpos[2] = 0.05  # an "unhealthy" height: AntGoal goes on (PEARL)
    a = np.full(8, 2.0)  # clipped to 1 before the control cost
    for _ in range(5):
        _, r, term, _, info = env.step(a)
        expected = -abs(info["x_position"] - 2.0) - abs(info["y_position"] + 1.0) - 0.1 * 8 - _contact(env)
        assert r == pytest.approx(expected, abs=1e-9)
        assert not term
    assert info["reward_ctrl"] == pytest.approx(-0.8)


def test_ant_goals_fill_the_disk_of_radius_3():
    goals = np.array([t.goal for t in get_family("AntGoal").sample_tasks(4000, np.random.default_rng(0))])
    r = np.linalg.norm(goals, axis=1)
    assert r.max() <= 3.0 and r.max() > 2.95
    assert np.mean(r < 1.5) == pytest.approx(0.25, abs=0.03)  # uniform over the area, not the radius


def test_ant_dir_terminates_when_unhealthy():
    env = gym.make("metarl/AntDir-v0", task=DirectionTask(1)).unwrapped
    env.reset(seed=0)
    env.set_state(env.data.qpos.copy() + np.r_[0, 0, 0.5, np.zeros(12)], env.data.qvel.copy())  # torso at 1.25 > 1
    _, r, term, _, info = env.step(np.zeros(8))
    assert term and info["reward_task"] == pytest.approx(r + _contact(env))  # no survival bonus


# ---- randomised dynamics ------------------------------------------------------------------------
@pytest.mark.parametrize("name", RAND_PARAMS)
def test_rand_params_scale_the_nominal_model_and_restore_it_exactly(name):
    fam = get_family(name)
    env = gym.make(env_id(name)).unwrapped
    nominal = {f: env._nominal[f].copy() for f in fam.scale_ranges}
    t1, t2 = fam.sample_tasks(2, np.random.default_rng(5))
    acts = np.random.default_rng(2).uniform(-1, 1, size=(40, env.action_space.shape[0]))

    def trace():
        return np.array([np.append(o, r) for o, r, *_ in _run(env, acts)])

    env.set_task(t1)
    for f in fam.scale_ranges:
        assert np.array_equal(getattr(env.model, f), nominal[f] * t1.scale(f).reshape(nominal[f].shape)), f
    s = t1.scale("body_mass")
    assert s.min() >= 1.5**-3 and s.max() <= 1.5**3 and len(set(s)) == len(s)  # element-wise draws
    first = trace()
    env.set_task(t1)  # set twice: not scaled twice
    assert np.array_equal(env.model.body_mass, nominal["body_mass"] * s)
    assert np.array_equal(trace(), first)
    env.set_task(t2)
    other = trace()
    assert not np.allclose(other[:, :-1], first[:, :-1])  # the task changes the physics
    env.set_task(t1)  # and back
    assert np.array_equal(trace(), first)


@pytest.mark.parametrize("name", RAND_PARAMS)
def test_rand_params_reward_is_forward_velocity_plus_alive_bonus(name):
    env = gym.make(env_id(name)).unwrapped
    acts = np.random.default_rng(3).uniform(-1.5, 1.5, size=(30, env.action_space.shape[0]))
    for (_, r, term, _, info), a in zip(_run(env, acts), acts):
        alive = 0.0 if term else 1.0
        assert r == pytest.approx(info["x_velocity"] + alive - 1e-3 * np.sum(np.clip(a, -1, 1) ** 2), abs=1e-9)
        if term:
            break


@pytest.mark.parametrize("fam", [HopperRandParamsEnv, Walker2dRandParamsEnv])
def test_rand_params_draws_span_the_literature_ranges_and_episodes_last_200_steps(fam):
    """Scales 1.5^U(-3,3) (mass, inertia, friction) and 1.3^U(-3,3) (damping), measured on the drawn tasks'
    models; an episode that stays healthy is cut at step 200 by gym.make's time limit."""
    env = fam()
    nominal = gym.make(fam.family_name.replace("RandParams", "-v5")).unwrapped.model.body_mass.copy()
    ratios = []
    for task in fam.sample_tasks(300, np.random.default_rng(0)):
        env.set_task(task)
        ratios.append(env.model.body_mass[1:] / nominal[1:])  # body 0 is the world
        assert task.scale("dof_damping").min() >= 1.3**-3 and task.scale("dof_damping").max() <= 1.3**3
    logs = np.log(np.concatenate(ratios)) / np.log(1.5)
    assert -3 <= logs.min() < -2.9 and 2.9 < logs.max() <= 3 and abs(logs.mean()) < 0.2  # uniform exponent
    damping = np.log(np.concatenate([t.scale("dof_damping") for t in fam.sample_tasks(300, np.random.default_rng(1))]))
    assert -3 <= damping.min() / np.log(1.3) < -2.9 and 2.9 < damping.max() / np.log(1.3) <= 3
    wrapped = gym.make(env_id(fam.family_name), terminate_when_unhealthy=False)
    wrapped.reset(seed=0)
    truncated_at = next(t for t in range(1, 1000) if wrapped.step(np.zeros(wrapped.action_space.shape))[3])
    assert truncated_at == 200


def test_dynamics_task_round_trips_through_json_and_rejects_bad_scales():
    t = HopperRandParamsEnv.sample_tasks(1, np.random.default_rng(0))[0]
    assert DynamicsTask.from_dict(json.loads(json.dumps(t.to_dict()))) == t
    with pytest.raises(TaskError, match="positive"):
        DynamicsTask({"body_mass": [1.0, -2.0]})
    env = HopperRandParamsEnv()
    with pytest.raises(TaskError, match=r"body_inertia needs 15 scales, got 3"):
        env.set_task({"scales": {f: [1.0] * 3 for f in HopperRandParamsEnv.scale_ranges}})


def test_randomized_any_gymnasium_env_in_one_line():
    fam = randomized("Hopper-v5", body_mass=(0.5, 2.0), geom_friction=(0.5, 1.5))
    assert fam is get_family("Hopper-v5", "geom_friction=0.5:1.5,body_mass=0.5:2.0")
    assert fam is get_family(fam.family_name)  # checkpoints name it; the name rebuilds it
    env = fam()
    check_env(env, skip_render_check=True)
    t = fam.sample_tasks(3, np.random.default_rng(0))[2]
    env.set_task(t)
    assert np.array_equal(env.model.body_mass, env._nominal["body_mass"] * t.scale("body_mass"))
    assert np.array_equal(env.model.dof_damping, env._nominal.get("dof_damping", env.model.dof_damping))
    assert all(0.5 <= s <= 2.0 for s in t.scale("body_mass"))
    assert pickle.loads(pickle.dumps(env)).get_task() == t
    # any other MuJoCo env goes through its own step (no batched hooks)
    swim = randomized("Swimmer-v5", body_mass=(0.8, 1.25))
    e = swim()
    check_env(e, skip_render_check=True)
    e.set_task(swim.sample_tasks(1, np.random.default_rng(1))[0])
    assert pickle.loads(pickle.dumps(e)).get_task() == e.get_task()
    batch = swim.make_batch(2)
    batch.set_tasks(swim.sample_tasks(2, np.random.default_rng(0)))
    obs = batch.reset([np.random.default_rng(0), np.random.default_rng(1)])
    obs2, rew, term = batch.step(np.zeros((2, batch.act_dim)))
    assert obs.shape == obs2.shape == (2, batch.obs_dim) and rew.shape == (2,)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: randomized("Hopper-v5", body_mas=(0.5, 2.0)),
            "unknown model field 'body_mas'; valid fields: body_mass",
        ),
        (lambda: randomized("Hopper-v5", body_mass=(2.0, 0.5)), "0 < low <= high"),
        (lambda: randomized("Hopper-v5", body_mass=(0.0, 1.0)), "0 < low <= high"),
        (lambda: randomized("Hoper-v5", body_mass=(0.5, 2.0)), "unknown Gymnasium id 'Hoper-v5'"),
        (lambda: randomized("CartPole-v1", body_mass=(0.5, 2.0)), "not a Gymnasium MuJoCo env"),
        (lambda: parse_randomize("body_mass"), "not FIELD=LOW:HIGH"),
        (lambda: parse_randomize("body_mass=a:b"), "not LOW:HIGH numbers"),
        (lambda: get_family("HopperRandParams", "body_mass=0.5:2"), "applies to Gymnasium MuJoCo ids"),
    ],
)
def test_bad_randomisations_are_one_line_errors(call, message):
    with pytest.raises(RandomizeError, match=message.replace("(", r"\(")) as e:
        call()
    assert "\n" not in str(e.value)


def test_valid_fields_exist_on_the_model():
    model = gym.make("Hopper-v5").unwrapped.model
    for f in DYNAMICS_FIELDS:
        assert getattr(model, f).dtype == np.float64


# ---- Pendulum -----------------------------------------------------------------------------------
def test_pendulum_with_unit_mass_and_length_is_gymnasium_pendulum():
    ours = PendulumRandParamsEnv(task=PendulumTask(1.0, 1.0))
    ref = PendulumEnv()
    o1, _ = ours.reset(seed=4)
    o2, _ = ref.reset(seed=4)
    assert np.array_equal(o1, o2)
    for u in np.random.default_rng(0).uniform(-3, 3, size=(50, 1)):
        o1, r1, *_ = ours.step(u)
        o2, r2, *_ = ref.step(u)
        assert np.array_equal(o1, o2) and r1 == pytest.approx(r2, abs=1e-12)


def test_pendulum_mass_and_length_change_the_dynamics_as_the_formula_says():
    env = PendulumRandParamsEnv(task=PendulumTask(2.0, 0.5))
    env.reset(seed=0)
    env.state = np.array([0.3, 0.0])
    env.step(np.array([1.0]))
    thdot = (3 * 10 / (2 * 0.5) * math.sin(0.3) + 3.0 / (2.0 * 0.5**2) * 1.0) * 0.05
    assert env.state == pytest.approx([0.3 + thdot * 0.05, thdot])
    _, r, *_ = env.step(np.array([0.0]))
    assert r == pytest.approx(-((0.3 + thdot * 0.05) ** 2 + 0.1 * thdot**2))


# ---- batched stepping = plain stepping ----------------------------------------------------------
def _batched_vs_plain(fam, tasks, steps, threads, low=-1.2, high=1.2):
    n = len(tasks)
    batch = fam.make_batch(n, threads=threads)
    batch.set_tasks(tasks)
    obs_b = batch.reset([np.random.default_rng(i) for i in range(n)])
    actions = np.random.default_rng(1).uniform(low, high, size=(steps, n, batch.act_dim))
    plain = [fam(task=t) for t in tasks]
    for i, env in enumerate(plain):
        env.reset(seed=0)
        env.set_state(batch.get_data(i).qpos.copy(), batch.get_data(i).qvel.copy())
        # the solver's warm start too: MuJoCo 3.3 updates it in mj_forward, which set_state calls again
        env.data.qacc_warmstart[:] = batch.get_data(i).qacc_warmstart
        assert np.array_equal(env._get_obs(), obs_b[i])
    done = np.zeros(n, dtype=bool)
    for h in range(steps):
        obs_b, rew_b, term_b = batch.step(actions[h])
        for i, env in enumerate(plain):
            if done[i]:  # a terminated copy is frozen until the next reset
                assert term_b[i] and rew_b[i] == 0.0
                continue
            obs, r, term, *_ = env.step(actions[h, i])
            assert np.array_equal(obs, obs_b[i]), (h, i)
            assert r == pytest.approx(rew_b[i], abs=1e-12)
            assert term == term_b[i]
            done[i] = term
    batch.close()
    return done


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("name", ANT + RAND_PARAMS + ["Hopper-v5[body_mass=0.5:2,geom_friction=0.5:1.5]"])
def test_batched_stepping_reproduces_plain_gymnasium_stepping(name, threads, mujoco_stepper):
    fam = get_family(name)
    tasks = fam.sample_tasks(4, np.random.default_rng(0))
    done = _batched_vs_plain(fam, tasks, steps=60, threads=threads)
    if name in RAND_PARAMS:
        assert done.any()  # random actions topple them: termination is part of what is compared


def test_batched_pendulum_matches_single_env():
    tasks = PendulumRandParamsEnv.sample_tasks(4, np.random.default_rng(0))
    batch = PendulumRandParamsEnv.make_batch(4)
    batch.set_tasks(tasks)
    obs_b = batch.reset([np.random.default_rng(i) for i in range(4)])
    envs = [PendulumRandParamsEnv(task=t) for t in tasks]
    for i, e in enumerate(envs):
        e.reset(seed=0)
        e.state = np.array([math.atan2(obs_b[i, 1], obs_b[i, 0]), obs_b[i, 2]])
    acts = np.random.default_rng(0).uniform(-3, 3, size=(200, 4, 1))
    for h in range(200):
        obs_b, rew_b, _ = batch.step(acts[h])
        for i, e in enumerate(envs):
            obs, r, *_ = e.step(acts[h, i])
            assert np.allclose(obs, obs_b[i], atol=1e-5)
            assert r == pytest.approx(rew_b[i], rel=1e-9, abs=1e-9)


def test_batched_dynamics_copies_follow_their_own_task(mujoco_stepper):
    fam = HopperRandParamsEnv
    t1, t2 = fam.sample_tasks(2, np.random.default_rng(9))
    batch = fam.make_batch(3, threads=1)
    batch.set_tasks([t1, t2, t1])
    assert np.array_equal(batch.models[0].body_mass, batch.models[2].body_mass)
    assert not np.array_equal(batch.models[0].body_mass, batch.models[1].body_mass)
    batch.set_tasks([t2, t2, t1])
    assert np.array_equal(batch.models[0].body_mass, batch.models[1].body_mass)
    assert np.array_equal(batch.models[0].body_mass, batch.template._nominal["body_mass"] * t2.scale("body_mass"))


# ---- training CLI ------------------------------------------------------------------------------
TINY = ["--meta-iters", "2", "--meta-batch", "2", "--episodes-per-step", "2", "--inner-steps", "1"]
TINY += ["--eval-tasks", "2", "--eval-steps", "1", "--eval-every", "0", "--workers", "1", "--quiet"]


def test_train_cli_randomises_a_gymnasium_env_and_resumes_it(tmp_path):
    run = tmp_path / "run"
    spec = "body_mass=0.5:2.0,geom_friction=0.5:1.5"
    assert train.main(["--env", "Hopper-v5", "--randomize", spec, "--run-dir", str(run), *TINY]) == 0
    saved = json.loads((run / "config.json").read_text())
    assert saved["config"]["env"] == "Hopper-v5" and saved["config"]["randomize"] == spec
    assert saved["family"] == "Hopper-v5[body_mass=0.5:2,geom_friction=0.5:1.5]"
    assert train.main(["--resume", str(run), "--meta-iters", "3", "--quiet"]) == 0
    import torch

    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert state["family"] == saved["family"] and state["iteration"] == 3


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "Hopper-v5", "--randomize", "body_mas=0.5:2"], "unknown model field 'body_mas'; valid fields"),
        (["--env", "Hopper-v5", "--randomize", "body_mass=2:1"], "0 < low <= high"),
        (["--env", "Hopper-v5"], "not a task family; make it one with --randomize"),
    ],
)
def test_train_cli_bad_randomisation_is_one_line(tmp_path, capsys, argv, message):
    assert train.main([*argv, "--run-dir", str(tmp_path / "r"), *TINY]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("name", ["PendulumRandParams", "AntGoal", "Walker2dRandParams"])
def test_train_cli_runs_each_new_family(tmp_path, name):
    run = tmp_path / name
    assert train.main(["--env", name, "--run-dir", str(run), *TINY]) == 0
    assert json.loads((run / "config.json").read_text())["family"] == name


# ---- a goal-varying family in a few lines (the example of docs/families.md) ---------------------
@dataclasses.dataclass(frozen=True)
class TargetVelocity(Task):
    velocity: float


class HopperVelEnv(TaskFamily, HopperEnv):  # reward -|v_x - v_goal| + 1 (alive) - 1e-3·Σa²
    family_name, task_type, horizon, meta_test_seed = "HopperVel", TargetVelocity, 200, 12345

    def __init__(self, task=None, **kwargs):
        HopperEnv.__init__(self, **kwargs)
        utils.EzPickle.__init__(self, task=task, **kwargs)
        self._init_task(task)

    @classmethod
    def _draw_tasks(cls, n, rng):
        return [TargetVelocity(float(v)) for v in rng.uniform(0.0, 2.0, size=n)]

    def _get_rew(self, x_velocity, action):
        reward = -abs(x_velocity - self._task.velocity) + self.healthy_reward - self.control_cost(action)
        return reward, {"x_velocity": x_velocity}


def test_the_documented_goal_family_works_end_to_end(tmp_path):
    register_family(HopperVelEnv)
    try:
        env = gym.make("metarl/HopperVel-v0", task=TargetVelocity(1.5))
        check_env(env.unwrapped, skip_render_check=True)
        a = np.full(3, 0.3)
        for _, r, term, _, info in _run(env, [a] * 5):
            assert r == pytest.approx(-abs(info["x_velocity"] - 1.5) + (not term) - 1e-3 * np.sum(a**2))
        env.unwrapped.set_task(TargetVelocity(0.0))
        assert pickle.loads(pickle.dumps(env.unwrapped)).get_task() == TargetVelocity(0.0)
        assert len(set(HopperVelEnv.meta_test_tasks())) == 40
        assert train.main(["--env", "HopperVel", "--run-dir", str(tmp_path / "r"), *TINY]) == 0
    finally:
        FAMILIES.pop("HopperVel", None)


def test_batched_bring_your_own_family_clips_actions_before_the_reward():
    """BatchEnv promises clipped actions: the control cost of a family without batched hooks sees them clipped."""
    batch = HopperVelEnv.make_batch(2)
    tasks = [TargetVelocity(0.5), TargetVelocity(1.5)]
    batch.set_tasks(tasks)
    batch.reset([np.random.default_rng(3), np.random.default_rng(4)])
    plain = [HopperVelEnv(task=t) for t in tasks]
    for env, seed in zip(plain, (3, 4)):
        env.reset(seed=int(np.random.default_rng(seed).integers(2**31)))
    big = np.full((2, batch.act_dim), 5.0)
    _, reward, _ = batch.step(big)
    clipped = [env.step(np.clip(a, env.action_space.low, env.action_space.high))[1] for env, a in zip(plain, big)]
    np.testing.assert_array_equal(reward, clipped)
    batch.close()
