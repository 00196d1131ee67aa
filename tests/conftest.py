"""Helpers shared by the test modules: run folders, processes, and small agents for the worker pools."""

import os
from pathlib import Path

import pytest
import torch

# The simulator threads own the cores; keep torch's pool small so tests do not oversubscribe.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


# ---- run folders --------------------------------------------------------------------------------
def theta(run):
    """The meta-parameters of a run folder's latest checkpoint."""
    return torch.load(run / "checkpoints" / "latest.pt", weights_only=True)["theta"]


def same_theta(a, b):
    return set(a) == set(b) and all(torch.equal(a[k], b[k]) for k in a)


def scalar(run, tag):
    """``(step, value)`` of every TensorBoard event of ``tag`` in a run folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run))
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]


# ---- processes ----------------------------------------------------------------------------------
def proc_stat(pid):
    """(state, parent pid, CPU seconds) of a process, or None once it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def alive(pid):
    st = proc_stat(pid)
    return st is not None and st[0] != "Z"


def children(pid):
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        st = proc_stat(stat.parent.name)
        if st is not None and st[1] == pid:
            out.append(int(stat.parent.name))
    return out


# ---- agents -------------------------------------------------------------------------------------
def nav_vpg():
    """A tiny Navigation2D agent recipe (picklable, for worker pools) and its VPG inner loop."""
    from metarl.agents import InnerLoop
    from metarl.agents.agent import AgentSpec

    inner = InnerLoop(agent="vpg", inner_lr=0.1)
    return AgentSpec("Navigation2D", "", inner, (16,), -0.5, 1), inner


def process_pool(factory, workers):
    """A pool of ``workers`` processes building their agents with ``factory``."""
    from metarl.agents.pool import ProcessTransport, WorkerPool

    return WorkerPool(factory(), ProcessTransport(factory, workers))


@pytest.fixture(params=["batch", "per-copy"])
def mujoco_stepper(request, monkeypatch):
    """Run the test on MuJoCo's batched stepper (MuJoCo >= 4) and on the per-copy ``mj_step`` path (MuJoCo 3.x)."""
    from metarl.envs import HAS_NATIVE_BATCH

    if request.param == "batch" and not HAS_NATIVE_BATCH:
        pytest.skip("mujoco.batch needs MuJoCo >= 4.0")
    monkeypatch.setenv("METARL_MUJOCO_STEPPER", request.param)
    return request.param
