#!/usr/bin/env bash
# Issue 14's "best meta-test inner loop found on training draws": each meta-learner's seed-0 checkpoint after
# ITERS iterations (scripts/maml_anchor_cheetah.sh) adapts to 20 fresh draws from the training distribution
# (--task-set train, evaluation seed 2000; never the held-out tasks) with each candidate inner loop, k = 0..3,
# 20 episodes per step. The best candidate by the mean return after 3 steps is then evaluated on the held-out
# tasks with every seed (scripts/maml_anchor_eval.sh with EXTRA/TAG).
set -eu
cd "$(dirname "$0")/.."
ENV=${ENV:-HalfCheetahVel}
ITERS=${ITERS:-20}
mkdir -p results/maml/tune
for ml in reptile maml fomaml; do
  ckpt=runs/maml/${ENV}__${ml}__i${ITERS}__s0/checkpoints/$(printf iter_%06d.pt "$ITERS")
  for cand in "vpg 0.1" "vpg 0.05" "trpo 1.0" "trpo 0.3"; do
    set -- $cand
    if [ "$1" = vpg ]; then flags="--agent vpg --inner-lr $2"; else flags="--agent trpo --target-kl $2"; fi
    out=results/maml/tune/${ENV}__${ml}__i${ITERS}__$1_$2
    [ -f "$out/results.json" ] && continue
    python -m metarl.evaluate --env "$ENV" --checkpoint "$ckpt" --task-set train --tasks 20 --seed 2000 \
      --steps 3 --episodes-per-step 20 --oracle-tasks 0 --random-seeds 0 --videos 0 $flags --out "$out" > "$out.log" 2>&1
  done
done
python - "$ENV" "$ITERS" <<'PY'
import json, sys
from pathlib import Path
env, iters = sys.argv[1], sys.argv[2]
print("| meta-learner | inner loop | k=0 | k=1 | k=2 | k=3 |")
print("|---|---|---|---|---|---|")
for ml in ("reptile", "maml", "fomaml"):
    for p in sorted(Path("results/maml/tune").glob(f"{env}__{ml}__i{iters}__*/results.json")):
        mean = json.loads(p.read_text())["curves"][0]["mean"]
        print(f"| {ml} | {p.parent.name.split('__')[-1].replace('_', ' ')} | " + " | ".join(f"{m:.1f}" for m in mean) + " |")
PY
