"""metarl: Reptile meta-reinforcement learning over fast policy-gradient agents."""

from .gl import import_mujoco

import_mujoco()  # MUJOCO_GL chosen before MuJoCo reads it (metarl/gl.py)

from . import envs  # noqa: E402, F401  (registers the metarl/<Name>-v0 ids)

__version__ = "0.1.0"


def __getattr__(name: str):  # lazy: `import metarl` stays light for the env registry
    if name in ("MetaPolicy", "AdaptedPolicy"):
        from . import policy

        return getattr(policy, name)
    if name in ("MetaAlgorithm", "Reptile", "MAML", "FOMAML"):
        from . import algorithm

        return getattr(algorithm, name)
    raise AttributeError(f"module 'metarl' has no attribute {name!r}")


__all__ = ["FOMAML", "MAML", "AdaptedPolicy", "MetaAlgorithm", "MetaPolicy", "Reptile", "envs"]
