"""The Python training API (metarl.Reptile, ...), its callbacks, and `--env module:Name` families, on tiny runs."""

import json
import os
import subprocess
import sys

import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import metarl
from metarl.algorithm import family_flags
from metarl.callbacks import Callback, EvaluateEvery, StopOnNoImprovement
from metarl.checkpoint import load_checkpoint
from metarl.config import ConfigError
from metarl.envs import Navigation2DEnv, randomized
from metarl.train import main

#: The same tiny run as keywords and as flags.
TINY = dict(hidden=(16,), meta_batch=2, episodes_per_step=3, inner_steps=1, eval_tasks=2, eval_every=2, workers=1)
TINY_FLAGS = [
    *("--hidden 16 --meta-batch 2 --episodes-per-step 3 --inner-steps 1 --eval-tasks 2 --eval-every 2".split()),
    *("--workers", "1", "--quiet"),
]

FAMILY_MODULE = """
from metarl.envs import Navigation2DEnv, register_family


@register_family
class WideNavigationEnv(Navigation2DEnv):  # goals in [-1, 1]^2 instead of [-0.5, 0.5]^2
    family_name, meta_test_seed, goal_low, goal_high = "WideNavigation", 4242, -1.0, 1.0
"""


def same_parameters(a, b):
    return set(a["theta"]) == set(b["theta"]) and all(torch.equal(a["theta"][k], b["theta"][k]) for k in a["theta"])


def scalar_tags(run_dir):
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}


def test_the_api_and_the_cli_give_bit_identical_meta_parameters_and_the_same_run_folder(tmp_path):
    cli, api = tmp_path / "cli", tmp_path / "api"
    assert main(["--env", "Navigation2D", "--meta-iters", "3", "--run-dir", str(cli), *TINY_FLAGS]) == 0
    model = metarl.Reptile("Navigation2D", run_dir=api, **TINY)
    assert model.learn(3, progress_bar=False) is model
    model.close()
    a, c = load_checkpoint(api / "checkpoints" / "latest.pt"), load_checkpoint(cli / "checkpoints" / "latest.pt")
    assert a["iteration"] == c["iteration"] == 3 and same_parameters(a, c)
    assert torch.equal(a["normalizer"]["mean"], c["normalizer"]["mean"])
    doc_a, doc_c = (json.loads((d / "config.json").read_text()) for d in (api, cli))
    assert doc_a["config"] == doc_c["config"] and doc_a["preset"] == doc_c["preset"]
    assert doc_a["preset"]["inner_lr"] == 1e-2  # the family's preset applies in Python too
    assert sorted(p.name for p in (api / "checkpoints").iterdir()) == ["iter_000003.pt", "latest.pt"]
    assert (api / ".metarl.lock").exists()
    tags = scalar_tags(api)
    assert tags.keys() == scalar_tags(cli).keys() and tags["eval/return_step3"] == [0, 2, 3]


def test_a_callback_returning_false_stops_after_that_iteration_with_a_checkpoint_and_the_run_resumes(tmp_path):
    run = tmp_path / "run"
    seen = []

    def stop_at_two(metrics, trainer):
        seen.append((trainer.iteration, "adapt/return_post" in metrics))
        return trainer.iteration < 2

    model = metarl.Reptile("Navigation2D", run_dir=run, meta_iters=4, **TINY)
    model.learn(callback=stop_at_two, progress_bar=False)
    assert seen == [(1, True), (2, True)] and model.iteration == 2
    model.close()
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 2
    assert (run / "checkpoints" / "iter_000002.pt").is_file()  # the run ends with a numbered checkpoint
    resumed = metarl.Reptile.load(run)
    resumed.learn(progress_bar=False)  # to the configuration's 4 iterations, as --resume
    resumed.close()
    straight = tmp_path / "straight"
    assert main(["--env", "Navigation2D", "--meta-iters", "4", "--run-dir", str(straight), *TINY_FLAGS]) == 0
    assert same_parameters(
        load_checkpoint(run / "checkpoints" / "latest.pt"), load_checkpoint(straight / "checkpoints" / "latest.pt")
    )


def test_early_stopping_on_the_held_out_return_stops_a_run(tmp_path):
    run = tmp_path / "run"
    model = metarl.Reptile("Navigation2D", run_dir=run, meta_iters=6, **{**TINY, "eval_every": 1})
    # min_delta larger than any return: the first evaluation is the best, the second one stops (patience 1)
    model.learn(callback=StopOnNoImprovement(patience=1, min_delta=1e9), progress_bar=False)
    assert model.iteration == 2
    model.close()
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 2


def test_stop_on_no_improvement_counts_evaluations_without_a_new_best():
    class T:
        class config:
            eval_steps = 1

    stop = StopOnNoImprovement(patience=2)
    answers = [stop.on_iteration(m, T) for m in [{"eval/return_step1": v} for v in (-5, -3, -4, -2, -2.5, -3)]]
    assert answers == [None, None, None, None, None, False]
    assert stop.on_iteration({"adapt/return_post": 0.0}, T) is None  # iterations without an evaluation do not count


def test_without_a_run_folder_nothing_is_written_and_save_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    seen = {}

    class Record(Callback):
        def on_iteration(self, metrics, trainer):
            seen.update(metrics)

    model = metarl.Reptile("Navigation2D", run_dir=None, **TINY)
    model.learn(2, callback=[EvaluateEvery(2, tasks=1, steps=1), Record()], progress_bar=False)
    assert list(tmp_path.iterdir()) == []  # no run folder, no runs/
    assert {"eval_extra/return_step0", "eval_extra/return_step1", "eval/return_step3"} <= set(seen)
    model.save(tmp_path / "model.pt")
    policy = metarl.MetaPolicy.load(tmp_path / "model.pt")
    assert all(torch.equal(policy.theta[k], model.meta_policy.theta[k]) for k in policy.theta)
    again = metarl.Reptile.load(tmp_path / "model.pt")
    assert again.iteration == 2 and again.config == model.config and again.run_dir is None
    model.close()


def test_a_family_class_made_in_python_trains_with_one_worker_and_more_are_refused_in_one_line(tmp_path):
    class LocalNavigationEnv(Navigation2DEnv):  # defined in a function: no worker process can import it
        family_name, meta_test_seed = "LocalNavigation", 999

    with pytest.raises(ConfigError, match="workers=1"):
        metarl.Reptile(LocalNavigationEnv, run_dir=None, **{**TINY, "workers": 2})
    model = metarl.Reptile(LocalNavigationEnv, run_dir=tmp_path / "run", **TINY)
    model.learn(1, progress_bar=False)
    model.close()
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["family"] == "LocalNavigation" and load_checkpoint(tmp_path / "run" / "checkpoints" / "latest.pt")


def test_family_classes_are_named_as_the_command_line_names_them():
    assert family_flags(Navigation2DEnv) == ({"env": "Navigation2D"}, None)
    cls = randomized("Hopper-v5", body_mass=(0.5, 2.0))
    assert family_flags(cls) == ({"env": "Hopper-v5", "randomize": "body_mass=0.5:2"}, None)
    a = metarl.Reptile(cls, run_dir=None)
    b = metarl.Reptile("Hopper-v5", randomize="body_mass=0.5:2", run_dir=None)
    assert a.config == b.config


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(meta_bach=2), "unknown option 'meta_bach'; did you mean 'meta_batch'"),
        (dict(meta_batch="2"), "meta_batch must be int"),
        (dict(meta_learner="maml"), "metarl.Reptile runs meta_learner='reptile'"),
        (dict(inner_steps=0), "--inner-steps must be positive"),
    ],
)
def test_bad_keywords_are_refused_in_one_line(tmp_path, kwargs, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        metarl.Reptile("Navigation2D", run_dir=tmp_path / "run", **kwargs)
    assert not (tmp_path / "run").exists()


def test_maml_is_the_same_class_with_its_preset(tmp_path):
    model = metarl.MAML("Navigation2D", run_dir=None)
    assert isinstance(model, metarl.MetaAlgorithm) and model.config.meta_learner == "maml"
    assert model.config.inner.agent == "vpg" and model.config.meta_batch == 40  # MAML's preset


def _env_with(path):
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(path), os.environ.get("PYTHONPATH", "")])}


def test_a_custom_family_trains_from_the_cli_by_module_name_and_adapts_from_its_checkpoint(tmp_path):
    (tmp_path / "my_families.py").write_text(FAMILY_MODULE)
    run, env = tmp_path / "run", _env_with(tmp_path)
    args = TINY_FLAGS[:-3] + ["--workers", "2", "--quiet", "--meta-iters", "2", "--run-dir", str(run)]
    train = [sys.executable, "-m", "metarl.train", "--env", "my_families:WideNavigation", *args]
    subprocess.run(train, env=env, check=True, capture_output=True, cwd=tmp_path)  # 2 workers import the module too
    doc = json.loads((run / "config.json").read_text())
    assert doc["config"]["env"] == "my_families:WideNavigation" and doc["family"] == "WideNavigation"
    adapt = [sys.executable, "-m", "metarl.adapt", "--checkpoint", str(run), "--steps", "1", "--json"]
    out = subprocess.run(adapt, env=env, check=True, capture_output=True, text=True, cwd=tmp_path)
    result = json.loads(out.stdout)
    assert result["env"] == "WideNavigation" and len(result["returns"]) == 2
    goal = result["task"]["goal"]
    assert all(-1.0 <= g <= 1.0 for g in goal)


BROKEN = {
    "no_such_module_xyz:Fam": "cannot import module 'no_such_module_xyz'",
    "good_families:NoSuchFamily": "'NoSuchFamily' of --env good_families:NoSuchFamily is not defined there",
    "broken_families:Fam": "importing module 'broken_families' of --env broken_families:Fam raised RuntimeError: boom",
}


@pytest.mark.parametrize("tool", ["train", "adapt", "evaluate"])
@pytest.mark.parametrize("env", list(BROKEN))
def test_a_bad_module_path_a_missing_name_and_a_raising_module_are_one_line_exit_2_no_folder(
    tmp_path, monkeypatch, capsys, tool, env
):
    (tmp_path / "good_families.py").write_text(FAMILY_MODULE.replace("Wide", "Good"))
    (tmp_path / "broken_families.py").write_text("raise RuntimeError('boom')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    import importlib

    run = importlib.import_module(f"metarl.{tool}").main
    argv = {
        "train": ["--env", env, "--run-dir", str(out), *TINY_FLAGS],
        "adapt": ["--env", env, "--save", str(out / "adapted.pt")],
        "evaluate": ["--env", env, "--out", str(out)],
    }[tool]
    assert run(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"metarl.{tool}: error: ") and BROKEN[env] in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "__pycache__") == [
        "broken_families.py",
        "good_families.py",
    ]


def test_the_cli_help_names_the_module_form():
    from metarl.train import build_parser

    assert "package.module:Name" in " ".join(build_parser().format_help().split())
