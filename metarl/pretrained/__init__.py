"""The shipped pretrained meta-policies: one ``<Family>.pt`` per family, and what each one is worth.

    python -m metarl.pretrained             # what ships, each with its measured headline
    python -m metarl.adapt --list           # the same

Each file holds θ, the observation normaliser, the training config and its provenance (the command, commit,
library versions, env steps and wall-clock of the run, and its held-out evaluation against the multi-task
baseline, at the same env steps unless its headline says otherwise, and a random initialisation);
``scripts/pretrain.sh`` retrains them all.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any


def files() -> list[Path]:
    """The shipped ``.pt`` files, sorted by family name."""
    return sorted(Path(str(resources.files(__name__))).glob("*.pt"))


def _curve(entry: dict[str, Any]) -> str:
    return " → ".join(f"{x:.1f}" for x in entry["mean"])


def headline(provenance: dict[str, Any]) -> str:
    """One line: the held-out curve k = 0..K, the multi-task baseline's and the paired margin at the last k."""
    ev = provenance.get("heldout_evaluation")
    if ev is None:  # files shipped before the zoo: the training run's own last evaluation
        old = provenance.get("final_eval_on_heldout_tasks", {})
        return "held-out " + " → ".join(f"{v:.1f}" for v in old.values()) + " (training run's evaluation)"
    meta = next((v for k, v in ev.items() if k.startswith("meta-policy")), None)
    if meta is None:
        return "no meta-policy curve in its evaluation"
    last = len(meta["mean"]) - 1
    n = ev["tasks"]
    line = f"k=0..{last} {_curve(meta)} on {n} held-out tasks ({meta['tasks_improved_by_last_step']} of {n} improved)"
    if "multi-task baseline" in ev:
        d, lo, hi = ev["minus multi-task baseline"][-1]
        base_steps = provenance.get("multitask_baseline", {}).get("env_steps", provenance.get("env_steps"))
        budget = "" if base_steps == provenance.get("env_steps") else f" (trained {base_steps / 1e6:.0f} M steps)"
        margin = f"margin at k={last} {d:+.1f} [{lo:+.1f}, {hi:+.1f}]"
        line += f"; multi-task{budget} {_curve(ev['multi-task baseline'])}, {margin}"
    if "random init" in ev:
        line += f"; random init {_curve(ev['random init'])}"
    return line


def table() -> list[dict[str, Any]]:
    """Family, file size, env steps, wall-clock and headline of every shipped file (read with weights_only)."""
    from ..agents.inner_loop import InnerLoop
    from ..checkpoint import load_checkpoint

    rows = []
    for path in files():
        state = load_checkpoint(path)
        prov = state.get("provenance", {})
        rows.append(
            {
                "family": state["family"],
                "file": str(path),
                "kib": path.stat().st_size // 1024,
                "env_steps": int(state["env_steps"]),
                "minutes": prov.get("training_wall_clock_minutes"),
                "agent": state["config"]["adapt"]["agent"],
                "adapts_by": InnerLoop.from_dict(state["config"]["adapt"]).describe(),
                "headline": headline(prov),
            }
        )
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse
    import json

    p = argparse.ArgumentParser(prog="python -m metarl.pretrained", description=__doc__.split("\n\n")[0])
    p.add_argument("--json", action="store_true", help="print a JSON list instead of text")
    args = p.parse_args(argv)
    rows = table()
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    for r in rows:
        minutes = "" if r["minutes"] is None else f", {r['minutes']} min"
        steps = f"{r['env_steps'] / 1e6:5.1f} M steps{minutes}"
        print(f"{r['family']:<20} {steps}, adapts by {r['adapts_by']}: {r['headline']}")
    print(f"{len(rows)} shipped; load one with metarl.MetaPolicy.pretrained(NAME) or python -m metarl.adapt --env NAME")
    return 0
