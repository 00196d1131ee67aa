"""Copy a finished run's meta-policy into the package as the shipped pretrained one.

    python scripts/ship_pretrained.py RUN_DIR [--command "python -m metarl.train ..."]

Writes metarl/pretrained/<Family>.pt: θ, the normaliser, the config, and provenance (the run, the
command that produced it, the machine, the final held-out evaluation from its TensorBoard events).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path)
    p.add_argument("--command", default=None, help="the training command (default: from config.json)")
    p.add_argument("--adapt-agent", default=None, help="set the meta-test inner loop's agent (config adapt), e.g. trpo")
    p.add_argument("--adapt-target-kl", type=float, default=None, help="set the meta-test inner loop's target_kl")
    args = p.parse_args()

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from metarl.checkpoint import load_checkpoint, save_checkpoint

    state = load_checkpoint(args.run_dir / "checkpoints" / "latest.pt")
    cfg = json.loads((args.run_dir / "config.json").read_text())
    if state["iteration"] != state["config"]["meta_iters"]:
        print(f"refusing: {args.run_dir} stopped at iteration {state['iteration']} of {state['config']['meta_iters']}")
        return 2
    acc = EventAccumulator(str(args.run_dir))
    acc.Reload()
    final_eval = {
        f"k={k}": round(acc.Scalars(f"eval/return_step{k}")[-1].value, 2)
        for k in range(state["config"]["eval_steps"] + 1)
        if f"eval/return_step{k}" in acc.Tags()["scalars"]
    }
    wall = acc.Scalars("adapt/return_post")
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    provenance = {
        "run": args.run_dir.name,
        "command": args.command or " ".join(["python", "-m", "metarl.train", *cfg.get("command", [])[1:]]),
        "iterations": state["iteration"],
        "env_steps": state["env_steps"],
        "training_wall_clock_minutes": round((wall[-1].wall_time - wall[0].wall_time) / 60, 1),
        "final_eval_on_heldout_tasks": final_eval,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}, no GPU",
        "metarl_commit_when_shipped": commit,
    }
    out = ROOT / "metarl" / "pretrained" / f"{state['family']}.pt"
    keep = {k: state[k] for k in ("family", "iteration", "env_steps", "config", "theta", "normalizer")}
    adaptation = {"agent": args.adapt_agent, "target_kl": args.adapt_target_kl}
    adaptation = {k: v for k, v in adaptation.items() if v is not None}
    if adaptation:  # the meta-test inner loop, chosen after training (docs/results.md, "Adaptability")
        trained_with = keep["config"]["adapt"]["agent"]
        keep["config"] = {**keep["config"], "adapt": {**keep["config"]["adapt"], **adaptation}}
        provenance["meta_test_inner_loop_set_when_shipped"] = adaptation
        provenance["final_eval_inner_loop"] = f"{trained_with} (the training run's periodic evaluation)"
    save_checkpoint(out, {**keep, "provenance": provenance})
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)\n{json.dumps(provenance, indent=1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
