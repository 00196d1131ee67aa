"""Faults provoked for real: SIGKILL at chosen moments, signals, crafted and damaged checkpoints,
divergence, bad command lines, unstable physics. Runs use the cheap Navigation2D family."""

import dataclasses
import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import alive, children, nav_vpg, process_pool, same_theta, theta
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.agents.pool import WorkerError
from metarl.checkpoint import FORMAT_VERSION, CheckpointError, load_checkpoint, save_checkpoint
from metarl.envs import FAMILIES, HalfCheetahVelEnv, SimulationError, VelocityTask
from metarl.train import main

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "--env",
    "Navigation2D",
    "--meta-batch",
    "2",
    "--episodes-per-step",
    "3",
    "--inner-steps",
    "1",
    "--eval-tasks",
    "2",
    "--eval-every",
    "0",
    "--quiet",
]


# ---- helpers ------------------------------------------------------------------------------------
def start(args, tmp_path, prelude="", new_session=False, name="train"):
    """``python -m metarl.train ARGS`` in a subprocess (optionally after ``prelude`` code)."""
    code = f"import sys\n{textwrap.dedent(prelude)}\nfrom metarl.train import main\nsys.exit(main({args!r}))\n"
    out = open(tmp_path / f"{name}.out", "w")
    err = open(tmp_path / f"{name}.err", "w")
    return subprocess.Popen(
        [sys.executable, "-c", code], cwd=tmp_path, stdout=out, stderr=err, start_new_session=new_session
    )


def finish(proc, tmp_path, name="train", timeout=120):
    rc = proc.wait(timeout=timeout)
    return rc, (tmp_path / f"{name}.err").read_text()


def saved_iteration(run):
    try:
        return load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"]
    except CheckpointError:
        return -1


def wait_for_iteration(run, n, proc, timeout=60):
    t0 = time.monotonic()
    while saved_iteration(run) < n:
        assert proc.poll() is None, "the run ended before the test could interrupt it"
        assert time.monotonic() - t0 < timeout
        time.sleep(0.02)


def all_gone(pids, timeout=10):
    t0 = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def files(run):
    return {p: p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def steps_logged(run, tag="adapt/return_post"):
    acc = EventAccumulator(str(run))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


# ---- 1. hard kill -------------------------------------------------------------------------------
def test_sigkill_in_the_middle_of_a_checkpoint_write_loses_one_iteration_and_resume_finishes(tmp_path):
    args = [*TINY, "--meta-iters", "4", "--checkpoint-every", "2", "--workers", "1"]
    assert main([*args, "--run-dir", str(tmp_path / "straight")]) == 0
    run = tmp_path / "killed"
    # SIGKILL the process itself once the 3rd write of latest.pt (iteration 2) is written and fsynced
    # into its temporary file, before the rename: the worst moment for a non-atomic writer.
    prelude = """
        import os, signal
        real_fsync, writes = os.fsync, []
        def fsync(fd):
            real_fsync(fd)
            name = os.readlink(f"/proc/self/fd/{fd}")
            if os.path.basename(name).startswith(".latest.pt.") and name.endswith(".tmp"):
                writes.append(name)
                if len(writes) == 3:
                    os.kill(os.getpid(), signal.SIGKILL)
        os.fsync = fsync
    """
    proc = start([*args, "--run-dir", str(run)], tmp_path, prelude)
    rc, _ = finish(proc, tmp_path)
    assert rc == -signal.SIGKILL
    leftovers = [p.name for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 1  # the interrupted write; latest.pt is the complete iteration-1 file
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 1
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert not [p for p in (run / "checkpoints").iterdir() if p.name.endswith(".tmp")]
    assert same_theta(theta(run), theta(tmp_path / "straight"))
    assert steps_logged(run) == [1, 2, 3, 4]


def test_sigkill_mid_iteration_then_resume_ends_like_an_uninterrupted_run(tmp_path):
    args = [*TINY, "--meta-iters", "12", "--checkpoint-every", "5", "--workers", "1"]
    run = tmp_path / "killed"
    proc = start([*args, "--run-dir", str(run)], tmp_path)
    wait_for_iteration(run, 2, proc)
    time.sleep(0.05)  # somewhere inside an iteration
    proc.kill()
    assert proc.wait() == -signal.SIGKILL
    done = saved_iteration(run)
    assert 2 <= done < 12
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert main([*args, "--run-dir", str(tmp_path / "straight")]) == 0
    assert same_theta(theta(run), theta(tmp_path / "straight"))
    assert steps_logged(run) == list(range(1, 13))  # events after the checkpoint were purged, none twice


def test_sigkill_of_the_parent_leaves_no_worker_process(tmp_path):
    run = tmp_path / "run"
    # large batches: the workers are busy computing, not waiting on their pipe, when the parent dies
    args = [
        "--env",
        "Navigation2D",
        "--meta-batch",
        "4",
        "--episodes-per-step",
        "40",
        "--inner-steps",
        "3",
        "--eval-every",
        "0",
        "--meta-iters",
        "50",
        "--workers",
        "2",
        "--quiet",
        "--run-dir",
        str(run),
    ]
    proc = start(args, tmp_path)
    try:
        wait_for_iteration(run, 1, proc)  # the workers have started and now adapt iteration 2
        time.sleep(0.2)
        workers = children(proc.pid)  # the two workers (and multiprocessing's resource tracker, if any)
        assert len(workers) >= 2
        proc.kill()
        proc.wait()
        assert all_gone(workers), "a worker outlived its parent"
    finally:
        proc.kill()
        for w in children(proc.pid):
            os.kill(w, signal.SIGKILL)


# ---- 2. graceful stop ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "sig, to_group, workers, code", [(signal.SIGINT, True, "2", 130), (signal.SIGTERM, False, "1", 143)]
)
def test_signal_finishes_the_iteration_checkpoints_flushes_and_says_how_to_resume(
    tmp_path, sig, to_group, workers, code
):
    run = tmp_path / "run"
    args = [*TINY, "--episodes-per-step", "20", "--meta-iters", "200", "--workers", workers, "--run-dir", str(run)]
    proc = start(args, tmp_path, new_session=True)
    try:
        wait_for_iteration(run, 2, proc)
        workers = children(proc.pid)
        # Ctrl-C in a terminal signals the whole process group, workers included
        os.killpg(proc.pid, sig) if to_group else os.kill(proc.pid, sig)
        rc, err = finish(proc, tmp_path)
    finally:
        proc.kill()
    assert rc == code
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err  # no worker died of the signal
    stopped = saved_iteration(run)
    assert f"stopped by {sig.name} after iteration {stopped}" in err
    assert f"--resume {run}" in err
    assert steps_logged(run) == list(range(1, stopped + 1))  # TensorBoard flushed up to the checkpoint
    assert all_gone(workers)
    assert main(["--resume", str(run), "--meta-iters", str(stopped + 1), "--workers", "1", "--quiet"]) == 0


def test_a_second_sigint_stops_at_once_and_keeps_the_last_checkpoint(tmp_path):
    run = tmp_path / "run"
    args = [  # iterations of ~1 s, so the second signal lands inside one (the test is not a race)
        *TINY,
        "--episodes-per-step",
        "120",
        "--inner-steps",
        "3",
        "--meta-iters",
        "200",
        "--workers",
        "1",
        "--run-dir",
        str(run),
    ]
    proc = start(args, tmp_path)
    try:
        wait_for_iteration(run, 1, proc)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        rc, err = finish(proc, tmp_path)
    finally:
        proc.kill()
    assert rc == 130 and "Traceback" not in err
    assert "stopped at once by a second SIGINT" in err and f"--resume {run}" in err
    assert saved_iteration(run) >= 1


@pytest.mark.slow  # the SIGINT-to-the-group test above covers it in the default suite
def test_workers_ignore_sigint_and_finish_their_tasks():
    spec, inner = nav_vpg()
    agent = process_pool(spec, 2)
    try:
        from metarl.agents import RunningNorm

        local = spec()
        theta0 = local.init_params(0)
        tasks = Navigation2D_tasks(4)
        time.sleep(1.0)  # let the workers finish starting

        import threading

        def interrupt():
            time.sleep(0.2)
            for pid in agent.pids():
                os.kill(pid, signal.SIGINT)

        t = threading.Thread(target=interrupt)
        t.start()
        res = agent.adapt(theta0, tasks, inner, 3, 100, RunningNorm(2), [(0, i) for i in range(4)])
        t.join()
        assert agent.restarts == 0 and all(alive(p) for p in agent.pids())
        ref = local.adapt(theta0, tasks, inner, 3, 100, RunningNorm(2), [(0, i) for i in range(4)])
        assert all(torch.equal(a[k], b[k]) for a, b in zip(res.params, ref.params) for k in a)
    finally:
        agent.close()


def Navigation2D_tasks(n):  # noqa: N802
    from metarl.envs import Navigation2DEnv

    return Navigation2DEnv.sample_tasks(n, np.random.default_rng(0))


# ---- 3. untrusted and damaged checkpoints -------------------------------------------------------
class _RunsCode:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("base") / "run"
    assert main([*TINY, "--meta-iters", "2", "--workers", "1", "--run-dir", str(run)]) == 0
    return run


def _evil_raw(path, marker, run):
    with open(path, "wb") as f:
        pickle.dump({"format_version": 1, "theta": _RunsCode(marker)}, f)


def _evil_zip(path, marker, run):
    torch.save({"format_version": 1, "family": "Navigation2D", "theta": _RunsCode(marker), "config": {}}, path)


def _truncated(path, marker, run):
    path.write_bytes(path.read_bytes()[:5000])


def _empty(path, marker, run):
    path.write_bytes(b"")


def _flipped_tensor_bytes(path, marker, run):  # inside a tensor record: torch itself would load it
    import struct
    import zipfile

    with zipfile.ZipFile(path) as z:  # the largest tensor record, found in the archive's own index
        info = max((i for i in z.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len + info.file_size // 2
    data[start : start + 64] = bytes(b ^ 0xFF for b in data[start : start + 64])
    path.write_bytes(bytes(data))


def _newer_format(path, marker, run):
    state = torch.load(path, weights_only=True)
    torch.save({**state, "format_version": 99}, path)


def _other_family(path, marker, run):
    state = torch.load(path, weights_only=True)
    state.pop("format_version"), state.pop("checksum")
    save_checkpoint(path, {**state, "family": "HalfCheetahVel"})


def _other_shape(path, marker, run):
    other = run.parent / "narrow"
    if not other.exists():
        assert main([*TINY, "--meta-iters", "1", "--hidden", "8", "--workers", "1", "--run-dir", str(other)]) == 0
    shutil.copy(other / "checkpoints" / "latest.pt", path)


def _nan_parameters(path, marker, run):
    state = torch.load(path, weights_only=True)
    state.pop("format_version"), state.pop("checksum")
    state["theta"]["pi.0.w"][0, 0] = float("nan")
    save_checkpoint(path, state)


@pytest.mark.parametrize(
    "damage, message",
    [
        (_evil_raw, "refused to load, the file holds pickled code or objects"),
        (_evil_zip, "refused to load, the file holds pickled code or objects"),
        (_truncated, "truncated or corrupted checkpoint"),
        (_empty, "truncated or corrupted checkpoint"),
        (_flipped_tensor_bytes, "checksum mismatch"),
        (_newer_format, f"checkpoint format 99 is newer than this metarl reads ({FORMAT_VERSION}); upgrade metarl"),
        (_other_family, "checkpoint of family HalfCheetahVel, not Navigation2D"),
        (_other_shape, "parameter shapes do not match"),
        (_nan_parameters, "holds NaN or inf"),
    ],
)
def test_a_bad_checkpoint_is_refused_in_one_line_runs_nothing_and_changes_nothing(
    finished_run, tmp_path, capsys, damage, message
):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "code-was-run"
    latest = run / "checkpoints" / "latest.pt"
    damage(latest, marker, finished_run)
    before = files(run)
    capsys.readouterr()
    assert main(["--resume", str(run), "--meta-iters", "3", "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and str(latest) in err, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert not marker.exists()
    assert files(run) == before
    if damage is not _other_shape:  # sizes are only known with a configuration
        with pytest.raises(CheckpointError, match=message.split(" (")[0]):
            load_checkpoint(latest, family="Navigation2D")


def test_a_bad_checkpoint_exits_2_from_the_real_command_line(finished_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    marker = tmp_path / "code-was-run"
    _evil_raw(run / "checkpoints" / "latest.pt", marker, run)
    proc = subprocess.run(
        [sys.executable, "-m", "metarl.train", "--resume", str(run)], capture_output=True, text=True, cwd=tmp_path
    )
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert not marker.exists()


# ---- 4. divergence ------------------------------------------------------------------------------
def test_divergence_stops_naming_iteration_and_quantity_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    run = tmp_path / "run"
    # ε = 1e20 throws θ far away at iteration 1; the policy's std overflows at iteration 2
    argv = [
        *TINY,
        "--meta-iters",
        "5",
        "--checkpoint-every",
        "1",
        "--meta-step",
        "1e20",
        "--meta-step-final",
        "1e20",
        "--workers",
        "1",
        "--run-dir",
        str(run),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "diverged:" in err and "at meta-iteration 2" in err and "adapt/return" in err
    assert "last good checkpoint (iteration 1)" in err
    state = load_checkpoint(run / "checkpoints" / "latest.pt")  # checks every parameter is finite
    assert state["iteration"] == 1
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["iter_000001.pt", "latest.pt"]


# ---- 5. bad input at the train CLI --------------------------------------------------------------
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--env", "Navigaton2D"], "unknown task family 'Navigaton2D'; did you mean 'Navigation2D'?"),
        (["--env", "Nope"], "Known families: HalfCheetahVel, HalfCheetahDir, Navigation2D"),
        (["--env", "Navigation2D", "--meta-iters", "0"], "--meta-iters must be positive, got 0"),
        (["--env", "Navigation2D", "--meta-batch", "-1"], "--meta-batch must be positive"),
        (["--env", "Navigation2D", "--inner-steps", "0"], "--inner-steps must be positive"),
        (["--env", "Navigation2D", "--episodes-per-step", "0"], "--episodes-per-step must be positive"),
        (["--env", "Navigation2D", "--seed", "-1"], "--seed must be >= 0"),
        (["--env", "Navigation2D", "--eval-tasks", "41"], "--eval-tasks must be at most 40"),
        (["--env", "Navigation2D", "--meta-step", "nan"], "--meta-step must be finite"),
        (["--env", "Navigation2D", "--inner-lr", "0"], "--inner-lr must be positive"),
    ],
)
def test_bad_flags_are_one_line_errors_with_status_2_and_write_nothing(tmp_path, capsys, argv, message):
    run = tmp_path / "run"
    assert main([*argv, "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert not run.exists()


def test_bad_resume_and_run_dir_requests_change_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    not_a_run = tmp_path / "photos"
    not_a_run.mkdir()
    (not_a_run / "cat.jpg").write_bytes(b"meow")
    a_file = tmp_path / "file.txt"
    a_file.write_text("x")
    before = {**files(run), **files(not_a_run)}
    cases = [
        (["--resume", str(not_a_run)], "is not a metarl run (needs config.json and checkpoints/latest.pt)"),
        (["--resume", str(tmp_path / "missing")], "is not a metarl run"),
        (["--resume", str(run), "--meta-iters", "1"], "--meta-iters 1 is below the 2 iterations"),
        (["--resume", str(run), "--seed", "3"], "--resume keeps the run's configuration"),
        (["--resume", str(run), "--run-dir", str(run)], "give either --resume RUN_DIR or --run-dir"),
        ([*TINY, "--meta-iters", "3", "--run-dir", str(run)], "already holds a run; resume it with --resume"),
        ([*TINY, "--run-dir", str(a_file)], "is a file, not a folder"),
    ]
    for argv, message in cases:
        capsys.readouterr()
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and "Traceback" not in err, err
    (run / "config.json").write_text("{not json")
    before[run / "config.json"] = b"{not json"
    assert main(["--resume", str(run)]) == 2
    assert "unreadable run configuration" in capsys.readouterr().err
    assert {**files(run), **files(not_a_run)} == before
    assert a_file.read_text() == "x"


def test_resuming_a_finished_run_does_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = files(run)
    assert main(["--resume", str(run), "--quiet"]) == 0
    assert "is complete (2 iterations); nothing to do" in capsys.readouterr().out
    assert files(run) == before


# ---- 6. environment faults ----------------------------------------------------------------------
class UnstableCheetahEnv(HalfCheetahVelEnv):
    """HalfCheetahVel with an absurd time step: MuJoCo's accelerations blow up at once."""

    family_name = "UnstableCheetah"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.model.opt.timestep = 1.0


def _unstable_agent():
    from metarl.agents import NativeAgent

    return NativeAgent(UnstableCheetahEnv, (8,), -0.5, threads=1)


def test_unstable_physics_raises_naming_the_task_and_step_and_the_copies_stay_usable(
    tmp_path, monkeypatch, mujoco_stepper
):
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its own warning to ./MUJOCO_LOG.TXT
    batch = UnstableCheetahEnv.make_batch(4, threads=1)
    tasks = [VelocityTask(0.5), VelocityTask(1.0), VelocityTask(1.5), VelocityTask(2.0)]
    batch.set_tasks(tasks)
    batch.reset([np.random.default_rng(i) for i in range(4)])
    with pytest.raises(SimulationError, match=r"unstable \(mjWARN_BADQACC.*\) at env step 1 .*task VelocityTask"):
        batch.step(np.ones((4, 6)))
    batch.model.opt.timestep = 0.01  # a sane model again: the copies were reset and step normally
    obs = batch.reset([np.random.default_rng(i) for i in range(4)])
    for _ in range(5):
        obs, reward, _ = batch.step(np.zeros((4, 6)))
    assert np.isfinite(obs).all() and np.isfinite(reward).all()


def test_an_env_fault_in_a_worker_names_the_task_does_not_hang_and_leaves_no_process(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    from metarl.agents import InnerLoop, RunningNorm

    agent = process_pool(_unstable_agent, 2)
    pids = agent.pids()
    try:
        theta0 = _unstable_agent().init_params(0)
        tasks = [VelocityTask(0.25), VelocityTask(0.75)]
        t0 = time.monotonic()
        with pytest.raises(WorkerError, match=r"VelocityTask\(velocity=0.25\).*unstable.*env step 1") as info:
            agent.adapt(theta0, tasks, InnerLoop(agent="vpg"), 1, 2, RunningNorm(17), [(0, 0), (0, 1)])
        # the worker's own traceback travels with the error (the CLI writes it to the run folder)
        assert "Traceback" in info.value.worker_traceback and "SimulationError" in info.value.worker_traceback
        assert time.monotonic() - t0 < 60
        assert all(alive(p) for p in pids)  # the workers reported and kept serving
    finally:
        agent.close()
    assert all_gone(pids)


@pytest.fixture
def unstable_family():
    FAMILIES["UnstableCheetah"] = UnstableCheetahEnv
    yield
    del FAMILIES["UnstableCheetah"]


def test_an_env_fault_stops_the_run_with_one_line_and_keeps_the_checkpoint(
    tmp_path, monkeypatch, capsys, unstable_family
):
    monkeypatch.chdir(tmp_path)
    run = tmp_path / "run"
    argv = [
        "--env",
        "UnstableCheetah",
        "--meta-batch",
        "2",
        "--episodes-per-step",
        "2",
        "--inner-steps",
        "1",
        "--eval-every",
        "0",
        "--meta-iters",
        "3",
        "--hidden",
        "8",
        "--workers",
        "1",
        "--quiet",
        "--run-dir",
        str(run),
    ]
    assert main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert "fault in meta-iteration 1" in err and "env step 1" in err and "task VelocityTask(" in err
    assert "last good checkpoint (iteration 0)" in err
    assert load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"] == 0
    assert json.loads((run / "config.json").read_text())["family"] == "UnstableCheetah"


# ---- 7. one writer per folder, resources checked before they are spent, atomic outputs, versions ------------
def event_files(run):
    return sorted(p.name for p in run.glob("events.out.tfevents.*"))


def names(run):
    """The files of a folder, without the temporary files of a write in progress."""
    return sorted(str(p.relative_to(run)) for p in run.rglob("*") if p.is_file() and not p.name.endswith(".tmp"))


def test_a_second_trainer_or_evaluation_on_a_folder_in_use_is_refused_and_a_killed_holder_leaves_no_lock(
    finished_run, tmp_path
):
    run = tmp_path / "run"
    args = [*TINY, "--episodes-per-step", "10", "--meta-iters", "500", "--checkpoint-every", "0", "--workers", "1"]
    holder = start([*args, "--run-dir", str(run)], tmp_path, name="holder")
    try:
        wait_for_iteration(run, 1, holder)
        before = names(run)
        second = start(["--resume", str(run), "--meta-iters", "600", "--quiet"], tmp_path, name="second")
        rc, err = finish(second, tmp_path, name="second", timeout=60)
        assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert f"{run} is in use by process {holder.pid}" in err and "kill -INT" in err, err
        evaluate = subprocess.run(  # reading the run needs no lock; writing into it as --out is refused
            [sys.executable, "-m", "metarl.evaluate", "--env", "Navigation2D", "--checkpoint", str(run)]
            + ["--out", str(run), "--tasks", "2", "--random-seeds", "0", "--oracle-tasks", "0", "--steps", "1"],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            timeout=60,
        )
        assert evaluate.returncode == 2 and f"in use by process {holder.pid}" in evaluate.stderr, evaluate.stderr
        assert len(evaluate.stderr.strip().splitlines()) == 1
        assert names(run) == before and len(event_files(run)) == 1  # neither wrote a file
        assert holder.poll() is None
    finally:
        holder.kill()
    assert holder.wait() == -signal.SIGKILL
    done = saved_iteration(run)
    assert main(["--resume", str(run), "--meta-iters", str(done + 1), "--quiet"]) == 0  # the kernel freed the lock
    assert saved_iteration(run) == done + 1


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--workers", "300"], "--workers 300 is above the"),
        (["--meta-batch", "100000", "--episodes-per-step", "1000"], "of memory"),
        (["--meta-batch", "1", "--eval-tasks", "1", "--workers", "2"], "the extra workers would have nothing to do"),
    ],
)
def test_an_absurd_worker_count_or_budget_is_refused_before_any_process_starts(tmp_path, argv, message):
    run = tmp_path / "run"
    # Should the check fail, the first worker start ends the command (status 99) instead of swamping the machine.
    prelude = """
        import os, multiprocessing.context
        multiprocessing.context.SpawnProcess.start = lambda self: os._exit(99)
    """
    proc = start(["--env", "Navigation2D", *argv, "--run-dir", str(run)], tmp_path, prelude)
    rc, err = finish(proc, tmp_path, timeout=60)
    assert rc == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert message in err and "use --workers" in err or "lower --meta-batch" in err, err
    assert not run.exists()


def test_resuming_with_more_workers_than_cpus_is_refused_and_changes_nothing(finished_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = files(run)
    assert main(["--resume", str(run), "--meta-iters", "3", "--workers", "300"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--workers 300 is above the" in err and len(err.splitlines()) == 1, err
    assert files(run) == before


@pytest.mark.parametrize(
    "env, workers, flags",
    [
        ("Navigation2D", 2, ["--meta-batch", "4", "--episodes-per-step", "5", "--eval-tasks", "4"]),
        # env copies and rollout buffers dominate: 200 HalfCheetah copies of 50 episodes
        ("HalfCheetahVel", 1, ["--meta-batch", "4", "--episodes-per-step", "50", "--eval-tasks", "4"]),
    ],
)
def test_a_run_the_memory_check_accepts_fits_in_its_estimate(env, workers, flags):
    import importlib.util

    from metarl.config import resolve
    from metarl.resources import check_resources
    from metarl.train import build_parser

    spec = importlib.util.spec_from_file_location("footprint", ROOT / "benchmarks" / "footprint.py")
    footprint = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(footprint)
    flags = [*flags, "--inner-steps", "1", "--eval-steps", "1"]
    cfg, _ = resolve(build_parser().parse_args(["--env", env, "--meta-iters", "1", "--eval-every", "1", *flags]))
    estimate = check_resources(dataclasses.replace(cfg, workers=workers))  # accepted
    measured = footprint.measure(env, 1, None, workers, flags)  # the same run, peak RSS summed over its processes
    assert measured["processes_at_most"] >= workers
    assert measured["peak_rss_mib"] * 2**20 <= estimate.total, (measured, estimate)


# Each command writes its file twice; the second write is killed by SIGKILL at the worst moment, when the new
# content is complete in the temporary file and not yet renamed: the file must be the first, whole and readable.
KILL_AT_TEMP_FSYNC = """
    import os, signal
    real_fsync, seen = os.fsync, []
    def fsync(fd):
        real_fsync(fd)
        name = os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))
        if name.startswith(".{target}.") and name.endswith(".tmp"):
            seen.append(name)
            if len(seen) == {nth}:
                os.kill(os.getpid(), signal.SIGKILL)
    os.fsync = fsync
"""


def _run_killed(code, tmp_path, target, nth):
    """Run ``code`` in a Python process that SIGKILLs itself at the ``nth`` fsync of ``target``'s temporary file."""
    prelude = textwrap.dedent(KILL_AT_TEMP_FSYNC).replace("{target}", target).replace("{nth}", str(nth))
    proc = subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], cwd=tmp_path, timeout=180)
    return proc.returncode


def _evaluate_twice(run, out):
    args = ["--env", "Navigation2D", "--checkpoint", str(run), "--out", str(out), "--tasks", "2"]
    args += ["--random-seeds", "1", "--oracle-tasks", "0", "--steps", "1", "--episodes-per-step", "2"]
    return f"""
        from metarl.evaluate import main
        assert main({[*args, "--seed", "1"]!r}) == 0
        main({[*args, "--seed", "2"]!r})
    """


def _adapt_twice(run, out):
    args = ["--env", "Navigation2D", "--checkpoint", str(run), "--steps", "1", "--episodes-per-step", "2"]
    args += ["--save", str(out / "adapted.pt")]
    return f"""
        from metarl.adapt import main
        assert main({[*args, "--seed", "1"]!r}) == 0
        main({[*args, "--seed", "2"]!r})
    """


def _export_twice(run, out):
    return f"""
        from metarl.agents.sb3 import SB3Agent
        from metarl.config import TrainConfig
        from metarl.envs import get_family
        from metarl.export import export_sb3_zip
        cfg = TrainConfig.from_flags({{"env": "Navigation2D", "agent": "sb3-ppo", "hidden": (8,)}})
        agent = SB3Agent(get_family("Navigation2D"), cfg.inner, (8,), -0.5, threads=1)
        export_sb3_zip(agent.init_params(1), cfg, {str(out / "policy.zip")!r})
        export_sb3_zip(agent.init_params(2), cfg, {str(out / "policy.zip")!r})
    """


def _readable_json(path):
    assert json.loads(path.read_text())["env"] == "Navigation2D"


def _readable_png(path):
    import matplotlib.image

    assert matplotlib.image.imread(path).ndim == 3


def _readable_checkpoint(path):
    assert load_checkpoint(path)["adapted"]["returns"]


def _readable_zip(path):
    from stable_baselines3 import PPO

    PPO.load(path, device="cpu")


@pytest.mark.parametrize(
    "command, target, check",
    [
        (_evaluate_twice, "results.json", _readable_json),
        (_evaluate_twice, "curves.png", _readable_png),
        (_adapt_twice, "adapted.pt", _readable_checkpoint),
        (_export_twice, "policy.zip", _readable_zip),
    ],
)
def test_sigkill_during_an_output_write_leaves_the_previous_file_whole(finished_run, tmp_path, command, target, check):
    out = tmp_path / "out"
    out.mkdir()
    assert _run_killed(command(finished_run, out), tmp_path, target, 2) == -signal.SIGKILL
    check(out / target)  # the first command's file, whole
    (temporary,) = out.glob(f".{target}.*.tmp")  # the second's, complete but never renamed
    assert temporary.read_bytes() != (out / target).read_bytes()


def test_a_checkpoint_from_other_versions_warns_once_in_one_line_and_resumes(
    finished_run, tmp_path, capsys, monkeypatch
):
    import metarl.checkpoint
    from metarl.checkpoint import versions
    from metarl.policy import MetaPolicy

    monkeypatch.setattr(metarl.checkpoint, "_REPORTED", set())
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    latest = run / "checkpoints" / "latest.pt"
    state = torch.load(latest, weights_only=True)
    state.pop("format_version"), state.pop("checksum")
    assert state["versions"] == versions()
    save_checkpoint(latest, {**state, "versions": {**state["versions"], "torch": "1.0.0", "numpy": "0.1"}})
    capsys.readouterr()
    MetaPolicy.load(run)
    assert main(["--resume", str(run), "--meta-iters", "3", "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err  # loaded three times (MetaPolicy.load, before and under the lock): said once
    assert f"{latest} was saved with numpy 0.1, torch 1.0.0 (this process: numpy " in err[0], err
    assert "bit for bit only with the same versions" in err[0]
    assert load_checkpoint(latest)["versions"] == versions()  # the new checkpoint records who made it
