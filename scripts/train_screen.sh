#!/usr/bin/env bash
# Issue 15's meta-training directions, screened on training draws only (never the held-out tasks): HalfCheetahVel,
# seed 0, 16 M env steps each (the ablation table's budget: 100 iterations of K = 3; K = 5 runs 67, meta-batch 20
# runs 50), one run after the other, each on all cores; then every run adapts to 40 fresh draws from the training
# distribution (evaluation seed 2000, k = 0..3, 20 episodes per step) with the preset's meta-test inner loop (TRPO,
# KL 1.0, linear baseline, step decay 0.7, no entropy bonus) for all, and the table (scripts/compare_curves.py:
# means, CIs, tasks improved, worst task, paired margins over the first row, the preset).
#
#   scripts/train_screen.sh            # runs under runs/screen15/, evaluations and the table under results/train_screen/
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/screen15}
RES=${RES:-results/train_screen}
mkdir -p "$OUT" "$RES"
A="--env HalfCheetahVel --meta-iters 100 --seed 0 --eval-every 0 --video-every 0 --quiet"
names=()
while read -r name flags; do
  names+=("$RES/$name/results.json")
  if [ ! -f "$OUT/$name.done" ]; then
    if [ -f "$OUT/$name/checkpoints/latest.pt" ]; then
      python -m metarl.train --resume "$OUT/$name" --quiet >> "$OUT/$name.log" 2>&1
    else
      rm -rf "${OUT:?}/$name"
      python -m metarl.train $A $flags --run-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
    fi
    touch "$OUT/$name.done"
  fi
  [ -f "$RES/$name/results.json" ] && continue
  python -m metarl.evaluate --env HalfCheetahVel --checkpoint "$OUT/$name" --task-set train --tasks 40 --seed 2000 \
    --steps 3 --episodes-per-step 20 --oracle-tasks 0 --random-seeds 0 --videos 0 --agent trpo --target-kl 1.0 --baseline linear --step-decay 0.7 --ent-coef 0 \
    --out "$RES/$name" > "$RES/$name.log" 2>&1
done <<'CANDIDATES'
preset
eps_const1 --meta-step-final 1.0
ent0.01 --ent-coef 0.01
mb20 --meta-batch 20 --meta-iters 50
k5 --inner-steps 5 --meta-iters 67
CANDIDATES
python scripts/compare_curves.py --against-first "${names[@]}"
