"""Faults provoked for real: SIGKILL at chosen moments, signals, crafted and damaged checkpoints,
divergence, bad command lines, unstable physics. Runs use the cheap Navigation2D family."""

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
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from metarl.agents.parallel import ParallelAgent, WorkerError
from metarl.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
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


def children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def alive(pid):
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def all_gone(pids, timeout=10):
    t0 = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - t0 < timeout:
        time.sleep(0.05)
    return not any(alive(p) for p in pids)


def theta(run):
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["theta"]


def same_theta(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


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
    agent = ParallelAgent(_nav_agent, 2, 2, 2)
    try:
        from metarl.agents.policy import RunningNorm

        local = _nav_agent()
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
        res = agent.adapt(theta0, tasks, 3, 100, RunningNorm(2), [(0, i) for i in range(4)])
        t.join()
        assert agent.restarts == 0 and all(alive(p) for p in agent.pids())
        ref = local.adapt(theta0, tasks, 3, 100, RunningNorm(2), [(0, i) for i in range(4)])
        assert all(torch.equal(a[k], b[k]) for a, b in zip(res.params, ref.params) for k in a)
    finally:
        agent.close()


def _nav_agent(threads=1):
    from metarl.agents import PGAgent, PGConfig
    from metarl.envs import Navigation2DEnv

    return PGAgent(Navigation2DEnv, PGConfig(algo="vpg", lr=0.1, hidden=(16,)), threads=1)


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
        (_newer_format, "checkpoint format 99 is newer than this metarl reads (1); upgrade metarl"),
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
    from metarl.agents import PGAgent, PGConfig

    return PGAgent(UnstableCheetahEnv, PGConfig(algo="vpg", hidden=(8,)), threads=1)


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
    agent = ParallelAgent(_unstable_agent, 2, 17, 6)
    pids = agent.pids()
    try:
        from metarl.agents.policy import RunningNorm

        theta0 = _unstable_agent().init_params(0)
        tasks = [VelocityTask(0.25), VelocityTask(0.75)]
        t0 = time.monotonic()
        with pytest.raises(WorkerError, match=r"VelocityTask\(velocity=0.25\).*unstable.*env step 1") as info:
            agent.adapt(theta0, tasks, 1, 2, RunningNorm(17), [(0, 0), (0, 1)])
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
