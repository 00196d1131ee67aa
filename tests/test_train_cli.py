"""The train CLI run in-process on tiny budgets; the tests read back what it wrote."""

import json

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.checkpoint import load_checkpoint
from metarl.config import CONFIG_VERSION
from metarl.train import main

TINY = [
    "--meta-batch",
    "2",
    "--episodes-per-step",
    "3",
    "--inner-steps",
    "1",
    "--eval-tasks",
    "2",
    "--workers",
    "1",
    "--quiet",
]


def scalars(run_dir):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}, acc


def test_navigation_run_writes_config_events_and_checkpoints(tmp_path):
    run = tmp_path / "run"
    assert (
        main(
            [
                "--env",
                "Navigation2D",
                "--meta-iters",
                "4",
                "--eval-every",
                "2",
                "--checkpoint-every",
                "2",
                "--run-dir",
                str(run),
                *TINY,
            ]
        )
        == 0
    )
    cfg = json.loads((run / "config.json").read_text())
    assert cfg["config"]["meta_iters"] == 4 and cfg["family"] == "Navigation2D"
    assert cfg["preset"]["inner_lr"] == 1e-2  # the family preset was applied
    tags, acc = scalars(run)
    for tag in [
        "adapt/return_pre",
        "adapt/return_post",
        "meta/step_size",
        "meta/update_norm",
        "loss/policy",
        "loss/value",
        "time/env_steps_per_s",
        "time/env_steps_total",
    ]:
        assert [s for s, _ in tags[tag]] == [1, 2, 3, 4], tag
    for k in range(4):
        assert [s for s, _ in tags[f"eval/return_step{k}"]] == [0, 2, 4]
    # ε anneals linearly from 1 to 0 over the 4 iterations
    assert [v for _, v in tags["meta/step_size"]] == pytest.approx([1.0, 0.75, 0.5, 0.25])
    # env steps: 2 tasks x 3 episodes x (1 + 1 collections) x 100 steps per iteration
    assert tags["time/env_steps_total"][-1][1] == 4 * 2 * 3 * 2 * 100
    assert "hyperparameters" in " ".join(acc.Tags()["tensors"])
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["iter_000002.pt", "iter_000004.pt", "latest.pt"]
    state = torch.load(run / "checkpoints" / "latest.pt", weights_only=True)
    assert state["iteration"] == 4 and state["format_version"] == cfg["format_version"] == CONFIG_VERSION
    assert set(state) >= {"theta", "normalizer", "config", "rng", "family"}
    load_checkpoint(run / "checkpoints" / "iter_000002.pt", family="Navigation2D")


def test_resumed_run_ends_with_the_parameters_of_a_straight_run(tmp_path):
    args = ["--env", "Navigation2D", "--eval-every", "0", "--meta-iters", "4", "--checkpoint-every", "2", *TINY]
    assert main([*args, "--run-dir", str(tmp_path / "straight")]) == 0
    assert main([*args, "--run-dir", str(tmp_path / "split")]) == 0
    # as if the process had died after iteration 2: latest.pt is the iteration-2 checkpoint
    ckpt = tmp_path / "split" / "checkpoints"
    (ckpt / "latest.pt").write_bytes((ckpt / "iter_000002.pt").read_bytes())
    assert main(["--resume", str(tmp_path / "split"), "--quiet"]) == 0
    a = torch.load(tmp_path / "straight" / "checkpoints" / "latest.pt", weights_only=True)
    b = torch.load(tmp_path / "split" / "checkpoints" / "latest.pt", weights_only=True)
    assert a["iteration"] == b["iteration"] == 4
    assert all(torch.equal(a["theta"][k], b["theta"][k]) for k in a["theta"])
    assert all(torch.equal(a["normalizer"][k], b["normalizer"][k]) for k in a["normalizer"])
    tags, _ = scalars(tmp_path / "split")
    assert [s for s, _ in tags["adapt/return_post"]] == [1, 2, 3, 4]


def test_half_cheetah_vel_meta_trains_end_to_end(tmp_path):
    run = tmp_path / "hc"
    assert (
        main(
            [
                "--env",
                "metarl/HalfCheetahVel-v0",
                "--meta-iters",
                "2",
                "--eval-every",
                "2",
                "--run-dir",
                str(run),
                *TINY,
            ]
        )
        == 0
    )
    tags, _ = scalars(run)
    assert len(tags["adapt/return_post"]) == 2
    assert all(-1000 < v < 0 for _, v in tags["eval/return_step1"])
    state = load_checkpoint(run / "checkpoints" / "latest.pt", family="HalfCheetahVel")
    assert state["theta"]["pi.0.w"].shape == (17, 64)


def test_two_worker_processes_give_the_same_parameters_as_one(tmp_path):
    base = [
        "--env",
        "Navigation2D",
        "--meta-iters",
        "2",
        "--eval-every",
        "0",
        "--meta-batch",
        "3",
        "--episodes-per-step",
        "2",
        "--inner-steps",
        "1",
        "--quiet",
    ]
    assert main([*base, "--workers", "1", "--run-dir", str(tmp_path / "w1")]) == 0
    assert main([*base, "--workers", "2", "--run-dir", str(tmp_path / "w2")]) == 0
    a = torch.load(tmp_path / "w1" / "checkpoints" / "latest.pt", weights_only=True)["theta"]
    b = torch.load(tmp_path / "w2" / "checkpoints" / "latest.pt", weights_only=True)["theta"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "HalfCheetahVell"], "did you mean 'HalfCheetahVel'"),
        (["--env", "Navigation2D", "--meta-batch", "0"], "--meta-batch must be positive"),
        (["--env", "Navigation2D", "--episodes-per-step", "-3"], "--episodes-per-step must be positive"),
        (["--resume", "/nonexistent/run"], "is not a metarl run"),
        (["--env", "Navigation2D", "--adapt-agent", "sb3-ppo"], "--adapt-agent sb3-ppo cannot adapt parameters"),
        (["--env", "Navigation2D", "--adapt-target-kl", "-1"], "--adapt-target-kl must be >= 0"),
    ],
)
def test_bad_input_is_a_one_line_error_with_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err


def test_run_dir_holding_another_run_is_refused_and_left_untouched(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--env", "Navigation2D", "--meta-iters", "1", "--eval-every", "0", "--run-dir", str(run), *TINY]) == 0
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["--env", "Navigation2D", "--meta-iters", "3", "--run-dir", str(run), *TINY]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before


def test_help_lists_every_flag(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    for flag in [
        "--env",
        "--agent",
        "--meta-iters",
        "--meta-batch",
        "--inner-steps",
        "--episodes-per-step",
        "--meta-step",
        "--meta-step-final",
        "--seed",
        "--run-dir",
        "--checkpoint-every",
        "--eval-every",
        "--resume",
        "--workers",
    ]:
        assert flag in out


def test_meta_test_inner_loop_is_separate_from_training(tmp_path):
    """--adapt-agent/--adapt-target-kl change only the periodic evaluation: the trained θ is the same as without
    them, the evaluation's returns after adapting differ, and a loaded meta-policy adapts with them."""
    import metarl

    base = ["--env", "Navigation2D", "--meta-iters", "2", "--eval-every", "0", *TINY]
    assert main([*base, "--run-dir", str(tmp_path / "ppo")]) == 0
    assert main([*base, "--adapt-agent", "trpo", "--adapt-target-kl", "0.5", "--run-dir", str(tmp_path / "trpo")]) == 0
    a = load_checkpoint(tmp_path / "ppo" / "checkpoints" / "latest.pt")
    b = load_checkpoint(tmp_path / "trpo" / "checkpoints" / "latest.pt")
    assert all(torch.equal(a["theta"][k], b["theta"][k]) for k in a["theta"])
    ea, _ = scalars(tmp_path / "ppo")
    eb, _ = scalars(tmp_path / "trpo")
    assert ea["eval/return_step0"] == eb["eval/return_step0"]  # same θ, same evaluation seeds
    assert ea["eval/return_step1"] != eb["eval/return_step1"]  # another inner loop
    meta = metarl.MetaPolicy.load(tmp_path / "trpo")
    assert meta.config.inner.agent == "ppo" and meta.config.adapt.agent == "trpo"
    assert meta.config.adapt.target_kl == 0.5 and meta.config.inner.target_kl == 0.01
