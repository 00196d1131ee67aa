"""Dump a run's TensorBoard scalars and config to one JSON file (the committed record of a run).

python scripts/summarize_run.py RUN_DIR > results/<name>.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator


def main() -> int:
    run = Path(sys.argv[1])
    acc = EventAccumulator(str(run), size_guidance={"scalars": 0})
    acc.Reload()
    scalars = {tag: [[e.step, round(e.value, 4)] for e in acc.Scalars(tag)] for tag in sorted(acc.Tags()["scalars"])}
    first = min(e.wall_time for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag))
    last = max(e.wall_time for tag in acc.Tags()["scalars"] for e in acc.Scalars(tag))
    doc = {
        "run": run.name,
        "config": json.loads((run / "config.json").read_text()),
        "wall_clock_minutes_first_to_last_event": round((last - first) / 60, 1),
        "scalars": scalars,
    }
    json.dump(doc, sys.stdout, indent=None, separators=(",", ":"))
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
