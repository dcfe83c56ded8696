#!/usr/bin/env bash
# The commands recipe end to end: corpora, training, evaluation, transcription of examples.
#
#   bash recipes/commands/run.sh            # quick: ~3,000 synthetic utterances, 20 epochs
#   FULL=1 bash recipes/commands/run.sh     # the bundled model's settings (12,000 utts, 15 epochs)
#
# Idempotent: finished corpora are reused. Needs `bash setup.sh` first (run.sh does it).
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "${FULL:-0}" = 1 ]; then
  NUM_TRAIN=${NUM_TRAIN:-12000}; EPOCHS=${EPOCHS:-15}; EXP=${EXP:-exp/commands}
else
  NUM_TRAIN=${NUM_TRAIN:-3000}; EPOCHS=${EPOCHS:-20}; EXP=${EXP:-exp/commands_quick}
fi
ASR=.venv/bin/asr
PY=.venv/bin/python
start=$(date +%s)

echo "== 1/4 corpora: FSDD (real speech) and synthetic commands ($NUM_TRAIN training utterances)"
$PY recipes/fsdd/prepare.py
$PY recipes/commands/prepare.py --num-train "$NUM_TRAIN" --num-dev 600 --num-test 600 \
  --seed 0 --out data/commands

echo "== 2/4 training ($EPOCHS epochs) -> $EXP/model.safetensors"
$ASR fit --config recipes/commands/config.yaml --trainer.max_epochs "$EPOCHS" \
  --trainer.default_root_dir "$EXP" --export "$EXP/model.safetensors"

echo "== 3/4 evaluation (greedy and lexicon beam search)"
declare -A SPLITS=(
  [commands_test_unseen_voices]=data/commands/test.jsonl
  [commands_dev]=data/commands/dev.jsonl
  [fsdd_test_unseen_speaker]=data/fsdd/test.jsonl
  [fsdd_dev]=data/fsdd/dev.jsonl
)
table="| model | split | greedy WER | lexicon beam WER |\n| --- | --- | --- | --- |"
models=("$EXP/model.safetensors")
[ -f asr/assets/commands.safetensors ] && models+=(asr/assets/commands.safetensors)
for model in "${models[@]}"; do
  for split in commands_test_unseen_voices commands_dev fsdd_test_unseen_speaker fsdd_dev; do
    out="$EXP/eval/$(basename "$model" .safetensors)/$split"
    greedy=$($ASR evaluate "${SPLITS[$split]}" --model "$model" --out-dir "$out/greedy" | head -1)
    beam=$($ASR evaluate "${SPLITS[$split]}" --model "$model" --out-dir "$out/beam" \
      --beam-size 32 --lexicon data/commands/words.txt | head -1)
    echo "$model $split: greedy $greedy | beam $beam"
    table+="\n| $model | $split | ${greedy#WER } | ${beam#WER } |"
  done
done

echo "== 4/4 transcribing a few unseen examples (two synthetic test voices, one FSDD test speaker)"
examples=$($PY -c 'from asr.manifest import read_manifest as r
print(*[x["audio"] for x in r("data/commands/test.jsonl")[:2] + r("data/fsdd/test.jsonl")[:1]])')
# shellcheck disable=SC2086  # the paths have no spaces: they are made by the prepare scripts
$ASR transcribe --model "$EXP/model.safetensors" $examples

echo
echo "Results (WER [errors / words, ins, del, sub]); recogs/errs under $EXP/eval/"
echo -e "$table"
echo "total time: $(( $(date +%s) - start )) s"
