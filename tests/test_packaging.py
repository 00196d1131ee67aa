"""The built wheel installs metarl, metarl.envs and metarl.agents, and nothing named envs/agents."""

import subprocess
import sys
import zipfile
from pathlib import Path

from metarl.envs import FAMILIES

ROOT = Path(__file__).resolve().parents[1]
BUILT_IN = sorted(FAMILIES)  # at import: other tests register their own families later


def test_wheel_contains_and_imports_every_subpackage(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("metarl-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names}
    assert "envs" not in tops and "agents" not in tops
    for sub in ["metarl", "metarl/envs", "metarl/agents"]:
        assert f"{sub}/__init__.py" in names, sub
    shipped = sorted(p.name for p in (ROOT / "metarl" / "pretrained").glob("*.pt"))
    assert shipped == [f"{name}.pt" for name in BUILT_IN]  # one per built-in family, and all travel in the wheel
    assert all(f"metarl/pretrained/{n}" in names for n in shipped)
    assert "metarl/pretrained/__main__.py" in names  # python -m metarl.pretrained
    assert wheel.stat().st_size < 3_000_000, wheel.stat().st_size  # small: docs/results.md, "Pretrained"
    target = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)], check=True
    )
    code = (
        "import sys; sys.path.insert(0, sys.argv[1]);"
        "import metarl, metarl.envs, metarl.agents, metarl.train, metarl.trainer, metarl.reptile;"
        "import metarl.agents.pool, metarl.agents.native, metarl.runner, metarl.checkpoint;"
        "assert all(m.__file__.startswith(sys.argv[1]) for m in (metarl, metarl.envs, metarl.agents));"
        "import gymnasium as gym; gym.make('metarl/Navigation2D-v0');"
        "from metarl.policy import pretrained_path; assert pretrained_path('HalfCheetahVel').is_file();"
        "print('ok')"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(target)], cwd=tmp_path, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "ok"
