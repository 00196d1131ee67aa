"""Meta-World families (the optional ``metaworld`` extra): real Meta-World envs, a real short training.

Every test that needs Meta-World asks for the ``mw`` fixture, which skips without it
(``pytest.importorskip``); the first two tests run in every install and check the default path.
"""

import importlib.util
import json
import pickle
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl import evaluate, train
from metarl.checkpoint import load_checkpoint
from metarl.envs import MetaWorldTask, TaskError, get_family
from metarl.envs.gym_batch import GymBatchEnv
from metarl.tasks import parse_task

HAVE_METAWORLD = importlib.util.find_spec("metaworld") is not None


@pytest.fixture
def mw():
    return pytest.importorskip("metaworld")


@pytest.fixture
def reach(mw):
    return get_family("ML1-reach-v3")


# ---- the default install ------------------------------------------------------------------------
def test_importing_metarl_never_imports_metaworld(tmp_path):
    code = (
        "import sys, metarl, metarl.envs, metarl.envs.metaworld, metarl.trainer;"
        "metarl.envs.get_family('HalfCheetahVel');"
        "assert 'metaworld' not in sys.modules, 'metaworld was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=tmp_path)


@pytest.mark.skipif(HAVE_METAWORLD, reason="checks the install without Meta-World")
def test_without_metaworld_asking_for_it_says_how_to_install(capsys):
    assert train.main(["--env", "ML1-reach-v3", "--meta-iters", "1", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert 'pip install "metarl[metaworld]"' in err


# ---- the env contract ---------------------------------------------------------------------------
def test_check_env_registration_and_hidden_goal(reach):
    env = gym.make("metarl/ML1-reach-v3-v0")
    assert env.spec.max_episode_steps == 500 == reach.horizon
    assert get_family("ML1-reach") is reach is get_family("metarl/ML1-reach-v3-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (39,) and info["task"] == env.unwrapped.get_task()
    assert np.all(obs[-3:] == 0.0)  # ML benchmarks hide the goal: the policy must infer it from rewards


def test_unknown_names_give_one_line_errors(mw):
    with pytest.raises(KeyError, match="did you mean ML1-reach-v3"):
        get_family("ML1-reech-v3")
    assert train.main(["--env", "ML1-reech", "--meta-iters", "1", "--quiet"]) == 2


@pytest.mark.parametrize(
    "values, message",
    [
        ({"env_name": "reach-v3", "split": "val", "index": 0}, "'train' or 'test'"),
        ({"env_name": "reach-v3", "split": "train", "index": 50}, "integer in 0..49"),
        ({"env_name": "reach-v3", "split": "train", "index": 1.5}, "integer in 0..49"),
        ({"env_name": "reach-v3", "split": "train"}, "missing task field 'index'"),
    ],
)
def test_bad_tasks_give_clear_errors(values, message):
    with pytest.raises(TaskError, match=message):
        MetaWorldTask.from_dict(values)


def test_tasks_round_trip_json_and_a_foreign_class_is_refused(reach):
    task = MetaWorldTask("reach-v3", "test", 7)
    assert MetaWorldTask.from_dict(json.loads(json.dumps(task.to_dict()))) == task
    assert parse_task(reach, "env_name=reach-v3,split=test,index=7") == task
    assert parse_task(reach, json.dumps(task.to_dict())) == task
    with pytest.raises(TaskError, match="example: --task env_name=reach-v3,split=test,index=0"):
        parse_task(reach, "env_name=reach-v3,split=test,index=70")
    env = reach()
    with pytest.raises(TaskError, match="no train class 'push-v3'.*reach-v3"):
        env.set_task(MetaWorldTask("push-v3", "train", 0))


def _rollout(env, actions, seed=0):
    env.reset(seed=seed)
    return [env.step(a) for a in actions]


def test_set_task_changes_the_goal_and_the_reward_as_reach_defines_it(reach):
    """Same actions, two goals: the same hand path, the reward 10 / (1 + 9 ((d - 0.05) / m)^2) of each goal."""
    env = reach()
    actions = np.random.default_rng(0).uniform(-1, 1, size=(40, 4))
    traces = {}
    for index in (0, 1):
        task = MetaWorldTask("reach-v3", "train", index)
        env.set_task(task)
        goal = pickle.loads(reach.goal_of(task).data)["rand_vec"][-3:]
        steps = _rollout(env, actions)
        inner = env.unwrapped._env
        assert np.allclose(inner._target_pos, goal)  # the task's goal, from the benchmark's list
        margin = np.linalg.norm(inner.hand_init_pos - goal)
        for _, reward, terminated, _, info in steps:
            d = info["near_object"]  # reach: distance from the gripper to the goal
            expected = 10.0 if d <= 0.05 else 10.0 / (1.0 + 9.0 * ((d - 0.05) / margin) ** 2)
            assert reward == pytest.approx(expected, rel=1e-9)
            assert info["success"] == float(d <= 0.05) and info["task"] == task and not terminated
        traces[index] = steps
    hand = [[s[0][:3] for s in traces[i]] for i in (0, 1)]
    assert np.allclose(hand[0], hand[1])  # the goal changes the reward, not the arm's physics
    r0, r1 = (np.array([s[1] for s in traces[i]]) for i in (0, 1))
    assert np.abs(r0 - r1).max() > 0.1


def test_same_seed_same_tasks_and_same_rollout(reach):
    t1 = reach.sample_tasks(5, np.random.default_rng(7))
    assert t1 == reach.sample_tasks(5, np.random.default_rng(7))
    assert t1 != reach.sample_tasks(5, np.random.default_rng(8))
    assert len(set(t1)) == 5 and all(t.split == "train" for t in t1)

    def rollout():
        env = gym.make("metarl/ML1-reach-v3-v0", task=t1[0])
        obs, _ = env.reset(seed=11)
        env.action_space.seed(11)
        trace = [obs]
        for _ in range(30):
            obs, r, *_ = env.step(env.action_space.sample())
            trace.append(np.append(obs, r))
        return np.concatenate(trace)

    assert np.array_equal(rollout(), rollout())


def test_pickling_keeps_the_task_and_the_goal(reach):
    env = reach()
    task = reach.meta_test_tasks()[3]
    env.set_task(task)
    back = pickle.loads(pickle.dumps(env))
    assert back.get_task() == task
    a = np.full(4, 0.3)
    assert np.array_equal(_rollout(back, [a] * 5)[-1][0], _rollout(env, [a] * 5)[-1][0])


def test_meta_test_set_is_the_benchmarks_test_goals(reach):
    test = reach.meta_test_tasks()
    assert len(test) == 50 == reach.num_meta_test_tasks
    assert {t.split for t in test} == {"test"}
    train = [MetaWorldTask("reach-v3", "train", i) for i in range(50)]
    goals = [{tuple(pickle.loads(reach.goal_of(t).data)["rand_vec"]) for t in ts} for ts in (train, test)]
    train_goals, test_goals = goals
    assert len(train_goals) == 50 and set(reach.sample_tasks(50, np.random.default_rng(0))) == set(train)
    assert len(test_goals) == 50 and not train_goals & test_goals
    assert reach.in_training_distribution(test[0])  # ML1: held-out goals of the same distribution


def test_ml10_holds_out_five_classes(mw):
    fam = get_family("ML10")
    assert len(fam.train_classes) == 10 and len(fam.test_classes) == 5
    assert not set(fam.train_classes) & set(fam.test_classes)
    test = fam.meta_test_tasks()
    assert len(test) == 250 and {t.env_name for t in test[:5]} == set(fam.test_classes)
    train_tasks = fam.sample_tasks(40, np.random.default_rng(0))
    assert {t.env_name for t in train_tasks} <= set(fam.train_classes)
    assert not fam.in_training_distribution(test[0])
    env = fam(task=test[0])  # one env per class: switching tasks switches models
    obs_test = env.reset(seed=0)[0]
    env.set_task(train_tasks[0])
    assert not np.array_equal(env.reset(seed=0)[0], obs_test)


# ---- success ------------------------------------------------------------------------------------
def test_batch_env_flags_an_episode_that_succeeded_at_any_step(reach):
    batch = reach.make_batch(2)
    assert isinstance(batch, GymBatchEnv)
    batch.set_tasks([MetaWorldTask("reach-v3", "train", i) for i in (0, 1)])
    batch.reset([np.random.default_rng(i) for i in range(2)])
    assert batch.episode_success().tolist() == [False, False]
    ever = []
    for _ in range(reach.horizon):
        inner = batch.envs[0]._env  # copy 0: drive the gripper to its goal; copy 1: stay still
        to_goal = np.clip((inner._target_pos - inner.tcp_center) * 50, -1, 1)
        batch.step(np.array([[*to_goal, 0.0], [0.0, 0.0, 0.0, 0.0]]))
        ever.append(batch.episode_success().copy())
    assert ever[-1].tolist() == [True, False]
    assert not ever[0][0]  # it starts far from the goal: success is reached, then remembered
    batch.reset([np.random.default_rng(i) for i in range(2)])
    assert batch.episode_success().tolist() == [False, False]
    batch.close()


def test_families_without_success_report_none():
    batch = get_family("Navigation2D").make_batch(2)
    assert batch.episode_success() is None
    assert get_family("HalfCheetahVel").make_batch(2, threads=1).episode_success() is None


# ---- the CLIs -----------------------------------------------------------------------------------
TINY = ["--meta-batch", "2", "--episodes-per-step", "1", "--inner-steps", "1", "--eval-tasks", "1"]
TINY += ["--eval-steps", "1", "--workers", "1", "--hidden", "16", "--quiet"]


def test_train_two_iterations_writes_a_checkpoint_and_success_rates(reach, tmp_path):
    run = tmp_path / "run"
    assert train.main(["--env", "ML1-reach", "--meta-iters", "2", "--run-dir", str(run), *TINY]) == 0
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["family"] == "ML1-reach-v3" and cfg["preset"]["episodes_per_step"] == 10  # the ML1 preset applied
    acc = EventAccumulator(str(run))
    acc.Reload()
    tags = {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}
    for k in (0, 1):
        assert [s for s, _ in tags[f"eval/success_step{k}"]] == [0, 2]
        assert all(v in (0.0, 1.0) for _, v in tags[f"eval/success_step{k}"])  # 1 task x 1 episode
    assert [s for s, _ in tags["adapt/success_pre"]] == [1, 2]
    assert all(v in (0.0, 0.5, 1.0) for _, v in tags["adapt/success_post"])  # 2 tasks x 1 episode
    assert tags["time/env_steps_total"][-1][1] == 2 * 2 * 1 * 2 * 500
    state = load_checkpoint(run / "checkpoints" / "latest.pt", family="ML1-reach-v3")
    assert state["iteration"] == 2 and state["theta"]["pi.0.w"].shape == torch.Size([39, 16])

    out = tmp_path / "eval"
    argv = ["--env", "ML1-reach", "--checkpoint", str(run), "--tasks", "1", "--steps", "1"]
    argv += ["--episodes-per-step", "1", "--random-seeds", "1", "--oracle-tasks", "0", "--out", str(out)]
    assert evaluate.main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    for curve in doc["curves"]:
        assert len(curve["success_mean"]) == 2 and all(r in (0.0, 1.0) for r in curve["success_mean"])
