import os

import pytest
import torch

# The simulator threads own the cores; keep torch's pool small so tests do not oversubscribe.
torch.set_num_threads(1)
os.environ.setdefault("MUJOCO_GL", "egl")


@pytest.fixture
def rng():
    import numpy as np

    return np.random.default_rng(0)


@pytest.fixture(params=["batch", "per-copy"])
def mujoco_stepper(request, monkeypatch):
    """Run the test on MuJoCo's batched stepper (MuJoCo >= 4) and on the per-copy ``mj_step`` path (MuJoCo 3.x)."""
    from metarl.envs import HAS_NATIVE_BATCH

    if request.param == "batch" and not HAS_NATIVE_BATCH:
        pytest.skip("mujoco.batch needs MuJoCo >= 4.0")
    monkeypatch.setenv("METARL_MUJOCO_STEPPER", request.param)
    return request.param
