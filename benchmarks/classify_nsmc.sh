#!/usr/bin/env bash
# NSMC sentiment with MODEL: the classifier over static (Word2Vec), static+mix ([x_k; ELMo_k]) and mix (the
# biLM alone) word features, on all 150,000 training and 50,000 test rows; see docs/RESULTS.md, "NSMC classification".
#
#   benchmarks/classify_nsmc.sh MODEL OUT_DIR [FEATURES [THREADS]]
#   e.g. nohup nice -n 5 benchmarks/classify_nsmc.sh ko-nsmc-small ~/contextemb-runs/classify/ko-nsmc-small &
#
# Writes OUT_DIR/w2v.bin (+ .json; kept and reused if there) and, per FEATURES (TAG: FEATURES with "," and "+"
# as "_"), results.TAG.jsonl (one JSON object per feature kind, as each is done), classify.TAG.log (per-epoch dev
# accuracy, GNU time), machine.TAG.txt (CPU, load before and after). THREADS defaults to 1: on a shared CPU, two
# torch threads ran the classifier's steps 13x slower than one (measured, load 9 on 2 cores). EPOCHS (default 8)
# is the most epochs per feature kind, PATIENCE (default 1) the epochs without a better dev accuracy that stop it
# early; the best dev epoch is kept. LAYER_NORM=1 normalises each biLM layer before the mix (`--layer-norm`; TAG
# gains "_ln"). OUTPUT_MIX=1 adds ELMo at the classifier's output too (`--output-mix`; TAG gains "_om"). SEED
# (default 0) seeds the classifier and its dev split (`--seed`; TAG gains "_sSEED" when set). FINETUNE=1 trains
# the biLM's LSTMs with the classifier (`--finetune-bilm`, at BILM_LR, default 1e-4; TAG gains "_ft");
# FROZEN_EPOCHS=N (with FINETUNE=1) trains the classifier alone over the frozen biLM for the first N of EPOCHS
# (`--frozen-epochs`, gradual unfreezing; TAG gains "_fzN"); BATCH_SIZE
# (default 64) is the texts per step. SAVE=DIR keeps each trained classifier in DIR/KIND (`--save`; for
# `contextemb predict`).
# The body is one { ... exit; } block: bash reads it whole before running it, so editing or checking out this
# file while it runs cannot change what the running copy does (an in-place edit once cost a classify run).
set -euo pipefail
{
model=${1:?usage: $0 MODEL OUT_DIR [FEATURES]}
out=${2:?usage: $0 MODEL OUT_DIR [FEATURES]}
features=${3:-static,static+mix,mix}
threads=${4:-1}
tag=$(echo "$features" | tr ',+' '__')${LAYER_NORM:+_ln}${OUTPUT_MIX:+_om}${FINETUNE:+_ft}${FROZEN_EPOCHS:+_fz$FROZEN_EPOCHS}${SEED:+_s$SEED}
data=${NSMC_DIR:-../shared/data/nsmc}
contextemb=${CONTEXTEMB:-.venv/bin/contextemb}
mkdir -p "$out"
{
    echo "$(date -u +%FT%TZ) commit $(git rev-parse --short HEAD 2>/dev/null || echo '?') model $model" \
        "features $features epochs ${EPOCHS:-8} patience ${PATIENCE:-1} layer_norm ${LAYER_NORM:-0}" \
        "output_mix ${OUTPUT_MIX:-0} finetune ${FINETUNE:-0} bilm_lr ${BILM_LR:-1e-4} frozen_epochs ${FROZEN_EPOCHS:-0} batch_size ${BATCH_SIZE:-64}" \
        "seed ${SEED:-0} save ${SAVE:--}"
    grep -m1 'model name' /proc/cpuinfo
    echo "cores $(nproc); before: $(uptime)"
} > "$out/machine.$tag.txt"
# Word2Vec over MODEL's own pieces: a file trained with another model's tokenizer is refused
if [ ! -f "$out/w2v.bin" ]; then
    /usr/bin/time -v "$contextemb" word2vec "$data/corpus.txt" --out "$out/w2v.bin" --model "$model" 2> "$out/w2v.log"
fi
/usr/bin/time -v "$contextemb" classify "$model" --train "$data/ratings_train.tsv" --test "$data/ratings_test.tsv" \
    --w2v "$out/w2v.bin" --features "$features" --epochs "${EPOCHS:-8}" --patience "${PATIENCE:-1}" \
    ${LAYER_NORM:+--layer-norm} ${OUTPUT_MIX:+--output-mix} ${FINETUNE:+--finetune-bilm --bilm-lr "${BILM_LR:-1e-4}"} \
    ${FROZEN_EPOCHS:+--frozen-epochs "$FROZEN_EPOCHS"} \
    --batch-size "${BATCH_SIZE:-64}" --seed "${SEED:-0}" ${SAVE:+--save "$SAVE"} \
    --json --no-progress --threads "$threads" \
    > "$out/results.$tag.jsonl" 2> "$out/classify.$tag.log"
echo "after: $(uptime)" >> "$out/machine.$tag.txt"
exit
}
