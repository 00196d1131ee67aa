#!/usr/bin/env bash
# The README's pictures, regenerated (results/README.md lists them):
#   docs/img/adapt_HalfCheetahVel.gif  the shipped HalfCheetahVel meta-policy before and after adapting to a slow and
#                                      a fast target (scripts/adaptation_gif.py)
#   docs/img/tensorboard.png           TensorBoard's custom-scalars tab of a real run: the shipped meta-policy trained
#                                      20 more meta-iterations with a held-out evaluation (and its video) every 5,
#                                      served by a local `tensorboard` and captured by headless Chromium
#                                      (Debian: apt-get install chromium)
# The adaptation curves the README shows are
# results/eval_abl/trpo_damp10_16M__s012__test_trpo_kl2_linear_decay0.5_damp10/curves.png, written by
# python -m metarl.evaluate (its command is in scripts/ablation.sh).
# SKIP_GIF=1 keeps the GIF; SKIP_RUN=1 screenshots the run already in $RUN (default runs/tensorboard_demo).
set -euo pipefail
cd "$(dirname "$0")/.."
[ "${SKIP_GIF:-0}" = 1 ] || python scripts/adaptation_gif.py docs/img/adapt_HalfCheetahVel.gif

RUN=${RUN:-runs/tensorboard_demo}
[ "${SKIP_RUN:-0}" = 1 ] || rm -rf "$RUN"
[ "${SKIP_RUN:-0}" = 1 ] || python -c '
import sys

import metarl
from metarl.checkpoint import load_checkpoint
from metarl.policy import pretrained_path

path = pretrained_path("HalfCheetahVel")
done = load_checkpoint(path)["iteration"]  # the iterations of the shipped run, then 20 more
model = metarl.Reptile.load(path, run_dir=sys.argv[1], meta_iters=done + 20, eval_every=5, video_every=1)
model.learn(progress_bar=False)
model.close()
' "$RUN"
PORT=${PORT:-6016}
tensorboard --logdir "$RUN" --host localhost --port "$PORT" >/dev/null 2>&1 &
TB=$!
trap 'kill $TB' EXIT
for _ in $(seq 60); do curl -sf "http://localhost:$PORT" >/dev/null && break; sleep 1; done
curl -sf "http://localhost:$PORT" >/dev/null || { echo "tensorboard did not start on port $PORT" >&2; exit 1; }
chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1280,720 \
  --virtual-time-budget=30000 --screenshot=docs/img/tensorboard.png "http://localhost:$PORT/#custom_scalars"
ls -l docs/img/adapt_HalfCheetahVel.gif docs/img/tensorboard.png
