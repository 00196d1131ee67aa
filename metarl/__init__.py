"""metarl: Reptile meta-reinforcement learning over fast policy-gradient agents."""

from . import envs  # noqa: F401  (registers the metarl/<Name>-v0 ids)

__version__ = "0.1.0"
