"""Policy-gradient agents (installed as ``metarl.agents``)."""

from .pg import AdaptResult, PGAgent, PGConfig
from .policy import Params, RunningNorm, init_params
from .sampler import Rollout, collect

__all__ = ["AdaptResult", "PGAgent", "PGConfig", "Params", "Rollout", "RunningNorm", "collect", "init_params"]
