#!/usr/bin/env bash
# The meta-training runs behind the shipped pretrained meta-policies and the README's evaluation
# table, run one after another (each uses all cores). Logs go next to the runs under runs/pretrain/.
# Seed 0 of HalfCheetahVel is runs/HalfCheetahVel__ppo__s0__foundation, started with
#   python -m metarl.train --env HalfCheetahVel --seed 0 --run-dir runs/HalfCheetahVel__ppo__s0__foundation
# It was stopped with SIGINT after iteration 119 and continued with --resume by the code of that moment,
# which evaluates the value head's last layer with multiply-and-sum instead of a one-column bmm (commit
# c407ca9; same maths, different last-bit rounding): iterations 1-119 ran on commit 7086e42, 120-300 on
# the later tree, so this one run is not bit-reproducible from a single commit. Seeds 1 and 2 are.
#
# These are PPO-inner-loop runs (the preset's meta-training): 300 iterations, 48M env steps each. The shipped
# meta-policies are two of them, seed 0 of each family (runs/HalfCheetahVel__ppo__s0__foundation and
# runs/pretrain/HalfCheetahDir__ppo__s0), shipped with
#   python scripts/ship_pretrained.py RUN_DIR --adapt-agent trpo --adapt-target-kl 1.0
# which keeps their θ and sets the meta-test inner loop (the provenance inside each .pt says so). The commands
# pin --agent ppo and the preset's values explicitly.
set -u
cd "$(dirname "$0")/.."
mkdir -p runs/pretrain
run() {  # name, args...
  local name=$1; shift
  if [ -f "runs/pretrain/$name/checkpoints/latest.pt" ] && [ ! -f "runs/pretrain/$name.done" ]; then
    python -m metarl.train --resume "runs/pretrain/$name" --quiet >> "runs/pretrain/$name.log" 2>&1
  elif [ ! -f "runs/pretrain/$name.done" ]; then
    python -m metarl.train "$@" --run-dir "runs/pretrain/$name" --quiet > "runs/pretrain/$name.log" 2>&1
  fi && touch "runs/pretrain/$name.done"
}
if [ ! -f runs/pretrain/foundation.done ]; then
  python -m metarl.train --resume runs/HalfCheetahVel__ppo__s0__foundation --quiet >> runs/foundation_s0.log 2>&1 \
    && touch runs/pretrain/foundation.done
fi
run HalfCheetahDir__ppo__s0 --env HalfCheetahDir --seed 0 --eval-every 50 --agent ppo --meta-iters 300 --inner-lr 0.003
# Multi-task baseline, same env-step budget as 300 Reptile iterations with K=3 (4 batches per task
# per iteration): Reptile with K=1 and eps=1 averages one PPO update per task and never adapts.
run HalfCheetahVel__multitask__s0 --env HalfCheetahVel --seed 0 --agent ppo --inner-lr 0.003 --inner-steps 1 --meta-step 1 --meta-step-final 1 \
  --meta-iters 600 --eval-every 100
run HalfCheetahVel__ppo__s1 --env HalfCheetahVel --seed 1 --eval-every 50 --agent ppo --meta-iters 300 --inner-lr 0.003
run HalfCheetahVel__ppo__s2 --env HalfCheetahVel --seed 2 --eval-every 50 --agent ppo --meta-iters 300 --inner-lr 0.003
