#!/usr/bin/env bash
# Export a finished campaign run for distribution (float16, no checkpoints) and score the export, float32, on
# everything its model card reports (issue 12):
#
#   bash benchmarks/package_model.sh RUN_DIR            (from the repository root; RUN_DIR/model is the run)
#
# Writes RUN_DIR/final/ (the export) and RUN_DIR/scores/:
#   nsmc-test.jsonl       bits/char of each direction on all 50,000 NSMC test reviews
#   ko-open-heldout.jsonl the same on the first 2,000 lines of the ko-open held-out slice
#   dev-set.txt/.jsonl    the development homograph set: 1-NN and pair accuracy per layer (table, JSON lines)
#   yeonpae.txt/.jsonl    the bundled 연패 probe (table, JSON lines), with its plot probe-연패.png
#   probes-ko.txt         the bundled 12-word Korean probe set
# Then: python -m benchmarks.model_card RUN_DIR > card.json, and
#       contextemb export RUN_DIR/final contextemb/models/NAME --card card.json
# The body is one { ... exit; } block: bash reads it whole before running it, so editing or checking out this
# file while it runs cannot change what the running copy does (an in-place edit once cost a classify run).
set -euo pipefail
{
run=${1:?usage: $0 RUN_DIR}
data=${DATA:-$HOME/contextemb-runs/data}
ce=${CONTEXTEMB:-$PWD/.venv/bin/contextemb}
scores=$run/scores
"$ce" export "$run/model" "$run/final.tmp"
rm -rf "$run/final" && mv "$run/final.tmp" "$run/final"
mkdir -p "$scores"
score() {  # FILE, then the contextemb command: written to FILE.tmp first, so a crash leaves no half file
    local file=$1; shift
    "$ce" -q "$@" > "$scores/$file.tmp"
    mv "$scores/$file.tmp" "$scores/$file"
}
score nsmc-test.jsonl perplexity "$run/final" "$data/nsmc-test.txt" --json
score ko-open-heldout.jsonl perplexity "$run/final" "$data/ko-open-split/heldout.txt" --max-lines 2000 --json
# each probe runs once: the table to FILE.txt, the same figures as JSON lines to FILE.jsonl (--json-out)
score dev-set.txt probe "$run/final" --dev-set --precision float32 --json-out "$scores/dev-set.jsonl"
score yeonpae.txt probe "$run/final" --word 연패 --precision float32 --json-out "$scores/yeonpae.jsonl" \
    --plot "$scores/probe-연패.png"
score probes-ko.txt probe "$run/final" --precision float32
echo "scores in $scores"
exit
}
