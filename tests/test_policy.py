"""MetaPolicy API, the adapt and evaluate CLIs, on a tiny real Navigation2D run."""

import json
import time

import gymnasium as gym
import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import metarl
from metarl.adapt import main as adapt_main
from metarl.checkpoint import CheckpointError
from metarl.evaluate import bootstrap_ci, paired_difference_ci
from metarl.evaluate import main as evaluate_main
from metarl.train import main as train_main


@pytest.fixture(scope="module")
def nav_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("nav") / "run"
    assert (
        train_main(
            [
                "--env",
                "Navigation2D",
                "--meta-iters",
                "3",
                "--meta-batch",
                "4",
                "--episodes-per-step",
                "5",
                "--inner-steps",
                "1",
                "--eval-every",
                "0",
                "--eval-tasks",
                "2",
                "--workers",
                "1",
                "--quiet",
                "--run-dir",
                str(run),
            ]
        )
        == 0
    )
    return run


def test_load_adapt_act_and_meta_is_unchanged(nav_run):
    meta = metarl.MetaPolicy.load(nav_run)
    before = {k: v.clone() for k, v in meta.theta.items()}
    env = gym.make("metarl/Navigation2D-v0", task={"goal": [0.4, -0.3]})
    adapted = meta.adapt(env, steps=2, episodes_per_step=5, seed=1)
    assert len(adapted.returns) == 3 and adapted.env_steps == 3 * 5 * 100
    assert adapted.task == env.unwrapped.get_task()
    assert all(torch.equal(meta.theta[k], before[k]) for k in before)
    assert any(not torch.equal(adapted.theta[k], before[k]) for k in before)
    obs, _ = env.reset(seed=0)
    a = adapted.act(obs)
    assert a.shape == (2,) and np.array_equal(a, adapted.act(obs))  # deterministic by default
    assert adapted.act(np.stack([obs, obs])).shape == (2, 2)
    # the same seed adapts the same way
    again = meta.adapt({"goal": [0.4, -0.3]}, steps=2, episodes_per_step=5, seed=1)
    assert adapted.returns == again.returns


def test_adapted_policy_saves_and_loads_back(nav_run, tmp_path):
    meta = metarl.MetaPolicy.load(nav_run / "checkpoints" / "latest.pt", family="Navigation2D")
    adapted = meta.adapt({"goal": [0.1, 0.2]}, steps=1, episodes_per_step=4)
    adapted.save(tmp_path / "adapted.pt")
    back = metarl.MetaPolicy.load(tmp_path / "adapted.pt")
    assert back.info["adapted"]["task"] == {"goal": [0.1, 0.2]}
    obs = np.array([0.05, -0.02], dtype=np.float32)
    assert np.allclose(back.act(obs), adapted.act(obs))


def test_loading_for_the_wrong_family_or_a_non_run_is_refused(nav_run, tmp_path):
    with pytest.raises(CheckpointError, match="family Navigation2D, not HalfCheetahVel"):
        metarl.MetaPolicy.load(nav_run, family="HalfCheetahVel")
    with pytest.raises(CheckpointError, match="not a metarl run"):
        metarl.MetaPolicy.load(tmp_path)
    meta = metarl.MetaPolicy.load(nav_run)
    with pytest.raises(TypeError, match="trained on Navigation2D"):
        meta.adapt(gym.make("metarl/HalfCheetahVel-v0"))


def test_adapt_cli_json(nav_run, capsys, tmp_path):
    t0 = time.perf_counter()
    assert (
        adapt_main(
            [
                "--env",
                "Navigation2D",
                "--checkpoint",
                str(nav_run),
                "--task",
                "goal=0.3:0.1",
                "--steps",
                "2",
                "--episodes-per-step",
                "4",
                "--json",
                "--save",
                str(tmp_path / "a.pt"),
            ]
        )
        == 0
    )
    elapsed = time.perf_counter() - t0
    out = json.loads(capsys.readouterr().out)
    assert out["env"] == "Navigation2D" and out["task"] == {"goal": [0.3, 0.1]}
    assert out["episodes_per_step"] == 4 and len(out["returns"]) == 3 and out["env_steps"] == 3 * 4 * 100
    assert 0.01 < out["seconds"] <= elapsed  # the adaptation's own time, within the command's
    assert (tmp_path / "a.pt").is_file()


def test_adapt_cli_text_with_a_sampled_task(nav_run, capsys):
    assert (
        adapt_main(
            [
                "--env",
                "Navigation2D",
                "--checkpoint",
                str(nav_run),
                "--steps",
                "1",
                "--episodes-per-step",
                "3",
                "--seed",
                "4",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "(sampled)" in out and "before adapting" in out and "after step 1" in out


def test_bootstrap_ci_brackets_the_mean_and_narrows_with_data():
    rng = np.random.default_rng(0)
    small = rng.normal(-100, 20, size=(3, 4, 10))
    large = rng.normal(-100, 20, size=(3, 4, 200))
    m, lo, hi = bootstrap_ci(small, 500)
    assert np.all(lo <= m) and np.all(m <= hi)
    _, lo2, hi2 = bootstrap_ci(large, 500)
    assert np.all(hi2 - lo2 < hi - lo)


def test_evaluate_cli_writes_results_plot_and_events(nav_run, tmp_path):
    out = tmp_path / "eval"
    assert (
        evaluate_main(
            [
                "--env",
                "Navigation2D",
                "--checkpoint",
                str(nav_run),
                "--multitask",
                str(nav_run),
                "--random-seeds",
                "1",
                "--oracle-tasks",
                "2",
                "--oracle-steps",
                "2",
                "--tasks",
                "3",
                "--steps",
                "1",
                "--episodes-per-step",
                "3",
                "--bootstrap",
                "100",
                "--out",
                str(out),
            ]
        )
        == 0
    )
    doc = json.loads((out / "results.json").read_text())
    names = [c["name"] for c in doc["curves"]]
    assert names == ["meta-policy (Reptile)", "multi-task baseline", "random init"]
    assert len(doc["curves"][0]["mean"]) == 2 and len(doc["curves"][0]["per_task"][0][0]) == 3
    assert doc["evaluation_seed"] == 1000 and doc["training_seeds"] == [0]
    assert doc["oracle"]["env_steps_per_task"] == 3 * 3 * 100
    assert (out / "curves.png").stat().st_size > 1000
    acc = EventAccumulator(str(out))
    acc.Reload()
    assert "evaluate/meta-policy/return" in acc.Tags()["scalars"]


def test_adapt_cli_agent_override_and_layout_mismatch(nav_run, capsys):
    assert (
        adapt_main(
            [
                "--env",
                "Navigation2D",
                "--checkpoint",
                str(nav_run),
                "--agent",
                "vpg",
                "--task",
                "goal=0.2:0.2",
                "--steps",
                "1",
                "--episodes-per-step",
                "3",
                "--json",
            ]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["agent"] == "vpg" and len(out["returns"]) == 2
    assert adapt_main(["--env", "Navigation2D", "--checkpoint", str(nav_run), "--agent", "sb3-a2c"]) == 2
    err = capsys.readouterr().err.strip()
    assert "trained with --agent ppo" in err and len(err.splitlines()) == 1


def test_evaluate_on_training_draws_with_test_time_inner_loop(nav_run, tmp_path, capsys):
    """--task-set train draws fresh training tasks (never the held-out set); --agent/--target-kl change the
    inner loop of every policy, and a bad value is a one-line error."""
    out = tmp_path / "eval_train"
    common = ["--env", "Navigation2D", "--checkpoint", str(nav_run), "--random-seeds", "0", "--oracle-tasks", "0"]
    small = ["--tasks", "3", "--steps", "1", "--episodes-per-step", "3", "--bootstrap", "50"]
    args = [*common, *small, "--task-set", "train", "--agent", "trpo", "--target-kl", "0.05", "--out", str(out)]
    assert evaluate_main(args) == 0
    doc = json.loads((out / "results.json").read_text())
    held_out = [t.to_dict() for t in metarl.envs.Navigation2DEnv.meta_test_tasks()]
    assert doc["task_set"] == "train" and len(doc["tasks"]) == 3
    assert not any(t in held_out for t in doc["tasks"])
    assert doc["inner_loop_overrides"] == {"agent": "trpo", "target_kl": 0.05}
    capsys.readouterr()
    assert evaluate_main([*common, *small, "--target-kl", "-1", "--out", str(tmp_path / "bad")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--target-kl must be positive" in err and len(err.splitlines()) == 1


def test_paired_difference_band_sees_a_margin_that_task_spread_hides():
    """Tasks differ by far more than the policies do: the unpaired bands overlap, the paired band of the
    difference excludes zero and covers the true margin of 5."""
    rng = np.random.default_rng(1)
    task_level = rng.normal(-100, 30, size=40)
    b = task_level + rng.normal(0, 2, size=(3, 4, 40))
    a = task_level + 5 + rng.normal(0, 2, size=(3, 4, 40))
    _, lo_a, _ = bootstrap_ci(a, 500)
    _, _, hi_b = bootstrap_ci(b, 500)
    assert np.all(lo_a < hi_b)  # unpaired: overlapping
    d, lo, hi = paired_difference_ci(a, b, 500)
    assert np.all(lo > 0) and np.all(lo < 5) and np.all(5 < hi) and np.allclose(d, 5, atol=1)


def test_evaluate_overrides_the_entropy_bonus_baseline_and_damping_of_every_policy(nav_run, tmp_path, capsys):
    """--ent-coef/--baseline/--cg-damping (issue 15's meta-test directions) replace the meta-test inner loop's, are
    recorded, and one that the agent does not read is a one-line error."""
    common = ["--env", "Navigation2D", "--checkpoint", str(nav_run), "--random-seeds", "0", "--oracle-tasks", "0"]
    small = ["--tasks", "2", "--steps", "1", "--episodes-per-step", "3", "--bootstrap", "50", "--task-set", "train"]
    out = tmp_path / "linear"
    flags = ["--agent", "trpo", "--baseline", "linear", "--ent-coef", "0", "--cg-damping", "10"]
    assert evaluate_main([*common, *small, *flags, "--out", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    assert doc["inner_loop_overrides"] == {"agent": "trpo", "baseline": "linear", "ent_coef": 0.0, "cg_damping": 10.0}
    assert (doc["inner_loop"]["cg_damping"], doc["inner_loop"]["baseline"]) == (
        10.0,
        "linear",
    )  # the loop it adapted by
    capsys.readouterr()
    assert evaluate_main([*common, *small, "--agent", "ppo", "--baseline", "linear", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--baseline is not used by --agent ppo" in err and len(err.splitlines()) == 1, err
    assert evaluate_main([*common, *small, "--agent", "ppo", "--cg-damping", "10", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip()
    assert "--cg-damping is not used by --agent ppo" in err and len(err.splitlines()) == 1, err
