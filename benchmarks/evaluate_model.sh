#!/usr/bin/env bash
# The evaluations beside the model card's scores (docs/RESULTS.md compares the packaged models on them):
# Korean WiC-style pairs from the bundled probe set, and KLUE-DP dependency labels per layer.
#
#   bash benchmarks/evaluate_model.sh MODEL OUT_DIR        (from the repository root; MODEL: a name or directory)
#
# Writes OUT_DIR/ko-pairs-{train,test}.tsv (`contextemb wic-pairs`, seed 0: kept and reused if there),
# OUT_DIR/wic.jsonl and OUT_DIR/syntax.jsonl (one JSON object per representation), each through a .tmp file.
# The body is one { ... exit; } block: bash reads it whole before running it, so editing or checking out this
# file while it runs cannot change what the running copy does (an in-place edit once cost a classify run).
set -euo pipefail
{
model=${1:?usage: $0 MODEL OUT_DIR}
out=${2:?usage: $0 MODEL OUT_DIR}
shared=${SHARED:-../shared}
ce=${CONTEXTEMB:-$PWD/.venv/bin/contextemb}
mkdir -p "$out"
if [ ! -f "$out/ko-pairs-test.tsv" ]; then
    "$ce" -q wic-pairs --train "$out/ko-pairs-train.tsv" --test "$out/ko-pairs-test.tsv"
fi
"$ce" -q wic "$model" --train "$out/ko-pairs-train.tsv" --test "$out/ko-pairs-test.tsv" --json > "$out/wic.jsonl.tmp"
mv "$out/wic.jsonl.tmp" "$out/wic.jsonl"
"$ce" -q syntax "$model" "$shared/data/klue/klue-dp-v1.1_dev.tsv" --json > "$out/syntax.jsonl.tmp"
mv "$out/syntax.jsonl.tmp" "$out/syntax.jsonl"
echo "evaluations in $out"
exit
}
