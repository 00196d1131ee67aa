#!/usr/bin/env bash
# Issue 15: the meta-test method chosen on HalfCheetahVel's training draws (scripts/adapt_tune.sh: TRPO steps over a
# linear baseline fitted on each batch, a damping of 10 on the Fisher matrix, KL 2.0 halving at each step), applied
# unchanged to HalfCheetahDir and to a dynamics family (HopperRandParams): the shipped meta-policy and its multi-task
# baseline, both adapted with it, on the 40 held-out tasks (evaluation seed 1000, as the zoo's evaluations). The
# HalfCheetah meta-policies are the PPO preset's of 48M env steps (shipped until issue 15's third round, which made
# Reptile over this loop their preset: scripts/pretrain.sh, results/zoo/). Outputs under results/issue15/.
# The first round's loop (KL 1.0, x0.7 per step, TRPO's damping 0.1):
#   L="--agent trpo --target-kl 1.0 --baseline linear --step-decay 0.7 --cg-damping 0.1" SUFFIX=__linear_decay0.7 \
#     scripts/issue15_families.sh
# (the evaluations with the loop before issue 15 are results/zoo/eval_HalfCheetah{Vel,Dir}__before_issue15/).
set -eu
cd "$(dirname "$0")/.."
L=${L:-"--agent trpo --target-kl 2.0 --baseline linear --step-decay 0.5 --cg-damping 10"}
SUFFIX=${SUFFIX:-}
E="--random-seeds 1 --oracle-tasks 0 --videos 0 --seed 1000"
python -m metarl.evaluate --env HalfCheetahDir --checkpoint results/checkpoints/HalfCheetahDir__ppo__s0.pt \
  --multitask results/checkpoints/HalfCheetahDir__multitask16M__s0.pt $L $E --out results/issue15/eval_HalfCheetahDir$SUFFIX
python -m metarl.evaluate --env HopperRandParams --checkpoint runs/zoo/HopperRandParams__reptile__s0 \
  --multitask runs/zoo/HopperRandParams__multitask__s0 $L $E --out results/issue15/eval_HopperRandParams$SUFFIX
python -m metarl.evaluate --env HalfCheetahVel --checkpoint results/checkpoints/HalfCheetahVel__ppo__s0.pt \
  --multitask results/checkpoints/HalfCheetahVel__multitask__s0.pt $L $E --out results/issue15/eval_HalfCheetahVel$SUFFIX
