#!/usr/bin/env bash
# Issue 15's meta-test directions, tuned on training draws only: a meta-policy (CHECKPOINT; default: for
# HalfCheetahVel the one shipped until issue 15's third round, seed 0 of the 48M PPO preset, else the shipped one)
# adapts to TASKS fresh draws from the training distribution (--task-set train, evaluation seed 2000; never the
# held-out tasks), k = 0..3, 20 episodes per step, with each candidate meta-test inner loop; then the table
# (scripts/compare_curves.py: means, CIs, tasks improved, the worst task's change, paired margins over the first).
set -eu
cd "$(dirname "$0")/.."
ENV=${ENV:-HalfCheetahVel}
TASKS=${TASKS:-40}
CHECKPOINT=${CHECKPOINT:-}
if [ -z "$CHECKPOINT" ] && [ "$ENV" = HalfCheetahVel ]; then CHECKPOINT=results/checkpoints/HalfCheetahVel__ppo__s0.pt; fi
OUT=${OUT:-results/adapt_tune}
mkdir -p "$OUT"
# every candidate starts from the meta-test inner loop shipped before issue 15 (its "own"), the later flags win
BASE=${BASE:-"--agent trpo --target-kl 1.0 --baseline value --step-decay 1.0 --holdout 0 --cg-damping 0.1"}
names=()
while read -r name flags; do
  out=$OUT/${ENV}__$name
  names+=("$out/results.json")
  [ -f "$out/results.json" ] && continue
  python -m metarl.evaluate --env "$ENV" ${CHECKPOINT:+--checkpoint "$CHECKPOINT"} --task-set train \
    --tasks "$TASKS" --seed 2000 --steps 3 --episodes-per-step 20 --oracle-tasks 0 --random-seeds 0 --videos 0 $BASE $flags \
    --out "$out" > "$out.log" 2>&1
done <<'CANDIDATES'
own
holdout0.25 --holdout 0.25
holdout0.5 --holdout 0.5
decay0.5 --step-decay 0.5
holdout0.25_decay0.5 --holdout 0.25 --step-decay 0.5
kl2_holdout0.25 --target-kl 2.0 --holdout 0.25
linear --baseline linear
linear_decay0.5 --baseline linear --step-decay 0.5
linear_decay0.7 --baseline linear --step-decay 0.7
linear_kl2_decay0.5 --baseline linear --target-kl 2.0 --step-decay 0.5
linear_kl1.5_decay0.7 --baseline linear --target-kl 1.5 --step-decay 0.7
linear_lam1_decay0.5 --baseline linear --gae-lambda 1.0 --step-decay 0.5
linear_ep100_decay0.7 --baseline linear --step-decay 0.7 --episodes-per-step 100
linear_ep100_kl3_decay0.7 --baseline linear --target-kl 3.0 --step-decay 0.7 --episodes-per-step 100
linear_damp1_decay0.7 --baseline linear --step-decay 0.7 --cg-damping 1
linear_damp3_kl2_decay0.7 --baseline linear --target-kl 2.0 --step-decay 0.7 --cg-damping 3
linear_damp10 --baseline linear --cg-damping 10
linear_damp10_decay0.7 --baseline linear --step-decay 0.7 --cg-damping 10
linear_damp30_decay0.7 --baseline linear --step-decay 0.7 --cg-damping 30
linear_damp100_decay0.7 --baseline linear --step-decay 0.7 --cg-damping 100
linear_damp1000_decay0.7 --baseline linear --step-decay 0.7 --cg-damping 1000
linear_damp10_kl1.5_decay0.5 --baseline linear --target-kl 1.5 --step-decay 0.5 --cg-damping 10
linear_damp10_kl2_decay0.7 --baseline linear --target-kl 2.0 --step-decay 0.7 --cg-damping 10
linear_damp10_kl2_decay0.5 --baseline linear --target-kl 2.0 --step-decay 0.5 --cg-damping 10
linear_damp10_kl3_decay0.5 --baseline linear --target-kl 3.0 --step-decay 0.5 --cg-damping 10
linear_damp10_kl3_decay0.7 --baseline linear --target-kl 3.0 --step-decay 0.7 --cg-damping 10
linear_damp30_kl2_decay0.7 --baseline linear --target-kl 2.0 --step-decay 0.7 --cg-damping 30
value_damp10_kl2_decay0.7 --target-kl 2.0 --step-decay 0.7 --cg-damping 10
linear_damp10_kl2_decay0.7_holdout0.25 --baseline linear --target-kl 2.0 --step-decay 0.7 --cg-damping 10 --holdout 0.25
CANDIDATES
python scripts/compare_curves.py --against-first "${names[@]}"
