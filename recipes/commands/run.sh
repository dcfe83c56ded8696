#!/usr/bin/env bash
# The commands recipe end to end: corpora, training, evaluation, transcription of examples.
#
#   bash recipes/commands/run.sh            # quick (about 6 min on 2 CPU cores): a fresh corpus of
#                                           # 3,000 synthetic utterances, then the bundled model
#                                           # fine-tuned on it for 2 epochs
#   FULL=1 bash recipes/commands/run.sh     # a model from scratch: 12,000 utterances,
#                                           # recipes/commands/config.yaml, 8 epochs on a CPU
#                                           # (about 40 min on 2 cores), 24 on a GPU (about 22 s
#                                           # an epoch on an H200 with 16 cores; EPOCHS=N
#                                           # to choose; with another N, use a new EXP: a run
#                                           # resumes its last.ckpt; WORKERS=N loader
#                                           # workers, by default 2 on a CPU and all cores
#                                           # but two, at most 12, on a GPU); the bundled
#                                           # model's stages are in README.md
#
# Both evaluate the model they train and the bundled model on the same test splits.
# Idempotent: finished corpora are reused; a killed training resumes from its last.ckpt.
set -euo pipefail
cd "$(dirname "$0")/../.."
# On a 2-core machine the trainer and its data workers share the cores: OpenMP threads that
# spin while they wait for work slow everyone down (see benchmarks/README.md).
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}

BUNDLED=asr/assets/commands.safetensors
ASR=.venv/bin/asr
PY=.venv/bin/python
if [ "${FULL:-0}" = 1 ]; then
  NUM_TRAIN=${NUM_TRAIN:-12000}; NUM_EVAL=600; EXP=${EXP:-exp/commands}; SEED=0
  DATA=${DATA:-data/commands}
  # A 2-core CPU needs about 4.5 minutes per epoch: config.yaml's 24 would be cut halfway
  # through their learning-rate schedule by its 80-minute max_time, 8 take 36 minutes.
  # An H200 took 14 batches a second (22 s an epoch) with 12 loader workers, bound by the
  # step's host work (since then the workers do the waveform augmentation): config.yaml's 2,
  # at 0.1 s of CPU per batch each for reading alone, would not keep up with a faster step.
  GPU=$($PY -c 'import torch; print(int(torch.cuda.is_available()))')
  if [ "$GPU" = 1 ]; then
    cores=$(nproc)
    EPOCHS=${EPOCHS:-24}; WORKERS=${WORKERS:-$(( cores > 14 ? 12 : (cores > 4 ? cores - 2 : 2) ))}
  else
    EPOCHS=${EPOCHS:-8}; WORKERS=${WORKERS:-2}
  fi
  TRAIN_ARGS=(--trainer.max_epochs "$EPOCHS" --data.num_workers "$WORKERS")
else
  # From scratch, a BiLSTM-CTC needs about an hour of this CPU to spell well (see README.md);
  # the quick run fine-tunes the bundled model instead, at a lower learning rate.
  # Seed 1: utterances (texts, voices from the training pool, augmentation) the bundled
  # model has not seen; the test voices stay held out.
  NUM_TRAIN=${NUM_TRAIN:-3000}; NUM_EVAL=300; EXP=${EXP:-exp/commands_quick}; SEED=1
  DATA=${DATA:-data/commands_quick}
  TRAIN_ARGS=(--model.init_from "$BUNDLED" --trainer.max_epochs "${EPOCHS:-2}"
              --model.lr 0.0005 --model.warmup_steps 20 --trainer.max_time 00:00:20:00)
fi
start=$(date +%s)

echo "== 1/5 corpora: FSDD (real speech) and synthetic commands ($NUM_TRAIN training utterances)"
$PY recipes/fsdd/prepare.py
$PY recipes/commands/prepare.py --num-train "$NUM_TRAIN" --num-dev "$NUM_EVAL" \
  --num-test "$NUM_EVAL" --seed "$SEED" --out "$DATA"

echo "== 2/5 training -> $EXP/model.safetensors"
$ASR fit --config recipes/commands/config.yaml --trainer.default_root_dir "$EXP" \
  --data.train_manifest "[$DATA/train.jsonl, data/fsdd/train.jsonl]" \
  --data.val_manifest "[$DATA/dev.jsonl, data/fsdd/dev.jsonl]" --data.test_manifest "$DATA/test.jsonl" \
  --export "$EXP/model.safetensors" "${TRAIN_ARGS[@]}"

echo "== 3/5 decoding: the grammar's words and a 3-gram LM of the training texts go into the model"
$ASR build-lm "$DATA/train.jsonl" -o "$EXP/lm.arpa"
$ASR set-decoding "$EXP/model.safetensors" --lexicon "$DATA/words.txt" --lm "$EXP/lm.arpa" \
  --lm-weight 0.5 --word-score 1.0

echo "== 4/5 evaluation (greedy, and the model's own lexicon + LM beam search) of this model and the bundled one"
declare -A SPLITS=(
  [commands_test_unseen_voices]=$DATA/test.jsonl
  [fsdd_test_unseen_speaker]=data/fsdd/test.jsonl
  [commands_dev]=$DATA/dev.jsonl
  [fsdd_dev]=data/fsdd/dev.jsonl
)
table="| model | split | greedy WER | lexicon + LM beam WER (default) |\n| --- | --- | --- | --- |"
models=("$EXP/model.safetensors")
models+=("$BUNDLED")
for model in "${models[@]}"; do
  for split in commands_test_unseen_voices fsdd_test_unseen_speaker commands_dev fsdd_dev; do
    out="$EXP/eval/$(basename "$model" .safetensors)/$split"
    # `|| true`: an unreadable file makes asr evaluate exit 1 (it says so on stderr and
    # scores the file as empty); the table still gets its figures.
    greedy=$($ASR evaluate "${SPLITS[$split]}" --model "$model" --out-dir "$out/greedy" \
      --greedy --quiet | sed -n 1p) || true
    beam=$($ASR evaluate "${SPLITS[$split]}" --model "$model" --out-dir "$out/default" \
      --quiet | sed -n 1p) || true
    echo "$model $split: greedy $greedy | beam $beam"
    table+="\n| $model | $split | ${greedy#WER } | ${beam#WER } |"
  done
done

echo "== 5/5 transcribing a few unseen examples (two synthetic test voices, one FSDD test speaker)"
examples=$($PY -c 'from asr.manifest import read_manifest as r
print(*[x["audio"] for x in r("'"$DATA"'/test.jsonl")[:2] + r("data/fsdd/test.jsonl")[:1]])')
# shellcheck disable=SC2086  # the paths have no spaces: they are made by the prepare scripts
$ASR transcribe --model "$EXP/model.safetensors" $examples
echo "(the bundled model:)"
# shellcheck disable=SC2086
$ASR transcribe $examples

echo
echo "Results (WER [errors / words, ins, del, sub]); recogs/errs/analysis under $EXP/eval/"
echo -e "$table"
echo "total time: $(( $(date +%s) - start )) s"
