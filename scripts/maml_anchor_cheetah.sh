#!/usr/bin/env bash
# Issue 14 on a HalfCheetah family at a small budget (the 48 M-step presets of the time take ~2 h per MAML seed on this
# machine): ITERS iterations of 160k env steps for each meta-learner with its preset (Reptile: 10 tasks x 4
# batches x 20 episodes; MAML/FO-MAML: 40 tasks x 2 batches x 10 episodes), for each seed in SEEDS.
# MAML and FO-MAML keep a checkpoint every iteration, and FO-MAML (faster than Reptile per iteration) runs on
# to FO_ITERS, so that scripts/maml_anchor_eval.sh can also evaluate them at the iteration whose wall-clock
# matches Reptile's ITERS iterations (from benchmarks/maml.py's speed ratio). Evaluation: maml_anchor_eval.sh.
set -eu
cd "$(dirname "$0")/.."
ENV=${ENV:-HalfCheetahVel}
ITERS=${ITERS:-20}
FO_ITERS=${FO_ITERS:-36}
SEEDS=${SEEDS:-0 1 2}
mkdir -p runs/maml results/maml
# Reptile's preset at the time: PPO steps at meta-training, TRPO steps of KL 1.0 over the value net at meta-test
R="--agent ppo --adapt-target-kl 1.0 --adapt-baseline value --adapt-step-decay 1.0 --adapt-cg-damping 0.1"
train() {  # meta-learner, seed, iterations, extra flags... (a fresh Reptile run also takes R; a resumed one has it)
  local ml=$1 seed=$2 iters=$3; shift 3
  local run=runs/maml/${ENV}__${ml}__i${ITERS}__s${seed} fresh=""
  if [ "$ml" = reptile ]; then fresh=$R; fi
  if [ -f "$run/checkpoints/$(printf iter_%06d.pt "$iters")" ]; then
    return 0
  elif [ -f "$run/checkpoints/latest.pt" ]; then
    python -m metarl.train --resume "$run" --meta-iters "$iters" --quiet "$@" >> "$run.log" 2>&1
  else
    # shellcheck disable=SC2086
    python -m metarl.train --env "$ENV" --meta-learner "$ml" --meta-iters "$iters" --seed "$seed" \
      --eval-every 0 --eval-tasks 10 --quiet --run-dir "$run" $fresh "$@" > "$run.log" 2>&1
  fi
}
for seed in $SEEDS; do
  train reptile "$seed" "$ITERS"
  train maml "$seed" "$ITERS" --checkpoint-every 1
  train fomaml "$seed" "$FO_ITERS" --checkpoint-every 1
done
