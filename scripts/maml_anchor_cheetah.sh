#!/usr/bin/env bash
# Issue 14 on HalfCheetahVel at a small budget (the 48 M-step presets take ~2 h per MAML seed on this machine):
# ITERS iterations of 160k env steps for each meta-learner with its preset (Reptile: 10 tasks x 4 batches x 20
# episodes; MAML/FO-MAML: 40 tasks x 2 batches x 10 episodes), seed SEED, then metarl.evaluate on the 40 held-out
# tasks (k = 0..3, 20 episodes, evaluation seed 1000) with the inner loop each was trained for.
set -eu
cd "$(dirname "$0")/.."
ITERS=${ITERS:-20}
SEEDS=${SEEDS:-0}
mkdir -p runs/maml results/maml
for seed in $SEEDS; do
  for ml in reptile maml fomaml; do
    run=runs/maml/HalfCheetahVel__${ml}__i${ITERS}__s${seed}
    [ -f "$run/checkpoints/latest.pt" ] && continue
    python -m metarl.train --env HalfCheetahVel --meta-learner "$ml" --meta-iters "$ITERS" --seed "$seed" \
      --eval-every 0 --eval-tasks 10 --quiet --run-dir "$run" > "$run.log" 2>&1
  done
done
for ml in reptile maml fomaml; do
  out=results/maml/eval_HalfCheetahVel__${ml}__i${ITERS}
  [ -f "$out/results.json" ] && continue
  python -m metarl.evaluate --env HalfCheetahVel --steps 3 --episodes-per-step 20 --seed 1000 --oracle-tasks 0 \
    --random-seeds 0 $(for s in $SEEDS; do echo --checkpoint runs/maml/HalfCheetahVel__${ml}__i${ITERS}__s$s; done) \
    --out "$out" > "$out.log" 2>&1
done
python scripts/compare_curves.py results/maml/eval_HalfCheetahVel__{reptile,maml,fomaml}__i${ITERS}/results.json
