#!/usr/bin/env bash
# ELMo's domain adaptation for issue 12: continue a general model (the packaged ko-general by default) on NSMC
# corpus.txt alone, with a short schedule, in the background. The NSMC test reviews are not in corpus.txt: they
# are the held-out text here (--valid) and in benchmarks/package_model.sh.
#
#   bash benchmarks/finetune_nsmc.sh RUN_DIR              a new run from INIT
#   bash benchmarks/finetune_nsmc.sh RUN_DIR --resume     continue RUN_DIR/model from its last checkpoint
#   e.g. setsid nohup nice -n 10 bash benchmarks/finetune_nsmc.sh ~/contextemb-runs/ko-general-nsmc-ft \
#            >> ~/contextemb-runs/ko-general-nsmc-ft/train.log 2>&1 &
#
# Environment: STEPS (--max-steps, default 3000: about 5.9 M pieces per direction at ~1,960 pieces a step),
# INIT (default ko-general), LR (default 5e-4: half the campaign's continued rate; 100 warm-up steps, then linear
# decay to 1/10 by STEPS), SEED, SHARED, DATA, CONTEXTEMB as in benchmarks/campaign.sh.
set -euo pipefail
source "$(dirname "$0")/run_setup.sh"
exec "$ce" pretrain "$shared/data/nsmc/corpus.txt" "${start[@]}" --out "$run/model" --valid "$data/nsmc-test.txt" \
    --lr "${LR:-5e-4}" --warmup-steps 100 --seed "${SEED:-2028}" \
    --max-steps "${STEPS:-3000}" --eval-every 1000 --checkpoint-every 250 --log-every 100 --threads 2 \
    --no-progress "$@"
