"""Scale-out: a worker process or a Ray actor SIGKILLed mid-iteration is replaced and the run ends with the
parameters of an undisturbed one; the Ray backend on a real two-node Ray cluster on loopback gives the
serial parameters. Ray stays on loopback (node IPs 127.0.0.2/127.0.0.3, see docs/ray.md), its usage
statistics off, its temp folder inside the test's, and every Ray process is stopped at the end."""

import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import alive, children, nav_vpg, proc_stat, process_pool, same_theta, scalar, theta

from metarl.checkpoint import CheckpointError, load_checkpoint
from metarl.train import main

TINY = [
    "--env",
    "Navigation2D",
    "--meta-batch",
    "4",
    "--episodes-per-step",
    "3",
    "--inner-steps",
    "1",
    "--eval-every",
    "0",
    "--quiet",
]
# Ray rewrites 127.0.0.1/localhost to the machine's outward address (ray._private.services.
# resolve_ip_for_localhost); other loopback addresses are kept, so the nodes use those.
HEAD_IP, WORKER_IP = "127.0.0.2", "127.0.0.3"


# ---- helpers ------------------------------------------------------------------------------------


def kill_when_busy(pid, cpu_seconds=0.05, timeout=60):
    """SIGKILL ``pid`` once it has used ``cpu_seconds`` more CPU time: it is in the middle of a call."""
    start, t0 = proc_stat(pid)[2], time.monotonic()
    while proc_stat(pid)[2] - start < cpu_seconds:
        assert time.monotonic() - t0 < timeout, "the worker never got busy"
        time.sleep(0.01)
    os.kill(pid, signal.SIGKILL)


# ---- worker processes ---------------------------------------------------------------------------
def test_a_worker_process_killed_mid_iteration_is_replaced_and_the_run_ends_with_the_undisturbed_parameters(
    tmp_path,
):
    args = [*TINY, "--episodes-per-step", "20", "--meta-iters", "3"]
    assert main([*args, "--workers", "1", "--run-dir", str(tmp_path / "serial")]) == 0
    run = tmp_path / "killed"
    argv = [*args, "--workers", "2", "--run-dir", str(run)]
    code = f"import sys\nfrom metarl.train import main\nsys.exit(main({argv!r}))"
    with open(tmp_path / "err", "w") as err:
        proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path, stderr=err)
    workers = []
    try:
        t0 = time.monotonic()
        while _saved_iteration(run) < 1:  # iteration 2 is starting: the workers are about to get busy
            assert proc.poll() is None and time.monotonic() - t0 < 120
            time.sleep(0.01)
        workers = [p for p in children(proc.pid) if "multiprocessing" in Path(f"/proc/{p}/cmdline").read_text()]
        workers = [p for p in workers if "spawn_main" in Path(f"/proc/{p}/cmdline").read_text()]
        assert len(workers) == 2
        kill_when_busy(workers[1])
        assert proc.wait(timeout=120) == 0
    finally:
        proc.kill()
    err = (tmp_path / "err").read_text()
    assert "worker 1 died (exit code -9) adapting tasks 2..3; restarted it and re-ran its tasks" in err, err
    assert "Traceback" not in err
    assert same_theta(theta(run), theta(tmp_path / "serial"))
    restarts = [v for _, v in scalar(run, "meta/worker_restarts")]  # cumulative, logged every iteration
    assert restarts[0] == 0.0 and restarts[-1] == 1.0 and restarts == sorted(restarts)
    assert not any(alive(p) for p in workers) and not children(proc.pid)


def test_a_worker_process_that_died_between_calls_is_restarted_at_the_next_call():
    from metarl.agents import RunningNorm

    spec, inner = nav_vpg()
    local = spec()
    theta0 = local.init_params(0)
    tasks = local.family.sample_tasks(4, np.random.default_rng(0))
    seeds = [(0, i) for i in range(4)]
    agent = process_pool(spec, 2)
    try:
        dead = agent.pids()[1]
        os.kill(dead, signal.SIGKILL)
        while alive(dead):
            time.sleep(0.01)
        res = agent.adapt(theta0, tasks, inner, 1, 5, RunningNorm(local.obs_dim), seeds)  # the send to it fails
        assert agent.restarts == 1 and agent.pids()[1] != dead
        ref = local.adapt(theta0, tasks, inner, 1, 5, RunningNorm(local.obs_dim), seeds)
        assert all(torch.equal(a[k], b[k]) for a, b in zip(res.params, ref.params) for k in a)
    finally:
        agent.close()


def _saved_iteration(run):
    try:
        return load_checkpoint(run / "checkpoints" / "latest.pt")["iteration"]
    except CheckpointError:
        return -1


# ---- Ray ----------------------------------------------------------------------------------------
def test_backend_ray_without_ray_installed_is_a_one_line_error_naming_the_extra(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # as if ray were not installed
    run = tmp_path / "run"
    assert main([*TINY, "--meta-iters", "1", "--backend", "ray", "--run-dir", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == 'metarl.train: error: --backend ray needs Ray: pip install "metarl[ray]"' and not run.exists()
    from metarl.agents.ray_transport import RayMissingError, RayTransport

    with pytest.raises(RayMissingError, match=r'^the Ray backend needs Ray: pip install "metarl\[ray\]"$'):
        RayTransport(nav_vpg()[0], 1)


def test_the_core_never_imports_ray(tmp_path):
    code = textwrap.dedent(f"""
        import sys
        from metarl.train import main
        import metarl.agents.pool, metarl.adapt, metarl.evaluate
        assert main({[*TINY, "--meta-iters", "1", "--workers", "1", "--run-dir", str(tmp_path / "run")]!r}) == 0
        assert "ray" not in sys.modules, "ray was imported"
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr


def _ray_tree(temp_dir, address="never"):
    """Pids of the Ray processes of the cluster in ``temp_dir`` at ``address`` and all their descendants."""
    roots = set()
    for cmd in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmd.read_bytes().decode(errors="replace")
            if str(temp_dir) in text or f"={address}" in text:  # the client server names only the address
                roots.add(int(cmd.parent.name))
        except OSError:
            pass
    tree, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p not in tree and p != os.getpid():
            tree.add(p)
            todo.extend(children(p))
    return tree


def _free_port(host):
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """A real Ray cluster on loopback: a head and a worker node, one CPU each. Yields its address."""
    pytest.importorskip("ray", reason='the Ray backend tests need Ray: pip install "metarl[ray]"')
    ray_bin = shutil.which("ray", path=str(Path(sys.executable).parent)) or shutil.which("ray")
    temp = tmp_path_factory.mktemp("ray")  # short: Ray's socket paths must stay under 107 characters
    # No usage statistics; no token authentication on loopback (a local ray.init() elsewhere may have left
    # ~/.ray/auth_token, which the head would then demand and the worker node not send).
    settings = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "disabled"}
    env = {**os.environ, **settings}
    old = {k: os.environ.get(k) for k in settings}
    os.environ.update(settings)  # for the drivers this process starts
    started, address = set(), "never"
    try:
        common = ["--num-cpus", "1", "--temp-dir", str(temp), "--disable-usage-stats"]
        subprocess.run(
            [
                ray_bin,
                "start",
                "--head",
                "--node-ip-address",
                HEAD_IP,
                "--port",
                "0",
                "--ray-client-server-port",  # not Ray's fixed 10001: another test run may hold a cluster too
                str(_free_port(HEAD_IP)),
                "--include-dashboard=false",
                *common,
            ],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        address = (temp / "ray_current_cluster").read_text().strip()
        assert address.startswith(HEAD_IP + ":")
        subprocess.run(
            [ray_bin, "start", "--address", address, "--node-ip-address", WORKER_IP, *common],
            env=env,
            check=True,
            capture_output=True,
            timeout=180,
        )
        started = _ray_tree(temp, address)
        yield address
    finally:
        started |= _ray_tree(temp, address)
        for p in started:  # only this cluster's processes: `ray stop` would stop every Ray on the machine
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
        t0 = time.monotonic()
        while any(alive(p) for p in started) and time.monotonic() - t0 < 10:
            time.sleep(0.05)
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        assert started and not any(alive(p) for p in started), "a Ray process outlived the test"
        assert not _ray_tree(temp, address), "a Ray process outlived the test"


def test_ray_backend_on_a_two_node_loopback_cluster_gives_the_serial_parameters(ray_cluster, tmp_path):
    import ray

    args = [*TINY, "--meta-iters", "3", "--checkpoint-every", "2"]
    assert main([*args, "--workers", "1", "--run-dir", str(tmp_path / "serial")]) == 0
    run = tmp_path / "ray"
    assert main([*args, "--workers", "2", "--backend", "ray", "--ray-address", ray_cluster, "--run-dir", str(run)]) == 0
    assert not ray.is_initialized()  # the run disconnected from the cluster
    assert same_theta(theta(run), theta(tmp_path / "serial"))
    assert [v for _, v in scalar(run, "meta/worker_restarts")] == [0.0, 0.0, 0.0]
    # the backend is a performance setting: it may change on --resume (as if stopped after iteration 2)
    ckpt = run / "checkpoints"
    (ckpt / "latest.pt").write_bytes((ckpt / "iter_000002.pt").read_bytes())
    assert main(["--resume", str(run), "--backend", "processes", "--workers", "1", "--quiet"]) == 0
    assert same_theta(theta(run), theta(tmp_path / "serial"))


def test_a_ray_actor_killed_mid_call_is_replaced_and_its_tasks_re_run(ray_cluster, caplog):
    import ray

    from metarl.agents import RunningNorm
    from metarl.agents.pool import WorkerPool
    from metarl.agents.ray_transport import RayTransport

    spec, inner = nav_vpg()
    local = spec()
    theta0 = local.init_params(0)
    tasks = local.family.sample_tasks(4, np.random.default_rng(0))
    seeds = [(0, i) for i in range(4)]
    ray.init(address=ray_cluster, logging_level=logging.WARNING)
    try:
        agent = WorkerPool(spec(), RayTransport(spec, 2))
        assert {n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"]} == {HEAD_IP, WORKER_IP}
        pids = agent.pids()  # both actors built their agents and wait
        killer = threading.Thread(target=kill_when_busy, args=(pids[1],))
        killer.start()
        with caplog.at_level(logging.WARNING, logger="metarl.agents.pool"):
            res = agent.adapt(theta0, tasks, inner, 3, 60, RunningNorm(local.obs_dim), seeds)
        killer.join()
        assert agent.restarts == 1 and not alive(pids[1])
        assert "Ray actor 1 died (" in caplog.text
        assert "adapting tasks 2..3; restarted it and re-ran its tasks" in caplog.text
        new = agent.pids()
        assert new[0] == pids[0] and new[1] != pids[1]
        ref = local.adapt(theta0, tasks, inner, 3, 60, RunningNorm(local.obs_dim), seeds)
        assert all(torch.equal(a[k], b[k]) for a, b in zip(res.params, ref.params) for k in a)
        assert torch.equal(res.returns, ref.returns)
        agent.close()
        t0 = time.monotonic()
        while any(alive(p) for p in new) and time.monotonic() - t0 < 20:
            time.sleep(0.05)
        assert not any(alive(p) for p in new), "an actor outlived close()"
    finally:
        ray.shutdown()
