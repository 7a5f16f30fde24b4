#!/bin/bash
# The GPU check of contextemb, run on a lent GPU machine (never in CI): CUDA tests, pretraining pieces/s in float32
# and bf16 at the default and a 16k-piece batch (both directions in parallel), embedding 50k texts on the GPU, and
# the GPU's vectors against the CPU's with TF32 on and off.
#
#   bash benchmarks/gpu_check.sh CORPUS TEXTS [OUT]
#     CORPUS  pretraining text, e.g. head -n 60000 ../shared/data/nsmc/corpus.txt
#     TEXTS   texts to embed, e.g. the 50,000 NSMC test reviews (tail -n +2 ratings_test.tsv | cut -f2)
set -u
CORPUS=$1; TEXTS=$2; OUT=${3:-${OUT:-/tmp/contextemb-gpu}}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
S=$(date +%s); t() { echo "== [$(( $(date +%s) - S )) s] $*"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name())"
python3 -c "import contextemb.cli.main" 2>/dev/null ||
  python3 -m pip install -q --no-deps --no-build-isolation --no-index -e . || exit 1
CE="python3 -m contextemb.cli.main"
t tests
timeout 120 python3 -m pytest -q -p no:cacheprovider tests/test_devices.py tests/test_quantization.py -k "cuda or gpu" -rs 2>&1 | tail -4
pretrain() { name=$1; shift; t "pretrain $name"
  timeout 75 $CE -q pretrain "$CORPUS" --out /tmp/m-$name --no-progress --device cuda --max-steps 300 --max-seconds 25 \
    --log-every 50 --eval-every 100000 --checkpoint-every 100000 "$@" > $OUT/pretrain-$name.log 2>&1; echo "rc $?"
  grep "pieces/s" $OUT/pretrain-$name.log
}
pretrain float32
pretrain bf16 --precision bf16
pretrain float32-b16k --batch-tokens 16384
pretrain bf16-b16k --precision bf16 --batch-tokens 16384
for v in "float32 64" "float32 512" "bf16 512"; do set -- $v; t "embed $1, batch $2"
  timeout 100 $CE embed ko-nsmc-small "$TEXTS" /tmp/v.h5 --device cuda --precision $1 --batch-size $2 --no-progress --force 2>&1 | tail -1
done
t "vectors, GPU against CPU"
timeout 60 python3 - "$TEXTS" <<'PY'
import sys
import numpy as np, torch, contextemb
texts = [line.strip() for line in open(sys.argv[1], encoding="utf-8")][:300]
cpu = contextemb.load("ko-nsmc-small").embed(texts)
for tf32 in (True, False):
    torch.backends.cudnn.allow_tf32 = tf32; torch.backends.cuda.matmul.allow_tf32 = tf32
    gpu = contextemb.load("ko-nsmc-small", device="cuda").embed(texts)
    pairs = [(a.vectors, b.vectors) for a, b in zip(cpu, gpu) if a.words]
    diff = max(float(np.abs(a - b).max()) for a, b in pairs)
    cos = min(float(((a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))).min()) for a, b in pairs)
    print(f"tf32={tf32}: max |cpu-gpu| {diff:.2e}, min cosine {cos:.6f}")
PY
t end
