#!/usr/bin/env bash
# Issue 14's table for one HalfCheetah family, after scripts/maml_anchor_cheetah.sh trained the runs:
# metarl.evaluate on the family's 40 held-out tasks (k = 0..3, 20 episodes per step, evaluation seed 1000), every
# seed's checkpoint of a meta-learner in one call, with the meta-test inner loop each was trained for,
#  - at equal env steps: every meta-learner's checkpoint after ITERS iterations;
#  - at equal wall-clock: MAML and FO-MAML after the iterations that take Reptile's ITERS iterations' time,
#    MAML_TIME_ITERS / FOMAML_TIME_ITERS = ITERS x their env-steps-per-second ratio to Reptile measured in one
#    interleaved run (python benchmarks/maml.py --env ENV --repeats 3 --reptile-agent ppo > results/maml/speed_ENV.txt; HalfCheetahVel:
#    0.62 and 1.48, so 12 and 29). The training runs' own iteration times are no guide: the shared machine's
#    load changed between them by 2-3x.
# then the paired margins (scripts/compare_curves.py).
set -eu
cd "$(dirname "$0")/.."
ENV=${ENV:-HalfCheetahVel}
ITERS=${ITERS:-20}
SEEDS=${SEEDS:-0 1 2}
EXTRA=${EXTRA:-}          # e.g. "--agent trpo --target-kl 1.0" to evaluate every policy with one inner loop
TAG=${TAG:-}              # suffix of the output folders for EXTRA
MLS=${MLS:-reptile maml fomaml}  # the meta-learners to evaluate
checkpoint() {  # meta-learner, seed, iteration: that iteration's checkpoint of the ITERS run, or of a shorter
  local file=$(printf iter_%06d.pt "$3")  # run of the same seed (training is deterministic: the same parameters)
  for run in "runs/maml/${ENV}__$1__i${ITERS}__s$2" "runs/maml/${ENV}__$1__i$3__s$2"; do
    [ -f "$run/checkpoints/$file" ] && { echo --checkpoint "$run/checkpoints/$file"; return 0; }
  done
  echo "maml_anchor_eval: no $file for $1 seed $2" >&2; return 1
}
evaluate() {  # output name, checkpoint iteration, meta-learner
  local out=results/maml/eval_${ENV}__$1$TAG it=$2 ml=$3
  [ -f "$out/results.json" ] && return 0
  local ckpts="" s
  for s in $SEEDS; do ckpts="$ckpts $(checkpoint "$ml" "$s" "$it")" || return 1; done
  python -m metarl.evaluate --env "$ENV" --steps 3 --episodes-per-step 20 --seed 1000 --oracle-tasks 0 \
    --random-seeds 0 --videos 0 $EXTRA $ckpts \
    --out "$out" > "$out.log" 2>&1
}
for ml in $MLS; do
  evaluate "${ml}__i${ITERS}" "$ITERS" "$ml"
done
if [ -n "${MAML_TIME_ITERS:-}" ]; then
  evaluate "maml__time_of_reptile_i${ITERS}" "$MAML_TIME_ITERS" maml
  evaluate "fomaml__time_of_reptile_i${ITERS}" "$FOMAML_TIME_ITERS" fomaml
fi
[ -n "$TAG" ] && exit 0  # the tagged results are compared by hand with the untagged ones (docs/maml.md)
python scripts/compare_curves.py results/maml/eval_${ENV}__{reptile,maml,fomaml}__i${ITERS}/results.json
if [ -n "${MAML_TIME_ITERS:-}" ]; then
  python scripts/compare_curves.py results/maml/eval_${ENV}__reptile__i${ITERS}$TAG/results.json \
    results/maml/eval_${ENV}__{maml,fomaml}__time_of_reptile_i${ITERS}$TAG/results.json
fi
