"""Fingerprints of what fully specified tiny runs compute, to show a refactor changes no result.

Runs ``python -m metarl.train`` (native ppo, trpo, vpg, sb3-ppo; 1 and 2 workers; TRPO meta-test steps),
``python -m metarl.adapt --json`` and ``python -m metarl.evaluate`` (of a once-shipped meta-policy) on tiny
budgets, and prints one JSON object: per case, the SHA-256 of the final meta-parameters and normaliser, and the
evaluation returns.
Compare two commits with ``diff``:

    python scripts/fingerprint.py > /tmp/before.json   # on the old commit
    python scripts/fingerprint.py > /tmp/after.json    # on the new one
    diff /tmp/before.json /tmp/after.json && echo bit-identical
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

TINY = [
    "--env", "HalfCheetahVel", "--meta-iters", "2", "--meta-batch", "3", "--inner-steps", "2",
    "--episodes-per-step", "2", "--eval-every", "0", "--eval-tasks", "2", "--eval-steps", "1", "--seed", "3",
    "--quiet",
]  # fmt: skip
#: The HalfCheetah presets' meta-test loop before issue 15 (value net, constant trust region; for trpo KL 1.0 and
#: TRPO's damping), so that the fingerprints of earlier commits still compare (the ppo cases cannot take them: ppo
#: does not read the baseline, and with --eval-steps 1 the decay never applies).
OLD_ADAPT = ["--adapt-baseline", "value", "--adapt-step-decay", "1.0"]
OLD_TRPO = [*OLD_ADAPT, "--adapt-target-kl", "1.0", "--adapt-cg-damping", "0.1"]
#: Their meta-training TRPO loop before issue 15's third round made TRPO theirs (the trpo cases: a meta-training agent
#: that is the preset's takes the preset's meta-training settings).
OLD_TRPO_TRAIN = ["--baseline", "value", "--step-decay", "1.0", "--cg-damping", "0.1"]
TRPO = ["--agent", "trpo", "--adapt-agent", "trpo", "--target-kl", "0.05", *OLD_TRPO_TRAIN, *OLD_TRPO]
#: The HalfCheetahVel meta-policy shipped until issue 15's third round (seed 0 of the 48M PPO preset; its θ and
#: normaliser are the file's), for the adapt_shipped / evaluate_shipped cases.
SHIPPED = str(Path(__file__).resolve().parents[1] / "results" / "checkpoints" / "HalfCheetahVel__ppo__s0.pt")
CASES = {
    "ppo_w1": ["--agent", "ppo", "--adapt-agent", "ppo", "--workers", "1"],
    "ppo_w2": ["--agent", "ppo", "--adapt-agent", "ppo", "--workers", "2"],
    "trpo_w1": [*TRPO, "--workers", "1"],
    "trpo_w2": [*TRPO, "--workers", "2"],
    "vpg_w1": ["--agent", "vpg", "--adapt-agent", "vpg", "--inner-lr", "0.1", "--workers", "1", *OLD_ADAPT],
    "vpg_w2": ["--agent", "vpg", "--adapt-agent", "vpg", "--inner-lr", "0.1", "--workers", "2", *OLD_ADAPT],
    "ppo_adapt_trpo_w2": ["--agent", "ppo", "--adapt-agent", "trpo", "--workers", "2", *OLD_TRPO],
    "sb3_ppo_w1": ["--agent", "sb3-ppo", "--adapt-agent", "sb3-ppo", "--workers", "1"],
}


def digest(tensors: dict[str, torch.Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(tensors):
        h.update(k.encode())
        h.update(tensors[k].detach().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def eval_scalars(run_dir: Path) -> dict[str, list[float]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    tags = sorted(t for t in acc.Tags()["scalars"] if t.startswith("eval/return") or t.startswith("adapt/return"))
    return {t: [round(e.value, 4) for e in acc.Scalars(t)] for t in tags}


def main() -> None:
    out: dict[str, object] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, extra in CASES.items():
            run_dir = Path(tmp) / name
            cmd = [sys.executable, "-m", "metarl.train", *TINY, *extra, "--run-dir", str(run_dir)]
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
            state = torch.load(run_dir / "checkpoints" / "latest.pt", weights_only=True)
            out[name] = {
                "theta": digest(state["theta"]),
                "normalizer": digest(state["normalizer"]),
                "scalars": eval_scalars(run_dir),
            }
        adapt = subprocess.run(
            [sys.executable, "-m", "metarl.adapt", "--env", "HalfCheetahVel", "--checkpoint", SHIPPED,
             "--task", "velocity=1.3", "--steps", "2", "--episodes-per-step", "4", "--agent", "trpo",
             "--target-kl", "1.0", "--baseline", "value", "--step-decay", "1.0", "--cg-damping", "0.1", "--json"],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        out["adapt_shipped"] = [round(r, 4) for r in json.loads(adapt.stdout)["returns"]]
        ev = Path(tmp) / "eval"
        subprocess.run(
            [sys.executable, "-m", "metarl.evaluate", "--env", "HalfCheetahVel", "--checkpoint", SHIPPED,
             "--tasks", "3", "--steps", "1", "--episodes-per-step", "2", "--random-seeds", "1", "--oracle-tasks", "1",
             "--oracle-steps", "1", "--agent", "trpo",
             "--baseline", "value", "--step-decay", "1.0", "--target-kl", "1.0", "--cg-damping", "0.1",
             "--out", str(ev), "--bootstrap", "50"],
            check=True, stdout=subprocess.DEVNULL,
        )  # fmt: skip
        doc = json.loads((ev / "results.json").read_text())
        out["evaluate_shipped"] = {
            "curves": [[round(x, 4) for x in c["mean"]] for c in doc["curves"]],
            "oracle": round(doc["oracle"]["mean"], 4),
        }
    print(json.dumps(out, indent=1, sort_keys=True))


if __name__ == "__main__":
    main()
