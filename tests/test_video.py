"""Videos of adaptation, rendered for real (MuJoCo through EGL on Mesa, small frames), decoded back; the TensorBoard
layout and HParams read back with EventAccumulator; bad --video paths and a GL backend that cannot work."""

import ctypes.util
import json
import os
import subprocess
import sys
import time

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

import metarl
from metarl.adapt import main as adapt_main
from metarl.envs import get_family
from metarl.evaluate import main as evaluate_main
from metarl.progress import Progress, evaluations_due
from metarl.train import main as train_main
from metarl.video import SIZE

HORIZON = get_family("HalfCheetahVel").horizon
TINY_TRAIN = [
    "--env", "HalfCheetahVel", "--meta-iters", "1", "--meta-batch", "2", "--inner-steps", "1",
    "--episodes-per-step", "2", "--eval-every", "1", "--eval-tasks", "2", "--eval-steps", "1", "--workers", "1",
    "--hidden", "16",
]  # fmt: skip


def gif_frames(data):
    """The frames of GIF bytes, as RGB arrays, one per frame time: Pillow writes a run of identical frames (a body at
    rest) as one frame of their summed duration, which is repeated here that many times."""
    import io

    image = Image.open(io.BytesIO(data))
    frames, durations = [], []
    for i in range(image.n_frames):
        image.seek(i)
        frames.append(np.asarray(image.convert("RGB")))
        durations.append(image.info["duration"])
    base = min(durations)
    return np.stack([f for f, d in zip(frames, durations) for _ in range(round(d / base))])


def below_labels(frames):
    """The lower half of the frames: the scene without the label band."""
    return frames[:, frames.shape[1] // 2 :].astype(np.float64)


def test_adapt_video_segments_are_rendered_labelled_and_differ_after_adapting(tmp_path):
    """MetaPolicy.adapt(video=): a GIF of 1 + steps cells side by side, one frame per env step and the initial one;
    the frames show a scene (not blank), and the gait after adapting to a slow target differs from before."""
    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")
    path = tmp_path / "adapt.gif"
    adapted = meta.adapt({"velocity": 0.2}, steps=1, episodes_per_step=4, video=path)
    frames = gif_frames(path.read_bytes())
    assert frames.shape == (HORIZON + 1, SIZE, 2 * SIZE, 3)
    before, after = frames[..., :SIZE, :], frames[..., SIZE:, :]
    for cell in (before, after):
        assert below_labels(cell).std() > 20  # the floor and the body, not one colour
        assert np.abs(np.diff(below_labels(cell), axis=0)).mean() > 1  # it moves
    late = slice(HORIZON // 2, None)  # the same initial state; the two gaits part over the episode
    assert np.abs(below_labels(before[late]) - below_labels(after[late])).mean() > 5
    label_band = frames[0, : SIZE // 6]
    assert label_band.mean() < frames[0, SIZE // 2 :].mean()  # the dark band the labels are written on
    assert adapted.returns[1] > adapted.returns[0] - 50  # a real adaptation ran (the shipped policy, a slow target)


def test_adapt_cli_writes_an_mp4_that_decodes_to_every_step(tmp_path, capsys):
    path = tmp_path / "adapt.mp4"
    argv = ["--env", "HalfCheetahVel", "--task", "velocity=1.5", "--steps", "2", "--episodes-per-step", "2"]
    assert adapt_main([*argv, "--video", str(path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["video"] == str(path)
    frames = iio.imread(path)
    assert frames.shape == (HORIZON + 1, SIZE, 3 * SIZE, 3)
    cells = [below_labels(frames[..., i * SIZE : (i + 1) * SIZE, :]) for i in range(3)]
    assert all(c.std() > 20 for c in cells)
    assert sorted(os.listdir(tmp_path)) == ["adapt.mp4"]  # no temporary file left


def _unwritable(tmp_path):
    if os.geteuid() == 0:  # root writes through any mode bits; a sysfs folder refuses even root
        return "/sys/metarl.gif", None
    folder = tmp_path / "readonly"
    folder.mkdir()
    folder.chmod(0o500)
    return str(folder / "adapt.gif"), folder


@pytest.mark.parametrize(
    "case, message",
    [
        ("missing_folder", "does not exist; create it"),
        ("no_permission", "cannot write in"),
        ("unknown_extension", "unknown video extension '.avi'; use .mp4 or .gif"),
        ("a_folder", "is a folder; give a file"),
    ],
)
def test_bad_video_paths_are_one_line_errors_and_leave_no_file(tmp_path, capsys, case, message):
    watched = tmp_path
    if case == "missing_folder":
        path = str(tmp_path / "nowhere" / "adapt.gif")
    elif case == "no_permission":
        path, folder = _unwritable(tmp_path)
        watched = folder or tmp_path
    elif case == "unknown_extension":
        path = str(tmp_path / "adapt.avi")
    else:
        path = str(tmp_path)
    before = sorted(os.listdir(watched))
    assert adapt_main(["--env", "HalfCheetahVel", "--steps", "1", "--episodes-per-step", "2", "--video", path]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err and err.startswith("metarl.adapt: error: --video")
    assert sorted(os.listdir(watched)) == before
    assert not (tmp_path / "nowhere").exists()


def _image_events(run):
    acc = EventAccumulator(str(run), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    return acc


@pytest.fixture(scope="module")
def video_run(tmp_path_factory):
    """A tiny HalfCheetahVel run that logs a video at every evaluation."""
    run = tmp_path_factory.mktemp("video") / "run"
    assert train_main([*TINY_TRAIN, "--video-every", "1", "--run-dir", str(run), "--quiet"]) == 0
    return run


def test_training_logs_the_video_the_adaptation_gap_layout_and_hparams(video_run):
    from tensorboard.plugins.custom_scalar import layout_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2

    acc = _image_events(video_run)
    videos = acc.Images("eval/video")
    assert [v.step for v in videos] == [0, 1]  # the evaluation at iteration 0 and the last
    frames = gif_frames(videos[-1].encoded_image_string)
    assert frames.shape == (HORIZON // 2 + 1, SIZE, 2 * SIZE, 3)  # before | after, every second step
    assert below_labels(frames).std() > 20
    assert [s.step for s in acc.Scalars("time/video_s")] == [0, 1]

    layout = layout_pb2.Layout.FromString(acc.Tensors("custom_scalars__config__")[0].tensor_proto.string_val[0])
    charts = {c.title: list(c.multiline.tag) for cat in layout.category for c in cat.chart}
    assert ["adapt/return_pre", "adapt/return_post"] in charts.values()
    assert ["eval/return_step0", "eval/return_step1"] in charts.values()

    content = acc.PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/experiment"]).experiment
    assert {"meta_batch", "inner.agent", "adapt.agent", "seed"} <= {h.name for h in experiment.hparam_infos}
    metrics = {m.name.tag for m in experiment.metric_infos}
    assert metrics == {"eval/return_step0", "eval/return_step1", "adapt/return_post"}
    assert set(metrics) <= set(acc.Tags()["scalars"])  # the tab reads their final values from the run's scalars
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["meta_batch"].number_value == 2


def test_videos_change_no_result_and_video_every_0_turns_them_off(video_run, tmp_path):
    """The rendered episodes use their own env and seed: the same run with and without videos ends with the same θ
    and the same evaluation returns."""
    runs = {0: tmp_path / "v0", 1: video_run}
    assert train_main([*TINY_TRAIN, "--video-every", "0", "--run-dir", str(runs[0]), "--quiet"]) == 0
    states = {n: torch.load(r / "checkpoints" / "latest.pt", weights_only=True) for n, r in runs.items()}
    assert all(torch.equal(states[0]["theta"][k], states[1]["theta"][k]) for k in states[0]["theta"])
    accs = {n: _image_events(r) for n, r in runs.items()}
    for tag in ("eval/return_step0", "eval/return_step1", "adapt/return_post"):
        assert [e.value for e in accs[0].Scalars(tag)] == [e.value for e in accs[1].Scalars(tag)]
    assert accs[0].Tags()["images"] == [] and accs[1].Tags()["images"] == ["eval/video"]


def test_evaluate_writes_videos_next_to_the_curves(tmp_path):
    out = tmp_path / "eval"
    argv = ["--env", "HalfCheetahVel", "--tasks", "3", "--steps", "1", "--episodes-per-step", "1"]
    argv += ["--random-seeds", "0", "--oracle-tasks", "0", "--bootstrap", "50", "--videos", "2", "--out", str(out)]
    assert evaluate_main(argv) == 0
    doc = json.loads((out / "results.json").read_text())
    assert [v["file"] for v in doc["videos"]] == ["video_task00.mp4", "video_task02.mp4"]  # spread over the set
    assert doc["videos"][1]["task"] == doc["tasks"][2]
    frames = iio.imread(out / "video_task02.mp4")
    assert frames.shape == (HORIZON + 1, SIZE, 2 * SIZE, 3) and (out / "curves.png").exists()


def _without_gl(backend):
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    return {**env, "MUJOCO_GL": backend}


@pytest.mark.parametrize("backend", ["osmesa", pytest.param("glfw", marks=pytest.mark.slow)])
def test_without_a_gl_backend_training_runs_and_video_is_one_line(tmp_path, backend):
    """Forced unavailable backends: osmesa where libOSMesa is missing, as here (it used to break ``import mujoco``
    itself), and glfw without a display (slow suite)."""
    if backend == "osmesa" and ctypes.util.find_library("OSMesa"):
        pytest.skip("libOSMesa is installed here, so osmesa is no unavailable backend on this machine")
    env = _without_gl(backend)
    path = tmp_path / "adapt.gif"
    adapt = subprocess.run(
        [sys.executable, "-m", "metarl.adapt", "--env", "HalfCheetahVel", "--video", str(path)],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert adapt.returncode == 2, adapt.stderr
    err = adapt.stderr.strip().splitlines()
    assert len(err) == 1 and f"MUJOCO_GL={backend}" in err[0] and "apt-get install libegl1" in err[0], err
    assert "set MUJOCO_GL=egl" in err[0] and not path.exists()
    run = tmp_path / "run"
    train = subprocess.run(
        [sys.executable, "-m", "metarl.train", *TINY_TRAIN, "--run-dir", str(run), "--quiet"],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr
    assert "warning: no eval/video" in train.stderr and "training goes on without videos" in train.stderr
    acc = _image_events(run)
    assert acc.Tags()["images"] == [] and "eval/return_step1" in acc.Tags()["scalars"]


def test_evaluations_due_counts_the_periodic_ones_and_the_last():
    assert evaluations_due(0, 300, 25) == 12  # after iterations 25, 50, ..., 300
    assert evaluations_due(0, 10, 4) == 3  # 4, 8 and the last, 10
    assert evaluations_due(10, 10, 4) == 0
    assert evaluations_due(3, 10, 0) == 1  # only the last


def test_eta_counts_evaluation_apart_from_training():
    """An evaluation of 0.4 s and an iteration of 0.05 s: the first ETA is 9 iterations and 2 evaluations, not 9 times
    the 0.45 s that elapsed since the start (what the old bar said after an evaluation at iteration 0)."""
    progress = Progress(total=10, start=0, eval_every=5, enabled=False)
    with progress.evaluating("eval at iteration 0"):
        time.sleep(0.4)
    time.sleep(0.05)
    progress.trained(1, {})
    eta = progress.eta(1)
    assert eta >= 9 * 0.05 + 2 * 0.4
    assert eta < 9 * 0.45  # an elapsed-time ETA would say at least this


def test_no_bar_without_a_terminal_only_the_evaluation_lines(tmp_path, capsys):
    args = ["--env", "Navigation2D", "--meta-iters", "3", "--meta-batch", "2", "--inner-steps", "1"]
    args += ["--episodes-per-step", "2", "--eval-every", "2", "--eval-tasks", "2", "--workers", "1"]
    assert train_main([*args, "--run-dir", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert [line.split(" on ")[0] for line in err] == [
        "metarl.train: eval at iteration 0",
        "metarl.train: eval at iteration 2",
        "metarl.train: eval at iteration 3",
    ]


def test_fewer_steps_give_this_adaptations_intermediate_policies():
    """What the video's cells after steps 1 .. K-1 rely on: adapting with k steps repeats the first k of K."""
    meta = metarl.MetaPolicy.pretrained("HalfCheetahVel")
    two = meta.adapt({"velocity": 0.7}, steps=2, episodes_per_step=2, seed=3)
    one = meta.adapt({"velocity": 0.7}, steps=1, episodes_per_step=2, seed=3)
    assert one.returns == two.returns[:2]


def test_labels_of_dynamics_tasks_fit_their_cell(tmp_path):
    """A randomised-dynamics family (Walker2dRandParams: four model fields scaled per task) renders and labels."""
    from metarl.video import adaptation_frames, label, task_label

    meta_family = get_family("Walker2dRandParams")
    task = meta_family.meta_test_tasks()[0]
    assert task_label(task).startswith("body_inertia x") and "geom_friction x" in task_label(task)
    frames = np.zeros((2, SIZE, SIZE, 3), dtype=np.uint8)
    labelled = label(frames, ["x" * 200])  # far too long for 160 pixels: cut, not drawn past the edge
    assert labelled[:, :, -3:].max() < 255

    class Still:  # the body stands still: zero torques
        family = meta_family

        def act(self, obs):
            return np.zeros(meta_family(task=task).action_space.shape)

    out, fps = adaptation_frames([[(Still(), task, "before adapting")]], stride=50)
    assert out.shape == (meta_family.horizon // 50 + 1, SIZE, SIZE, 3) and below_labels(out).std() > 10
