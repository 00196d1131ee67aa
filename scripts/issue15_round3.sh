#!/usr/bin/env bash
# Issue 15, third round: Reptile over the second round's damped TRPO loop at meta-training as well (LOOP: TRPO steps of
# mean KL 2.0 halving at each step, over a linear baseline fitted on each batch, Fisher damping 10), chosen on
# HalfCheetahVel (scripts/train_screen.sh's trpo_damp10, seeds 0-2 held-out in scripts/ablation.sh), applied unchanged
# to HalfCheetahDir (100 iterations = 16 M env steps, the HalfCheetahVel budget) and to HopperRandParams (its preset's
# 40 iterations), seed 0, one run after the other on all cores (runs under runs/screen15/). Then, on 40 draws from
# the *training* distribution (evaluation seed 2000; the decision to make it a family's preset is taken here, never on
# the held-out tasks), each new run against the meta-policy it would replace and the family's multi-task baseline:
#   HalfCheetahDir: the PPO preset's 48 M-step meta-policy (shipped until this round), adapted with LOOP;
#   HopperRandParams: its PPO preset's meta-policy (shipped), adapted with its PPO steps and with LOOP;
# outputs and tables (scripts/compare_curves.py, paired over the first row) under results/issue15/round3/.
#   scripts/issue15_round3.sh
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/screen15}
RES=${RES:-results/issue15/round3}
LOOP="--agent trpo --target-kl 2.0 --baseline linear --step-decay 0.5 --cg-damping 10"
mkdir -p "$OUT" "$RES"
train() {  # NAME FLAGS...: one meta-training run, resumed if it was stopped
  local name=$1; shift
  [ -f "$OUT/$name.done" ] && return 0
  if [ -f "$OUT/$name/checkpoints/latest.pt" ]; then
    python -m metarl.train --resume "$OUT/$name" --quiet >> "$OUT/$name.log" 2>&1
  else
    rm -rf "${OUT:?}/$name"
    python -m metarl.train "$@" --run-dir "$OUT/$name" > "$OUT/$name.log" 2>&1
  fi
  touch "$OUT/$name.done"
}
evaluate() {  # NAME ENV CHECKPOINT MULTITASK LOOP...: adapt to the training draws, once
  local name=$1 env=$2 ckpt=$3 mt=$4; shift 4
  [ -f "$RES/$name/results.json" ] && return 0
  python -m metarl.evaluate --env "$env" --checkpoint "$ckpt" --multitask "$mt" --task-set train --tasks 40 \
    --seed 2000 --steps 3 --episodes-per-step 20 --oracle-tasks 0 --random-seeds 0 --videos 0 "$@" \
    --out "$RES/$name" > "$RES/$name.log" 2>&1
}
# shellcheck disable=SC2086
train dir_trpo_damp10 --env HalfCheetahDir --meta-iters 100 --seed 0 --eval-every 0 --video-every 0 --quiet $LOOP
# shellcheck disable=SC2086
train hopper_trpo_damp10 --env HopperRandParams --meta-iters 40 --seed 0 --eval-every 0 --eval-tasks 10 \
  --video-every 0 --quiet $LOOP
DIR_MT=results/checkpoints/HalfCheetahDir__multitask16M__s0.pt
HOP_MT=results/checkpoints/HopperRandParams__multitask__s0.pt  # scripts/pretrain.sh's runs/zoo/..., latest.pt
HOP=results/checkpoints/HopperRandParams__ppo__s0.pt  # the shipped one's run (same θ)
# shellcheck disable=SC2086
{
  evaluate dir_ppo48M HalfCheetahDir results/checkpoints/HalfCheetahDir__ppo__s0.pt $DIR_MT $LOOP
  evaluate dir_trpo_damp10 HalfCheetahDir "$OUT/dir_trpo_damp10" $DIR_MT $LOOP
  evaluate hopper_ppo__ppo HopperRandParams $HOP $HOP_MT --agent ppo
  evaluate hopper_ppo HopperRandParams $HOP $HOP_MT $LOOP
  evaluate hopper_trpo_damp10 HopperRandParams "$OUT/hopper_trpo_damp10" $HOP_MT $LOOP
}
python scripts/compare_curves.py --against-first "$RES"/dir_{ppo48M,trpo_damp10}/results.json | tee "$RES/dir.md"
python scripts/compare_curves.py --against-first "$RES"/hopper_{ppo__ppo,ppo,trpo_damp10}/results.json \
  | tee "$RES/hopper.md"
# Held-out (the 40 fixed tasks, evaluation seed 1000, as scripts/pretrain.sh evaluates the zoo), once, after the
# decision above: HalfCheetahVel (scripts/train_screen.sh's trpo_damp10) and HalfCheetahDir became their presets'
# shipped files (these are their zoo evaluations, against the 16 M-step multi-task baselines); HopperRandParams kept
# its PPO preset (its steps left 13 of 40 training draws worse) and is evaluated for the record. Each run's
# checkpoints/latest.pt is committed under results/checkpoints/.
H="--random-seeds 1 --oracle-tasks 0 --videos 0 --seed 1000"
heldout() {  # ENV CHECKPOINT MULTITASK OUT
  [ -f "$4/results.json" ] && return 0
  # shellcheck disable=SC2086
  python -m metarl.evaluate --env "$1" --checkpoint "$2" --multitask "$3" $LOOP $H --out "$4" > "$4.log" 2>&1
  cp "$4.log" "$4/stdout.txt"
}
heldout HalfCheetahVel results/checkpoints/HalfCheetahVel__trpo_damp10_16M__s0.pt \
  results/checkpoints/HalfCheetahVel__multitask__s0__iter200.pt results/zoo/eval_HalfCheetahVel
heldout HalfCheetahDir results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s0.pt $DIR_MT results/zoo/eval_HalfCheetahDir
heldout HopperRandParams results/checkpoints/HopperRandParams__trpo_damp10__s0.pt $HOP_MT "$RES/heldout_hopper_trpo_damp10"
# HalfCheetahVel's decision (its runs: scripts/adapt_tune.sh, scripts/train_screen.sh): the file shipped before (48 M,
# PPO) and Reptile over the loop (16 M), both adapted with LOOP on the same training draws
python scripts/compare_curves.py --against-first results/adapt_tune/HalfCheetahVel__linear_damp10_kl2_decay0.5/results.json \
  results/train_screen/trpo_damp10__damp10/results.json | tee "$RES/vel.md"
# HalfCheetahDir, seeds 1 and 2 by the same command, then the three seeds held-out against the same baseline
for s in 1 2; do
  # shellcheck disable=SC2086
  train dir_trpo_damp10__s$s --env HalfCheetahDir --meta-iters 100 --seed $s --eval-every 0 --video-every 0 --quiet $LOOP
  [ -f results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s$s.pt ] \
    || cp "$OUT/dir_trpo_damp10__s$s/checkpoints/latest.pt" results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s$s.pt
done
if [ ! -f "$RES/heldout_dir_trpo_damp10__s012/results.json" ]; then
  # shellcheck disable=SC2086
  python -m metarl.evaluate --env HalfCheetahDir --checkpoint results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s0.pt \
    --checkpoint results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s1.pt \
    --checkpoint results/checkpoints/HalfCheetahDir__trpo_damp10_16M__s2.pt --multitask $DIR_MT $LOOP \
    --random-seeds 0 --oracle-tasks 0 --videos 0 --seed 1000 --out "$RES/heldout_dir_trpo_damp10__s012" \
    > "$RES/heldout_dir_trpo_damp10__s012.log" 2>&1
fi
