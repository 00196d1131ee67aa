#!/usr/bin/env bash
# Issue 15's meta-training directions, screened on training draws only (never the held-out tasks): HalfCheetahVel,
# seed 0, 16 M env steps each (the ablation table's budget: 100 iterations of K = 3; K = 5 runs 67, meta-batch 20
# runs 50), one run after the other, each on all cores; then every run, and the 16 M-step multi-task baseline, adapts
# to 40 fresh draws from the training distribution (evaluation seed 2000, k = 0..3, 20 episodes per step) with one
# meta-test inner loop for all (LOOP; default: the first round's, TRPO KL 1.0 over a linear baseline, step decay 0.7,
# no entropy bonus), and the table (scripts/compare_curves.py: means, CIs, tasks improved, worst task, paired margins
# over the first row, the preset of the time). "preset" is the HalfCheetah preset before issue 15's third round, PPO
# steps at meta-training (--agent ppo: the preset's TRPO settings do not carry to another agent); trpo_damp10, Reptile
# over the meta-test loop, is the preset since (its flags are the preset's, spelled out); multitask_trpo is the
# multi-task baseline trained by that preset's TRPO steps (K = 1, ε = 1, 200 iterations: the same 16 M env steps).
#
#   scripts/train_screen.sh            # runs under runs/screen15/, evaluations and the table under results/train_screen/
#   LOOP="--agent trpo --target-kl 2.0 --baseline linear --step-decay 0.5 --cg-damping 10 --ent-coef 0" \
#     SUFFIX=__damp10 scripts/train_screen.sh   # the same runs adapted with the second round's loop (the preset's now)
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/screen15}
RES=${RES:-results/train_screen}
LOOP=${LOOP:-"--agent trpo --target-kl 1.0 --baseline linear --step-decay 0.7 --cg-damping 0.1 --ent-coef 0"}
SUFFIX=${SUFFIX:-}
mkdir -p "$OUT" "$RES"
A="--env HalfCheetahVel --meta-iters 100 --seed 0 --eval-every 0 --video-every 0 --quiet"
names=()
evaluate() {  # NAME CHECKPOINT: adapt to the training draws with LOOP, once
  names+=("$RES/$1$SUFFIX/results.json")
  [ -f "$RES/$1$SUFFIX/results.json" ] && return 0
  python -m metarl.evaluate --env HalfCheetahVel --checkpoint "$2" --task-set train --tasks 40 --seed 2000 \
    --steps 3 --episodes-per-step 20 --oracle-tasks 0 --random-seeds 0 --videos 0 $LOOP \
    --out "$RES/$1$SUFFIX" > "$RES/$1$SUFFIX.log" 2>&1
}
while read -r name flags; do
  if [ ! -f "$OUT/$name.done" ]; then
    if [ -f "$OUT/$name/checkpoints/latest.pt" ]; then
      python -m metarl.train --resume "$OUT/$name" --quiet >> "$OUT/$name.log" 2>&1
    else
      rm -rf "${OUT:?}/$name"
      python -m metarl.train $A $flags --run-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
    fi
    touch "$OUT/$name.done"
  fi
  evaluate "$name" "$OUT/$name"
done <<'CANDIDATES'
preset --agent ppo
eps_const1 --agent ppo --meta-step-final 1.0
ent0.01 --agent ppo --ent-coef 0.01
mb20 --agent ppo --meta-batch 20 --meta-iters 50
k5 --agent ppo --inner-steps 5 --meta-iters 67
trpo_damp10 --agent trpo --target-kl 2.0 --baseline linear --step-decay 0.5 --cg-damping 10
multitask_trpo --inner-steps 1 --meta-step 1 --meta-step-final 1 --meta-iters 200
CANDIDATES
evaluate multitask16M results/checkpoints/HalfCheetahVel__multitask__s0__iter200.pt
python scripts/compare_curves.py --against-first "${names[@]}"
