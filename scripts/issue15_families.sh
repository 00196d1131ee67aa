#!/usr/bin/env bash
# Issue 15: the meta-test method chosen on HalfCheetahVel's training draws (TRPO KL 1.0 steps over a linear baseline
# fitted on each batch, each step's trust region 0.7x the one before), applied unchanged to HalfCheetahDir and to a
# dynamics family (HopperRandParams): the shipped meta-policy and its multi-task baseline, both adapted with it, on
# the 40 held-out tasks (evaluation seed 1000, as the zoo's evaluations). Outputs under results/issue15/ (Hopper)
# and results/zoo/ (the two HalfCheetah families' shipped files now adapt with it: their zoo evaluations; the ones
# with the loop before are results/zoo/eval_HalfCheetah{Vel,Dir}__before_issue15/).
set -eu
cd "$(dirname "$0")/.."
L="--agent trpo --target-kl 1.0 --baseline linear --step-decay 0.7"
E="--random-seeds 1 --oracle-tasks 0 --videos 0 --seed 1000"
python -m metarl.evaluate --env HalfCheetahDir --checkpoint results/checkpoints/HalfCheetahDir__ppo__s0.pt \
  --multitask results/checkpoints/HalfCheetahDir__multitask16M__s0.pt $L $E --out results/zoo/eval_HalfCheetahDir
python -m metarl.evaluate --env HopperRandParams --checkpoint runs/zoo/HopperRandParams__reptile__s0 \
  --multitask runs/zoo/HopperRandParams__multitask__s0 $L $E --out results/issue15/eval_HopperRandParams
python -m metarl.evaluate --env HalfCheetahVel --checkpoint metarl/pretrained/HalfCheetahVel.pt \
  --multitask results/checkpoints/HalfCheetahVel__multitask__s0.pt $L $E --out results/zoo/eval_HalfCheetahVel
