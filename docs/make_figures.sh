#!/usr/bin/env bash
# Regenerate the README's figures (docs/inspect.png, docs/training-curves.png).
#   bash docs/make_figures.sh                      # bundled model, exp/commands training run
#   MODEL=m.safetensors RUN=exp/tiny TEXT="go left" VOICE=en-gb bash docs/make_figures.sh
# The inspected recording is synthesised with espeak-ng, so the figure needs no data set.
set -euo pipefail
cd "$(dirname "$0")/.."
ASR=${ASR:-.venv/bin/asr}
MODEL=${MODEL:-asr/assets/commands.safetensors}
RUN=${RUN:-exp/commands}
TEXT=${TEXT:-turn on the kitchen light}
VOICE=${VOICE:-en-us+f4}  # a test-pool voice: the bundled model never heard it
wav=$(mktemp --suffix .wav)
trap 'rm -f "$wav"' EXIT
espeak-ng -v "$VOICE" -w "$wav" "$TEXT"
"$ASR" inspect "$wav" --model "$MODEL" -o docs/inspect.png
"$ASR" plot-training "$RUN" -o docs/training-curves.png
