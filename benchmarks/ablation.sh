#!/usr/bin/env bash
# Choose the pretraining configuration by measurement (issue 12 part 4): every candidate trains both directions
# for the same number of steps of 2,048 pieces (the same text budget; the learning rate decays over them), then
# is scored the same way; pieces/s is recorded beside, so that the budget can be read as time too.
# Results: docs/ABLATION.md.
#
#   bash benchmarks/ablation.sh RUN_DIR [STEPS [CANDIDATE...]]      (from the repository root)
#   e.g. nohup nice -n 5 bash benchmarks/ablation.sh ~/contextemb-runs/ablation 500 > ablation.log 2>&1 &
#
# Candidates (default: all, in this order):
#   base      char-CNN, 2 x LSTM 512/256, 8k pieces, NSMC corpus.txt (weight 2) + ko-open   (the default config)
#   subword   subword-embedding input instead of the char-CNN                                (base's pieces)
#   vocab16k  16k pieces (its own tokenizer, trained on the same mixture)
#   small     2 x LSTM 256/128                                                               (base's pieces)
#   wide      2 x LSTM 1024/256                                                              (base's pieces)
#   nsmc      NSMC corpus.txt alone                                        (ko-nsmc-small's NSMC-trained pieces)
#   subword16k   subword input, 16k pieces                                               (vocab16k's pieces)
#   subwordwide  subword input, 2 x LSTM 1024/256                                        (base's pieces)
#   subwordsmall subword input, 2 x LSTM 256/128                                         (base's pieces)
#   subwordnsmc  subword input, NSMC corpus.txt alone                    (ko-nsmc-small's NSMC-trained pieces)
#   subwordsep   subword input, 8k pieces with "▁" always a piece of its own (--boundary-piece; its own tokenizer,
#                trained on the same mixture)
# The tokenizer is trained outside the budget. BASE_TOKENIZER, a
# tokenizer.model trained on the same mixture (e.g. the campaign's), skips base's tokenizer training.
#
# Data: DATA (default ~/contextemb-runs/data) holds nsmc-test.txt (the NSMC test reviews, text only) and
# ko-open-split/{train,heldout.txt} from `contextemb holdout`; both are made here when missing.
# Scores, per candidate in RUN_DIR/NAME/scores.txt: bits/char on the first 2,000 NSMC test reviews and on the
# first 2,000 lines of the ko-open held-out slice, the development homograph set (1-NN and pair accuracy per
# layer) and the bundled 연패 probe. RUN_DIR/summary.tsv gets one line per candidate.
set -euo pipefail
run=${1:?usage: $0 RUN_DIR [STEPS [CANDIDATE...]]}
steps=${2:-500}
shift $(( $# > 1 ? 2 : 1 ))
candidates=${*:-base subword vocab16k small wide nsmc subword16k subwordwide subwordsmall subwordnsmc}
shared=${SHARED:-../shared}
data=${DATA:-$HOME/contextemb-runs/data}
ce=${CONTEXTEMB:-.venv/bin/contextemb}
python=${PYTHON:-.venv/bin/python}
nsmc=$shared/data/nsmc/corpus.txt
mkdir -p "$run" "$data"
[ -f "$run/summary.tsv" ] || "$python" -m benchmarks.ablation_summary "$run" --header > "$run/summary.tsv"

if [ ! -f "$data/nsmc-test.txt" ]; then
    tail -n +2 "$shared/data/nsmc/ratings_test.tsv" | cut -f2 > "$data/nsmc-test.txt.tmp"
    mv "$data/nsmc-test.txt.tmp" "$data/nsmc-test.txt"
fi
if [ ! -f "$data/ko-open-split/heldout.txt" ]; then
    "$ce" holdout "$shared/data/ko-open" --out "$data/ko-open-split" --every 200
fi

train_candidate() {  # NAME, then pretrain options
    local name=$1; shift
    local out=$run/$name
    if [ -f "$out/forward.safetensors" ] && [ -f "$out/backward.safetensors" ]; then
        echo "$name: already trained"; return
    fi
    rm -rf "$out"
    /usr/bin/time -f "%e s wall, %U s user" "$ce" pretrain "$@" --out "$out" --valid "$data/nsmc-test.txt" \
        --max-steps "$steps" --warmup-steps 100 --eval-every 100000 --checkpoint-every 100000 --log-every 50 --threads 2 \
        --no-progress 2>&1 | tee "$run/$name.train.log" | grep -v " INFO " || true
}

score_candidate() {
    local name=$1 out=$run/$1
    [ -f "$out/scores.txt" ] && return
    {
        echo "# $name"
        echo "## NSMC test reviews (first 2,000 lines)"
        "$ce" -q perplexity "$out" "$data/nsmc-test.txt" --max-lines 2000
        echo "## ko-open held-out slice (first 2,000 lines)"
        "$ce" -q perplexity "$out" "$data/ko-open-split/heldout.txt" --max-lines 2000
        echo "## development homograph set"
        "$ce" -q probe "$out" --dev-set --precision float32
        echo "## bundled 연패"
        "$ce" -q probe "$out" --word 연패 --precision float32
    } > "$out/scores.tmp" 2>&1
    mv "$out/scores.tmp" "$out/scores.txt"
}

base_tokenizer() {
    if [ -n "${BASE_TOKENIZER:-}" ]; then echo "$BASE_TOKENIZER"; else echo "$run/base/tokenizer.model"; fi
}

mixture=("$nsmc" "$data/ko-open-split/train" --mix corpus=2)
for name in $candidates; do
    echo "== $name ($(date -u +%FT%TZ), load $(cut -d' ' -f1-3 /proc/loadavg))"
    case $name in
        base)
            if [ -n "${BASE_TOKENIZER:-}" ]; then
                train_candidate base "${mixture[@]}" --tokenizer "$BASE_TOKENIZER"
            else
                train_candidate base "${mixture[@]}"
            fi ;;
        subword)  train_candidate subword "${mixture[@]}" --tokenizer "$(base_tokenizer)" --input subword ;;
        vocab16k) train_candidate vocab16k "${mixture[@]}" --vocab-size 16000 ;;
        small)    train_candidate small "${mixture[@]}" --tokenizer "$(base_tokenizer)" --hidden 256 --proj 128 ;;
        wide)     train_candidate wide "${mixture[@]}" --tokenizer "$(base_tokenizer)" --hidden 1024 --proj 256 ;;
        nsmc)     train_candidate nsmc "$nsmc" --tokenizer contextemb/models/ko-nsmc-small/tokenizer.model ;;
        subword16k)  train_candidate subword16k "${mixture[@]}" --tokenizer "$run/vocab16k/tokenizer.model" \
                         --input subword ;;
        subwordwide) train_candidate subwordwide "${mixture[@]}" --tokenizer "$(base_tokenizer)" --input subword \
                         --hidden 1024 --proj 256 ;;
        subwordsmall) train_candidate subwordsmall "${mixture[@]}" --tokenizer "$(base_tokenizer)" --input subword \
                         --hidden 256 --proj 128 ;;
        subwordnsmc) train_candidate subwordnsmc "$nsmc" --tokenizer contextemb/models/ko-nsmc-small/tokenizer.model \
                         --input subword ;;
        subwordsep) train_candidate subwordsep "${mixture[@]}" --input subword --boundary-piece ;;
        *) echo "unknown candidate $name" >&2; exit 2 ;;
    esac
    score_candidate "$name"
    "$python" -m benchmarks.ablation_summary "$run" "$name" >> "$run/summary.tsv"
    tail -n 1 "$run/summary.tsv"
done
