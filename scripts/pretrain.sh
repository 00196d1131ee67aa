#!/usr/bin/env bash
# The pretrained zoo (issue 18), from a clean checkout: for each family, a Reptile meta-training run of the
# family's preset (its meta_iters is the stated budget), the multi-task baseline at the same env-step budget
# (K = 1, ε = 1: θ becomes the mean of one PPO update per task, so every batch trains and none adapts; K + 1
# batches per task per iteration, so 2x the iterations of K = 3), the held-out evaluation against both and a
# random initialisation, and the shipped file:
#
#   scripts/pretrain.sh [FAMILY ...]        # default: every family below; one after another, each on all cores
#
# Runs go under OUT (default runs/zoo); nothing else in runs/ is read. A family whose runs finished
# is skipped (delete OUT/FAMILY* to redo it); an interrupted run resumes bit-exactly. Evaluations are written to
# results/zoo/eval_FAMILY/ (redone when the run is newer) and the shipped file to metarl/pretrained/FAMILY.pt
# (with the provenance inside).
# The HalfCheetah families' presets (issue 15: Reptile over damped TRPO steps, 100 iterations, ~18 min each here)
# are newer than the other families' runs; the multi-task baselines train by PPO steps (--agent ppo) in every family.
#
# Navigation2D ships MAML's meta-policy (--meta-learner maml, MAML's preset at the family's budget): issue 14's
# anchor measured MAML ahead of Reptile there at equal env steps, and Reptile's zoo run did not adapt
# (results/zoo/eval_Navigation2D__reptile/). Every policy of a family's evaluation, baselines included, adapts
# with the shipped meta-policy's meta-test inner loop.
set -eu
trap 'echo "pretrain.sh: failed at line $LINENO; see $OUT/*.log and results/zoo/*.log" >&2' ERR
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/zoo}
SEED=${SEED:-0}
mkdir -p "$OUT" results/zoo

train() {  # run name, flags...
  local name=$1; shift
  if [ -f "$OUT/$name.done" ]; then return; fi
  if [ -f "$OUT/$name/checkpoints/latest.pt" ]; then
    python -m metarl.train --resume "$OUT/$name" --quiet >> "$OUT/$name.log" 2>&1
  else
    rm -rf "${OUT:?}/$name"  # stopped before its first checkpoint: nothing to resume
    python -m metarl.train "$@" --run-dir "$OUT/$name" --quiet > "$OUT/$name.log" 2>&1
  fi
  touch "$OUT/$name.done"
}

learner() {  # the family's meta-learner
  case $1 in Navigation2D) echo maml ;; *) echo reptile ;; esac
}

family() {  # family name
  local env=$1
  local ml iters run adapt
  ml=$(learner "$env")
  iters=$(python -c "from metarl.config import preset; print(preset('$env')['meta_iters'])")
  run="${env}__${ml}__s$SEED"
  local common=(--env "$env" --seed "$SEED" --eval-every 0 --eval-tasks 10 --video-every 0)
  train "$run" "${common[@]}" --meta-learner "$ml" --meta-iters "$iters"
  # K + 1 = 4 batches per task and iteration at the presets' K = 3 (MAML's preset: 2 batches of 40 tasks x 10
  # episodes, the same env steps), 2 at K = 1: twice the iterations spend the same env steps.
  train "${env}__multitask__s$SEED" "${common[@]}" --agent ppo --inner-steps 1 --meta-step 1 --meta-step-final 1 \
    --meta-iters $((2 * iters))
  # The meta-test inner loop of the shipped policy, for all (the baseline's own is the training one, PPO).
  adapt=$(python - "$OUT/$run" <<'PY'
import sys
from metarl.cli import INNER_LOOP_OVERRIDES
from metarl.policy import MetaPolicy
a = MetaPolicy.load(sys.argv[1]).config.adapt
used = [n for n in INNER_LOOP_OVERRIDES if n != "agent" and a.uses(n)]  # the flags it reads, no others
print(f"--agent {a.agent} " + " ".join(f"--{n.replace('_', '-')} {getattr(a, n)}" for n in used))
PY
)
  local res="results/zoo/eval_$env/results.json"
  if [ "$OUT/$run.done" -nt "$res" ] || [ "$OUT/${env}__multitask__s$SEED.done" -nt "$res" ]; then  # missing or stale
    rm -rf "results/zoo/eval_$env"
    # shellcheck disable=SC2086
    python -m metarl.evaluate --env "$env" --checkpoint "$OUT/$run" --multitask "$OUT/${env}__multitask__s$SEED" \
      $adapt --random-seeds 1 --oracle-tasks 0 --videos 0 --seed 1000 --out "results/zoo/eval_$env" \
      > "results/zoo/eval_$env.log" 2>&1
    cp "results/zoo/eval_$env.log" "results/zoo/eval_$env/stdout.txt"
  fi
  python scripts/ship_pretrained.py "$OUT/$run" --eval "results/zoo/eval_$env/results.json" \
    --multitask "$OUT/${env}__multitask__s$SEED"
}

FAMILIES=("$@")
if [ ${#FAMILIES[@]} -eq 0 ]; then
  FAMILIES=(Navigation2D PendulumRandParams HopperRandParams Walker2dRandParams AntDir AntGoal AntDirAngle
    HalfCheetahVel HalfCheetahDir)
fi
for env in "${FAMILIES[@]}"; do
  family "$env"
done
