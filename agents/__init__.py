"""Policy-gradient agents (installed as ``metarl.agents``).

- agent.py: the :class:`Agent` contract, :class:`AdaptResult` and the factory :func:`make_agent`
- inner_loop.py: :class:`InnerLoop`, the algorithm and hyper-parameters of an adaptation
- native.py: the native batched agent; vpg.py, ppo.py, trpo.py: its algorithms; update.py, advantage.py: their
  shared pieces; sampler.py: rollouts with the policy in the loop
- sb3.py, vec_env.py: stable-baselines3's algorithms as an agent
- pool.py: any agent in worker processes; ray_transport.py: or Ray actors
- networks.py: parameter sets and the MLPs; normalizer.py: the observation normaliser
"""

from .agent import AdaptResult, Agent, make_agent
from .inner_loop import AGENTS, InnerLoop
from .native import NativeAgent
from .networks import Params, init_params
from .normalizer import RunningNorm
from .sampler import Rollout, collect

__all__ = [
    "AGENTS",
    "AdaptResult",
    "Agent",
    "InnerLoop",
    "NativeAgent",
    "Params",
    "Rollout",
    "RunningNorm",
    "collect",
    "init_params",
    "make_agent",
]
