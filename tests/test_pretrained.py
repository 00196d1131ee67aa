"""The shipped pretrained meta-policies load, act and adapt; the adapt CLI uses them by default."""

import json

import numpy as np
import pytest

import metarl
from metarl.adapt import main as adapt_main
from metarl.policy import pretrained_path

SHIPPED = ["HalfCheetahVel", "HalfCheetahDir"]


@pytest.mark.parametrize("family", SHIPPED)
def test_shipped_meta_policy_loads_with_its_provenance(family):
    path = pretrained_path(family)
    assert path.stat().st_size < 200_000  # small files inside the package
    meta = metarl.MetaPolicy.pretrained(family)
    prov = meta.info["provenance"]
    assert prov["command"].startswith("python -m metarl.train") and prov["iterations"] == meta.config.meta_iters
    assert "k=3" in prov["final_eval_on_heldout_tasks"]


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
    assert adapt_main(["--env", "Navigation2D", "--steps", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "no pretrained meta-policy for Navigation2D" in err and len(err.splitlines()) == 1
