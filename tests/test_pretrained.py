"""The shipped pretrained meta-policies load, act and adapt; the adapt CLI uses them by default."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

import metarl
import metarl.pretrained
from metarl.adapt import main as adapt_main
from metarl.envs import FAMILIES, get_family
from metarl.policy import pretrained_path

#: Every built-in family ships a meta-policy (issue 18; Meta-World's ML1 needs the extra, so it is not built in).
ZOO = sorted(FAMILIES)


@pytest.mark.parametrize("family", ZOO)
def test_shipped_meta_policy_loads_with_its_provenance(family):
    path = pretrained_path(family)
    assert path.stat().st_size < 200_000  # small files inside the package
    meta = metarl.MetaPolicy.pretrained(family)
    prov = meta.info["provenance"]
    assert prov["command"].startswith("python -m metarl.train") and prov["iterations"] == meta.config.meta_iters


def test_pretrained_half_cheetah_vel_is_far_better_than_random_before_adapting():
    """Random initialisations score about -255 at k=0 (MAML's released figures); the shipped one runs."""
    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")
    adapted = meta.adapt({"velocity": 1.0}, steps=0, episodes_per_step=8, seed=3)
    assert adapted.returns[0] > -180, adapted.returns


def test_adapt_cli_defaults_to_the_shipped_policy(capsys):
    assert (
        adapt_main(
            ["--env", "HalfCheetahVel", "--task", "velocity=1.3", "--steps", "1", "--episodes-per-step", "4", "--json"]
        )
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint"].endswith("HalfCheetahVel.pt") and len(out["returns"]) == 2
    assert np.isfinite(out["returns"]).all()


def test_no_shipped_policy_is_a_one_line_error(capsys):
    """A family that ships none: every built-in one does, so a randomised Gymnasium env."""
    assert adapt_main(["--env", "Hopper-v5[body_mass=0.5:2]", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no pretrained meta-policy for Hopper-v5[body_mass=0.5:2]; shipped: " in err and len(err.splitlines()) == 1


def test_every_built_in_family_ships_one():
    assert sorted(p.stem for p in metarl.pretrained.files()) == ZOO


@pytest.mark.parametrize("family", ZOO)
def test_shipped_file_is_plain_tensors_of_its_familys_shapes(family):
    """weights_only (no pickled code), θ's first and last layers fit the family's spaces, the provenance says how."""
    path = pretrained_path(family)
    state = torch.load(path, map_location="cpu", weights_only=True)
    env = get_family(family)()
    obs_dim, act_dim = env.observation_space.shape[0], env.action_space.shape[0]
    env.close()
    theta = state["theta"]
    layers = sorted(k for k in theta if k.startswith("pi.") and k.endswith(".w"))
    assert theta[layers[0]].shape[0] == obs_dim and theta[layers[-1]].shape[1] == act_dim
    assert theta["log_std"].shape == (act_dim,) and state["normalizer"]["mean"].shape == (obs_dim,)
    prov = state["provenance"]
    for key in ("command", "env_steps", "training_wall_clock_minutes", "metarl_commit_when_shipped", "machine"):
        assert key in prov, key
    assert prov["command"].startswith(f"python -m metarl.train --env {family} ")
    assert prov["env_steps"] == state["env_steps"] and prov["versions"]["torch"]
    assert "--multitask" in prov["heldout_evaluation"]["command"]
    # the evaluation is of this very run (the HalfCheetah ones: of its checkpoint's committed copy, results/README.md)
    assert f"/{prov['run']} " in prov["heldout_evaluation"]["command"] or (
        family.startswith("HalfCheetah")
        and f"results/checkpoints/{family}__trpo_damp10_16M__s0.pt " in prov["heldout_evaluation"]["command"]
    )
    ev = prov["heldout_evaluation"]
    assert ev["tasks"] == 40 and {"multi-task baseline", "random init"} <= set(ev)


def test_the_listing_shows_every_shipped_policy_with_its_headline(capsys):
    assert adapt_main(["--list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == len(ZOO) + 1
    for family, line in zip(ZOO, lines, strict=False):
        assert line.startswith(family) and "held-out tasks" in line and "margin" in line, line
    out = subprocess.run([sys.executable, "-m", "metarl.pretrained", "--json"], capture_output=True, check=True)
    rows = json.loads(out.stdout)
    assert [r["family"] for r in rows] == ZOO
    for r, line in zip(rows, lines, strict=False):  # the whole meta-test step, as the file adapts
        assert r["adapts_by"] == metarl.MetaPolicy.pretrained(r["family"]).config.adapt.describe()
        assert f"adapts by {r['adapts_by']}: " in line, line
    cheetah = next(line for line in lines if line.startswith("HalfCheetahVel"))
    assert "adapts by trpo (KL 2, x0.5 per step, linear baseline, damping 10): " in cheetah, cheetah


@pytest.mark.parametrize("family", ZOO)
def test_adapt_cli_runs_every_shipped_policy(family, capsys):
    """``metarl.adapt --env NAME`` runs the shipped policy (Navigation2D with no other flag; the others one short
    step, to keep the suite fast)."""
    argv = ["--env", family, "--json"]
    if family != "Navigation2D":  # the cheap one runs with no flag at all
        argv += ["--steps", "1", "--episodes-per-step", "2"]
    assert adapt_main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["checkpoint"].endswith(f"{family}.pt") and np.isfinite(out["returns"]).all()


def test_ship_update_sets_the_meta_test_inner_loop(tmp_path):
    """scripts/ship_pretrained.py --update --adapt-*: the file's meta-test loop is replaced and recorded, θ kept;
    a loop that cannot work is a one-line error that leaves the file as it was."""
    from metarl.checkpoint import load_checkpoint

    root = pretrained_path("PendulumRandParams").parents[2]
    shipped = tmp_path / "PendulumRandParams.pt"
    shipped.write_bytes(pretrained_path("PendulumRandParams").read_bytes())
    out = tmp_path / "eval"
    small = ["--tasks", "2", "--steps", "1", "--episodes-per-step", "2", "--bootstrap", "20", "--videos", "0"]
    ev = [sys.executable, "-m", "metarl.evaluate", "--env", "PendulumRandParams", "--checkpoint", str(shipped)]
    subprocess.run([*ev, *small, "--random-seeds", "0", "--oracle-tasks", "0", "--out", str(out)], check=True)
    ship = [sys.executable, str(root / "scripts" / "ship_pretrained.py"), "--update", str(shipped)]
    ship += ["--eval", str(out / "results.json")]
    loop = ["--adapt-agent", "trpo", "--adapt-target-kl", "1.0"]
    loop += ["--adapt-baseline", "linear", "--adapt-step-decay", "0.7"]
    subprocess.run([*ship, *loop], check=True, capture_output=True)
    state = load_checkpoint(shipped)
    adapt = state["config"]["adapt"]
    assert (adapt["agent"], adapt["target_kl"], adapt["baseline"], adapt["step_decay"]) == ("trpo", 1.0, "linear", 0.7)
    assert state["provenance"]["meta_test_inner_loop_set_when_shipped"]["baseline"] == "linear"
    before = load_checkpoint(pretrained_path("PendulumRandParams"))
    assert all(torch.equal(state["theta"][k], before["theta"][k]) for k in before["theta"])
    written = shipped.read_bytes()
    bad = subprocess.run([*ship, "--adapt-agent", "ppo", "--adapt-step-decay", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert "step-decay" in bad.stderr and shipped.read_bytes() == written
    unread = subprocess.run(
        [*ship, "--adapt-agent", "ppo", "--adapt-baseline", "linear"], capture_output=True, text=True
    )
    assert unread.returncode == 2 and "--adapt-baseline is not used by --agent ppo" in unread.stderr, unread.stderr
    assert shipped.read_bytes() == written
