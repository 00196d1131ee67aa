"""Copy a finished run's meta-policy into the package as the shipped pretrained one.

    python scripts/ship_pretrained.py RUN_DIR [--eval results.json] [--multitask RUN_DIR] [--command "..."]
    python scripts/ship_pretrained.py --update metarl/pretrained/F.pt --eval results.json [--multitask F.pt]
    ... [--adapt-agent trpo --adapt-target-kl 2.0 --adapt-step-decay 0.5 --adapt-baseline linear --adapt-cg-damping 10]

Writes metarl/pretrained/<Family>.pt: θ, the normaliser, the config, and provenance: the run, the command
that produced it, its env steps and wall-clock, the machine and library versions, the commit, and the
held-out evaluation (``--eval``: a ``metarl.evaluate`` results.json of this run against its baselines; else
the run's own last periodic evaluation, from its TensorBoard events). ``--update`` adds an evaluation to a
shipped file whose run folder is gone, keeping its θ and the rest of its provenance. ``--adapt-*`` set the
shipped meta-test inner loop (the one ``metarl.adapt`` and ``MetaPolicy.adapt`` use), recorded in the
provenance. ``python -m metarl.pretrained`` lists the shipped files with that headline.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


def _training(run_dir: Path) -> dict[str, Any]:
    """What a run was: its command, iterations, env steps and wall-clock (from its TensorBoard events)."""
    if not (run_dir / "config.json").is_file():
        raise SystemExit(f"ship_pretrained.py: {run_dir} is not a metarl run folder (no config.json)")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from metarl.checkpoint import load_checkpoint

    state = load_checkpoint(run_dir / "checkpoints" / "latest.pt")
    cfg = json.loads((run_dir / "config.json").read_text())
    acc = EventAccumulator(str(run_dir))
    acc.Reload()
    return {
        "state": state,
        "accumulator": acc,
        "run": run_dir.name,
        "command": " ".join(["python", "-m", "metarl.train", *cfg.get("command", [])[1:]]),
        "iterations": state["iteration"],
        "env_steps": state["env_steps"],
        # The iterations' own times (time/iteration_s): a pause between a stop and --resume is not counted.
        "training_wall_clock_minutes": round(sum(e.value for e in acc.Scalars("time/iteration_s")) / 60, 1),
    }


def _headline(doc: dict[str, Any]) -> dict[str, Any]:
    """The held-out evaluation in brief: each curve's mean and 95 % interval, the paired margins, tasks improved."""
    import numpy as np

    out: dict[str, Any] = {
        "tasks": len(doc["tasks"]),
        "episodes_per_step": doc["episodes_per_step"],
        "evaluation_seed": doc["evaluation_seed"],
        "inner_loop": _read_by_its_agent(doc["inner_loop"]),
        "command": " ".join(doc["command"]),
    }
    for curve in doc["curves"]:
        per_task = np.array(curve["per_task"]).mean(0)  # (K + 1, tasks), mean over seeds
        out[curve["name"]] = {
            "mean": [round(x, 2) for x in curve["mean"]],
            "ci95": [[round(a, 2), round(b, 2)] for a, b in zip(curve["ci95_low"], curve["ci95_high"], strict=True)],
            "tasks_improved_by_last_step": int((per_task[-1] > per_task[0]).sum()),
        }
        if "success_mean" in curve:
            out[curve["name"]]["success"] = [round(x, 3) for x in curve["success_mean"]]
    for c in doc["meta_policy_minus_baseline"]:
        out[f"minus {c['baseline']}"] = [
            [round(d, 2), round(lo, 2), round(hi, 2)]
            for d, lo, hi in zip(c["difference"], c["ci95_low"], c["ci95_high"], strict=True)
        ]
    return out


def _read_by_its_agent(loop: dict[str, Any]) -> dict[str, Any]:
    """An inner loop's fields that its agent reads (the agent first)."""
    from metarl.agents.inner_loop import InnerLoop

    return {k: v for k, v in loop.items() if InnerLoop.from_dict(loop).uses(k)}


def _with_adapt(config: dict[str, Any], adaptation: dict[str, Any]) -> dict[str, Any]:
    """``config`` (a checkpoint's, this format) with its meta-test inner loop's fields replaced, checked as
    ``metarl.train`` checks ``--adapt-*``: values that cannot work, or that the loop's agent does not read."""
    from metarl.agents.inner_loop import InnerLoopError, check_used
    from metarl.config import ConfigError, TrainConfig

    new = {**config, "adapt": {**config["adapt"], **adaptation}}
    try:
        cfg = TrainConfig.from_dict(new)
        cfg.validate()
        check_used({k: v for k, v in adaptation.items() if k != "agent"}, (cfg.adapt,), prefix="--adapt-")
    except (ConfigError, InnerLoopError) as e:
        print(f"ship_pretrained.py: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    return new


def main() -> int:
    from metarl.config import ADAPT_FIELDS, flag_meta

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run_dir", type=Path, nargs="?")
    p.add_argument("--update", type=Path, default=None, help="a shipped .pt file to add --eval to (no run folder)")
    p.add_argument("--command", default=None, help="the training command (default: from config.json)")
    p.add_argument("--eval", type=Path, default=None, help="results.json of python -m metarl.evaluate on this run")
    p.add_argument("--multitask", type=Path, default=None, help="the multi-task baseline's run folder or checkpoint")
    meta = flag_meta()
    for name, field in ADAPT_FIELDS.items():  # metarl.train's --adapt-* flags, setting the shipped file's loop
        default, _, extra = meta[name]
        choices = [c for c in extra.get("choices", ()) if c]  # "" (keep the training loop's) means nothing here
        kind = {"choices": choices} if choices else {"type": type(default)}
        p.add_argument(
            "--" + name.replace("_", "-"), default=None, help=f"set the shipped meta-test loop's {field}", **kind
        )
    args = p.parse_args()

    from metarl.checkpoint import CheckpointError

    if (args.run_dir is None) == (args.update is None):
        p.error("give RUN_DIR, or --update FILE (not both)")
    if args.update is not None and args.eval is None:
        p.error("--update needs --eval results.json (the evaluation to add)")
    try:
        return _ship(args)
    except CheckpointError as e:
        p.error(str(e))


def _ship(args: argparse.Namespace) -> int:
    from metarl.checkpoint import load_checkpoint, save_checkpoint
    from metarl.config import ADAPT_FIELDS
    from metarl.policy import resolve_checkpoint

    adaptation = {field: getattr(args, name) for name, field in ADAPT_FIELDS.items() if getattr(args, name) is not None}
    if args.update is not None:  # θ and provenance as shipped; the evaluation, baseline, meta-test loop replaced
        state = load_checkpoint(args.update)
        prov = dict(state["provenance"])
        prov["heldout_evaluation"] = _headline(json.loads(args.eval.read_text()))
        if args.multitask is not None:
            base = load_checkpoint(resolve_checkpoint(args.multitask))
            prov["multitask_baseline"] = {"file": str(args.multitask), "env_steps": int(base["env_steps"])}
        if adaptation:
            state = {**state, "config": _with_adapt(state["config"], adaptation)}
            # older files named the fields by their flags (adapt_agent, ...): one naming, the field's
            earlier = {
                k.removeprefix("adapt_"): v for k, v in prov.get("meta_test_inner_loop_set_when_shipped", {}).items()
            }
            prov["meta_test_inner_loop_set_when_shipped"] = {**earlier, **adaptation}
        save_checkpoint(args.update, {**state, "provenance": prov})
        print(f"updated {args.update}\n{json.dumps(prov, indent=1)}")
        return 0
    run = _training(args.run_dir)
    state, acc = run.pop("state"), run.pop("accumulator")
    if state["iteration"] != state["config"]["meta_iters"]:
        it, total = state["iteration"], state["config"]["meta_iters"]
        print(f"ship_pretrained.py: refusing, {args.run_dir} stopped at iteration {it} of {total}", file=sys.stderr)
        return 2

    def git(*argv: str) -> str:
        return subprocess.run(["git", *argv], cwd=ROOT, capture_output=True, text=True).stdout.strip()

    # "-dirty": shipped from a tree with uncommitted changes (other than the shipped files themselves)
    dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":!metarl/pretrained/*.pt")
    commit = git("rev-parse", "HEAD") + ("-dirty" if dirty else "")
    provenance = {
        **run,
        "command": args.command or run["command"],
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
        "versions": state.get("versions", {}),  # those of the training run (its last checkpoint)
        "metarl_commit_when_shipped": commit,
    }
    if args.eval is not None:
        provenance["heldout_evaluation"] = _headline(json.loads(args.eval.read_text()))
    else:
        provenance["final_eval_on_heldout_tasks"] = {
            f"k={k}": round(acc.Scalars(f"eval/return_step{k}")[-1].value, 2)
            for k in range(state["config"]["eval_steps"] + 1)
            if f"eval/return_step{k}" in acc.Tags()["scalars"]
        }
    if args.multitask is not None and args.multitask.is_dir():
        base = _training(args.multitask)
        provenance["multitask_baseline"] = {k: base[k] for k in ("command", "env_steps", "training_wall_clock_minutes")}
    elif args.multitask is not None:
        base_state = load_checkpoint(args.multitask)
        provenance["multitask_baseline"] = {"file": str(args.multitask), "env_steps": int(base_state["env_steps"])}
    out = ROOT / "metarl" / "pretrained" / f"{state['family']}.pt"
    keep = {k: state[k] for k in ("family", "iteration", "env_steps", "config", "theta", "normalizer")}
    if adaptation:  # the meta-test inner loop, chosen after training (docs/results.md, "Adaptability")
        trained_with = keep["config"]["adapt"]["agent"]
        keep["config"] = _with_adapt(keep["config"], adaptation)
        provenance["meta_test_inner_loop_set_when_shipped"] = adaptation
        provenance["final_eval_inner_loop"] = f"{trained_with} (the training run's periodic evaluation)"
    save_checkpoint(out, {**keep, "provenance": provenance})
    print(f"wrote {out} ({out.stat().st_size // 1024} KiB)\n{json.dumps(provenance, indent=1)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
