"""Processes and peak memory of a default ``metarl.train`` run, periodic evaluation included.

Starts ``python -m metarl.train --env ENV`` with the family's preset (default workers: one per core) and
``--eval-every 1``, so the run goes through the evaluation at iteration 0, training iterations and the
evaluation after each; polls the process tree every 0.1 s and prints the most processes seen at once
(by kind: the trainer, adaptation workers, Python's multiprocessing resource tracker) and the peak summed
resident (RSS) and proportional (PSS: shared pages split between the processes sharing them) memory, and
the peak RSS of the largest single process of each kind (``--json``: ``peak_rss_mib_by_kind``), the measure
behind ``metarl/resources.py``'s per-process constants.

    python benchmarks/footprint.py --env HalfCheetahVel --meta-iters 1
    python benchmarks/footprint.py --env Navigation2D --workers 2 --json   # metarl/resources.py's constants
    python benchmarks/footprint.py --pythonpath /tmp/oldpkg   # another checkout's metarl, same run

``--pythonpath`` puts a folder holding another ``metarl`` package first on the path, to measure an older
version in the same minute. The README's comparison used commit 9df1fb5 laid out as an installed package::

    git worktree add /tmp/old 9df1fb5 && mkdir -p /tmp/oldpkg && cp -r /tmp/old/metarl /tmp/oldpkg/ \
      && cp -r /tmp/old/envs /tmp/oldpkg/metarl/envs && cp -r /tmp/old/agents /tmp/oldpkg/metarl/agents
    cd /tmp && python /path/to/benchmarks/footprint.py --meta-iters 1 --pythonpath /tmp/oldpkg

(run from a folder without a ``metarl`` of its own). Times compare only on an otherwise idle machine; memory
is not affected by load.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            todo.extend(int(c) for c in Path(f"/proc/{p}/task/{p}/children").read_text().split())
        except OSError:
            pass
    return out


def _kind(pid: int) -> str:
    try:
        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "gone"
    if "resource_tracker" in cmd:
        return "resource tracker"
    if "spawn_main" in cmd or "multiprocessing" in cmd:
        return "worker"
    if "metarl.train" in cmd:
        return "trainer"
    return "other: " + " ".join(cmd.split()[:3])[:60]  # e.g. a short-lived helper a library starts


def _kib(pid: int, key: str, file: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/{file}").read_text().splitlines():
            if line.startswith(key):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def measure(
    env: str, meta_iters: int, pythonpath: str | None, workers: int | None = None, flags: Sequence[str] = ()
) -> dict[str, object]:
    """Run ``metarl.train`` (``--eval-every 1``, then ``flags``) and report its processes and peak memory."""
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "metarl.train", "--env", env, "--meta-iters", str(meta_iters)]
        cmd += [] if workers is None else ["--workers", str(workers)]
        cmd += ["--eval-every", "1", "--quiet", "--run-dir", str(Path(tmp) / "run"), *flags]
        environ = dict(os.environ)
        if pythonpath:
            environ["PYTHONPATH"] = pythonpath
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, cwd=tmp, env=environ, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        most: dict[str, int] = {}
        peak_rss = peak_pss = 0
        largest: dict[str, int] = {}  # kind -> peak RSS (KiB) of its largest process
        while proc.poll() is None:
            pids = _tree(proc.pid)
            kinds: dict[str, int] = {}
            for p in pids:
                kinds[_kind(p)] = kinds.get(_kind(p), 0) + 1
                largest[_kind(p)] = max(largest.get(_kind(p), 0), _kib(p, "VmRSS:", "status"))
            if sum(kinds.values()) > sum(most.values()):
                most = kinds
            peak_rss = max(peak_rss, sum(_kib(p, "VmRSS:", "status") for p in pids))
            peak_pss = max(peak_pss, sum(_kib(p, "Pss:", "smaps_rollup") for p in pids))
            time.sleep(0.1)
        if proc.returncode != 0:
            raise SystemExit(f"the run failed: {proc.stderr.read().decode()[-2000:]}")
        return {
            "env": env,
            "metarl": pythonpath or "this checkout",
            "processes_at_most": sum(most.values()),
            "processes_by_kind": most,
            "peak_rss_mib": round(peak_rss / 1024),
            "peak_pss_mib": round(peak_pss / 1024),
            "peak_rss_mib_by_kind": {k: round(v / 1024) for k, v in largest.items() if k != "gone"},
            "seconds": round(time.monotonic() - t0, 1),
        }


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--env", default="HalfCheetahVel")
    p.add_argument("--meta-iters", type=int, default=1, help="training iterations (evaluated after each)")
    p.add_argument("--pythonpath", action="append", default=[], help="measure the metarl found here too")
    p.add_argument("--workers", type=int, default=None, help="--workers of the run (default: the run's default)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    rows = [measure(args.env, args.meta_iters, None, args.workers)] + [
        measure(args.env, args.meta_iters, pp, args.workers) for pp in args.pythonpath
    ]
    if args.json:
        print(json.dumps(rows))
        return 0
    print("| metarl | processes at most (by kind) | peak RSS MiB | peak PSS MiB | seconds |\n|---|---|---|---|---|")
    for r in rows:
        kinds = ", ".join(f"{v} {k}" for k, v in sorted(r["processes_by_kind"].items()))  # type: ignore[union-attr]
        memory = f"{r['peak_rss_mib']} | {r['peak_pss_mib']}"
        print(f"| {r['metarl']} | {r['processes_at_most']} ({kinds}) | {memory} | {r['seconds']} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
