"""Loading MuJoCo models for the families, and the simulator warnings that mean instability."""

from __future__ import annotations

from typing import Any

import mujoco


def load_mujoco_model(xml_path: str) -> mujoco.MjModel:
    """Compile ``xml_path`` exactly as ``MjModel.from_xml_path`` does, without MuJoCo 4's warning.

    Gymnasium's assets use the compiler attribute ``settotalmass``, deprecated in MuJoCo 4, which
    prints a warning at every model load. We parse the file into an ``MjSpec`` (relative mesh and include
    paths resolve against the file's folder, without changing the process's working directory), switch the
    attribute off, compile, then rescale with ``mj_setTotalmass`` and ``mj_setConst``: the compiled model is
    identical (tested).
    """
    spec = mujoco.MjSpec.from_file(str(xml_path))
    total = float(spec.compiler.settotalmass)
    if total <= 0:  # the attribute is not set: nothing is deprecated
        return spec.compile()
    spec.compiler.settotalmass = -1.0
    model = spec.compile()
    data = mujoco.MjData(model)
    mujoco.mj_setTotalmass(model, total)
    mujoco.mj_setConst(model, data)
    return model


#: MuJoCo warnings that mean the simulation stopped being physical. On ``mjWARN_BADQACC`` MuJoCo resets
#: the data to the model's initial state and carries on, so without this check an unstable copy would
#: silently teleport. ``mj_resetData`` (every ``reset``) zeroes the counters.
UNSTABLE_WARNINGS = tuple(
    getattr(mujoco.mjtWarning, n) for n in ("mjWARN_BADQPOS", "mjWARN_BADQVEL", "mjWARN_BADQACC", "mjWARN_BADCTRL")
)


def quiet_simulation(env: Any) -> tuple[mujoco.MjModel, mujoco.MjData]:
    """What a family's ``_initialize_simulation`` returns: Gymnasium's, with :func:`load_mujoco_model`."""
    model = load_mujoco_model(env.fullpath)
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, env.width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, env.height)
    return model, mujoco.MjData(model)
