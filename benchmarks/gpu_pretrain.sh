#!/bin/bash
# Pretrain the general Korean biLM on a lent GPU at a large batch, inside one device call, and bring the exported
# model back (float16 weights: each file well under the device tool's 16 MiB per file). Never part of CI.
#
#   bash benchmarks/gpu_pretrain.sh DATA OUT [INIT]
#     DATA  a folder of .txt/.txt.gz corpus files (carried with the call, e.g. gpu-data/, see make-gpu-data below)
#     OUT   where the exported model goes ($OUT on the device machine)
#     INIT  optional: a model directory or packaged name to continue from (--init), e.g. the last exported model
#   Settings (environment): DEVICE (cuda), SECONDS (480: both directions together), BATCH (16384 pieces),
#   LR (2e-3), MIX (corpus=2), EVAL (a held-out file, default DATA/heldout.txt if present), EXTRA (more
#   pretrain options, e.g. "--vocab-size 800 --hidden 64 --proj 32" for the CPU test of this script).
#
# Both directions train at once on the one GPU (an H200 did 684 k pieces/s in float32 at batch 16,384, summed
# over the two directions: about 100 M pieces per direction in 8 minutes). The run directory stays on the device
# machine; what comes back is the exported model and the log, so a CPU session continues it with --init.
#
# Carried data (at most 64 MiB travel): make it here with
#   mkdir -p gpu-data && echo /gpu-data/ >> .git/info/exclude
#   cp ~/contextemb-runs/data/nsmc-test.txt gpu-data/heldout.txt   (first 2,000 lines are scored)
#   gzip -c ../shared/data/nsmc/corpus.txt > gpu-data/corpus.txt.gz; cp ../shared/data/ko-open/*.txt.gz gpu-data/
#   (drop wiki.txt.gz or cut it if the folder passes ~60 MB)
set -u
DATA=$1; OUT=$2; INIT=${3:-}
DEVICE=${DEVICE:-cuda}; SECONDS_LIMIT=${SECONDS:-480}; BATCH=${BATCH:-16384}; LR=${LR:-2e-3}; MIX=${MIX:-corpus=2}
EVAL=${EVAL:-$DATA/heldout.txt}
export PYTHONUNBUFFERED=1
mkdir -p "$OUT"
RUN=$(mktemp -d)/model
python3 -c "import contextemb.cli.main" 2>/dev/null ||
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
CE="python3 -m contextemb.cli.main"
[ "$DEVICE" = cuda ] && nvidia-smi --query-gpu=name,memory.total --format=csv,noheader
CORPUS=$(find "$DATA" -maxdepth 1 \( -name '*.txt' -o -name '*.txt.gz' \) ! -name heldout.txt | sort)
ARGS=(--out "$RUN" --device "$DEVICE" --batch-tokens "$BATCH" --max-seconds "$SECONDS_LIMIT" --mix "$MIX"
      --eval-every 200 --checkpoint-every 200 --log-every 50 --no-progress --threads 2)
[ -f "$EVAL" ] && ARGS+=(--valid "$EVAL")
[ -n "${EXTRA:-}" ] && ARGS+=($EXTRA)
if [ -n "$INIT" ]; then ARGS+=(--init "$INIT"); else ARGS+=(--lr "$LR" --warmup-steps 100); fi
echo "== pretrain ($DEVICE, batch $BATCH, $SECONDS_LIMIT s)"
$CE pretrain $CORPUS "${ARGS[@]}" 2>&1 | tee "$OUT/pretrain.log" | grep -v "INFO {" | tail -20
echo "== export"
$CE export "$RUN" "$OUT/model" && cp "$RUN/metrics.jsonl" "$OUT/metrics.jsonl"
ls -la "$OUT/model"
