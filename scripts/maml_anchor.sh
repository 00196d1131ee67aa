#!/usr/bin/env bash
# Issue 14's in-harness anchor: Reptile (the family preset), MAML and FO-MAML (their preset) at equal meta-training
# env steps, 3 seeds each, then metarl.evaluate on the 40 held-out tasks (k = 0..3, 20 episodes, evaluation seed
# 1000), each with the meta-test inner loop it was trained for. Results under results/maml/. Each run uses all cores.
# Budget: ITERS iterations of 80k env steps (Navigation2D) for every method (equal env steps: Reptile 10 tasks x 4
# batches x 20 episodes, MAML 40 tasks x 2 batches x 10 episodes, 100 steps each).
set -eu
cd "$(dirname "$0")/.."
ENV=${ENV:-Navigation2D}
ITERS=${ITERS:-50}
mkdir -p runs/maml results/maml
for seed in 0 1 2; do
  for ml in reptile maml fomaml; do
    run=runs/maml/${ENV}__${ml}__i${ITERS}__s${seed}
    [ -f "$run/checkpoints/latest.pt" ] && continue
    python -m metarl.train --env "$ENV" --meta-learner "$ml" --meta-iters "$ITERS" --seed "$seed" \
      --eval-every "$ITERS" --quiet --run-dir "$run" > "$run.log" 2>&1
  done
done
for ml in reptile maml fomaml; do
  out=results/maml/eval_${ENV}__${ml}__i${ITERS}
  [ -f "$out/results.json" ] && continue
  python -m metarl.evaluate --env "$ENV" --steps 3 --episodes-per-step 20 --seed 1000 --oracle-tasks 0 \
    --random-seeds 1 $(for s in 0 1 2; do echo --checkpoint runs/maml/${ENV}__${ml}__i${ITERS}__s$s; done) \
    --out "$out" > "$out.log" 2>&1
done
python scripts/compare_curves.py results/maml/eval_${ENV}__{reptile,maml,fomaml}__i${ITERS}/results.json
