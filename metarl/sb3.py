"""stable-baselines3 agents at the metarl level: from a :class:`TrainConfig` to an agent or a ``.zip``.

``--agent sb3-ppo | sb3-a2c | sb3-trpo`` selects :class:`~metarl.agents.sb3.SB3Agent` (see
``agents/sb3.py`` and docs/sb3.md). A meta-policy trained with one exports to a plain SB3 model file
with :func:`export_sb3_zip`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .agents.policy import Params
from .agents.sb3 import SB3Agent, SB3Config, save_zip
from .config import ConfigError, TrainConfig
from .envs import TaskFamily, get_family


def is_sb3(agent: str) -> bool:
    """Whether ``agent`` (a ``--agent`` value) names a stable-baselines3 agent."""
    return agent.startswith("sb3-")


def sb3_config(cfg: TrainConfig) -> SB3Config:
    """The SB3 agent's hyper-parameters a run configuration describes."""
    if not is_sb3(cfg.agent):
        raise ConfigError(f"--agent {cfg.agent} is not a stable-baselines3 agent (sb3-ppo, sb3-a2c, sb3-trpo)")
    return SB3Config(algo=cfg.agent[len("sb3-") :], **cfg.inner_loop_kwargs())  # type: ignore[arg-type]


def _family(cfg: TrainConfig) -> type[TaskFamily]:
    # ``TrainConfig.family`` (with ``--randomize``) where the config has it, else the named family
    family = getattr(cfg, "family", None)
    return family if isinstance(family, type) else get_family(cfg.env)


def make_sb3_agent(cfg: TrainConfig, threads: int | None = None) -> SB3Agent:
    """The SB3 inner-loop agent of ``cfg`` (``cfg.agent`` is ``sb3-*``)."""
    return SB3Agent(_family(cfg), sb3_config(cfg), threads=threads)


def export_sb3_zip(theta: Params, config: TrainConfig, path: str | os.PathLike[str]) -> Path:
    """Save meta-parameters trained with an ``sb3-*`` agent as a plain SB3 ``.zip`` (``model.save``).

    Load it with ``stable_baselines3.PPO.load`` (``A2C.load``, ``sb3_contrib.TRPO.load``) and use it
    with ``predict`` on raw observations; ``learn`` on ``config.episodes_per_step`` copies of a task's
    env (``n_steps`` = the family's horizon) is the meta-test adaptation.

    Args:
        theta: the checkpoint's ``theta``.
        config: the run's configuration (``TrainConfig.from_dict(checkpoint["config"])``).
        path: file to write; ``.zip`` is appended if missing.

    Returns:
        The path written.
    """
    return save_zip(theta, _family(config), sb3_config(config), path, n_envs=config.episodes_per_step)
