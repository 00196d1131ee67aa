"""Export a meta-policy trained with a stable-baselines3 agent as a plain SB3 model file.

``--agent sb3-ppo | sb3-a2c | sb3-trpo`` trains θ in SB3's own parameter layout (agents/sb3.py,
docs/sb3.md); :func:`export_sb3_zip` writes it as a ``.zip`` that SB3 loads without metarl.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO

from .agents.networks import Params
from .agents.sb3 import save_zip
from .checkpoint import write_atomic
from .config import ConfigError, TrainConfig


def export_sb3_zip(theta: Params, config: TrainConfig, path: str | os.PathLike[str]) -> Path:
    """Save meta-parameters trained with an ``sb3-*`` agent as a plain SB3 ``.zip`` (``model.save``), atomically.

    Load it with ``stable_baselines3.PPO.load`` (``A2C.load``, ``sb3_contrib.TRPO.load``) and use it
    with ``predict`` on raw observations; ``learn`` on ``config.episodes_per_step`` copies of a task's
    env (``n_steps`` = the family's horizon) is the training inner loop's adaptation: the file holds the
    algorithm and hyper-parameters of ``config.inner``.

    Args:
        theta: the checkpoint's ``theta``.
        config: the run's configuration (``TrainConfig.from_dict(checkpoint["config"])``).
        path: file to write; ``.zip`` is appended if missing.

    Returns:
        The path written.
    """
    if not config.inner.is_sb3:
        raise ConfigError(f"--agent {config.inner.agent} is not a stable-baselines3 agent (sb3-ppo, sb3-a2c, sb3-trpo)")
    path = Path(path)
    if path.suffix != ".zip":
        path = path.with_name(path.name + ".zip")

    def write(file: BinaryIO) -> None:
        save_zip(theta, config.family, config.inner, config.hidden, config.log_std_init, file, config.episodes_per_step)

    return write_atomic(path, write)  # a kill mid-write leaves the old zip or the new one
