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
